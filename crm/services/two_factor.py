"""Two-factor sign-in with an authenticator app (TOTP, RFC 6238) and recovery codes.

The shared secret is stored encrypted (Fernet) with TOTP_ENCRYPTION_KEY, or a key derived
from SECRET_KEY when that is not set: a copy of the database alone yields no secret. A
code is accepted within one time step either side (clocks drift), and never twice: the
step of the last accepted code is kept. Recovery codes are random (about 50 bits), stored
as SHA-256, and each works once.
"""

import hashlib
import hmac
import io
import secrets
from datetime import datetime

import pyotp
import segno
from flask import current_app
from sqlalchemy import delete, select

from crm.extensions import db
from crm.models import RecoveryCode, SecuritySetting, User
from crm.models.types import utcnow
from crm.services import secrets_box

RECOVERY_CODE_COUNT = 10
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i to misread
REQUIRED_ROLES_KEY = "two_factor_roles"


class TwoFactorError(ValueError):
    """The message is a code: "already_enabled", "not_enrolling", "wrong_code"."""


def _encrypt(secret: str) -> str:
    return secrets_box.encrypt("totp", secret)


def _decrypt(token: str) -> str | None:
    return secrets_box.decrypt("totp", token)


def secret_of(user: User) -> str | None:
    return _decrypt(user.totp_secret) if user.totp_secret else None


# ---- enrolment ------------------------------------------------------------------


def begin_enrolment(user: User) -> str:
    """A new secret, not yet in force: the user scans it, then confirms with a code."""
    if user.two_factor_enabled:
        raise TwoFactorError("already_enabled")
    secret = pyotp.random_base32()
    user.totp_secret = _encrypt(secret)
    user.totp_last_step = None
    return secret


def pending_secret(user: User) -> str | None:
    return None if user.two_factor_enabled else secret_of(user)


def provisioning_uri(user: User, secret: str) -> str:
    issuer = current_app.config.get("TOTP_ISSUER", "CRM")
    return pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=issuer)


def qr_svg(text: str) -> bytes:
    """The QR code as SVG, with presentation attributes only (the CSP forbids inline styles)."""
    out = io.BytesIO()
    segno.make(text, error="m").save(
        out, kind="svg", scale=5, border=2, light="#fff", xmldecl=False
    )
    return out.getvalue()


def confirm_enrolment(user: User, code: str, now: datetime | None = None) -> list[str]:
    """Turn two factors on once the app shows the right code; returns the recovery codes."""
    secret = pending_secret(user)
    if secret is None:
        raise TwoFactorError("not_enrolling")
    step = _matching_step(secret, code, now)
    if step is None:
        raise TwoFactorError("wrong_code")
    user.totp_last_step = step
    user.totp_enabled_at = utcnow()
    return new_recovery_codes(user)


def disable(user: User) -> None:
    user.totp_secret = None
    user.totp_enabled_at = None
    user.totp_last_step = None
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))


# ---- codes ------------------------------------------------------------------------


def _normalize(code: str) -> str:
    return "".join(ch for ch in (code or "").lower() if ch.isalnum())


def _matching_step(secret: str, code: str, now: datetime | None) -> int | None:
    code = _normalize(code)
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now or utcnow())
    for step in (current, current - 1, current + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def verify_code(user: User, code: str, now: datetime | None = None) -> bool:
    """A code from the app, in its time window, of a later step than the last one used."""
    secret = secret_of(user) if user.two_factor_enabled else None
    step = _matching_step(secret, code, now) if secret else None
    if step is None or (user.totp_last_step is not None and step <= user.totp_last_step):
        return False
    user.totp_last_step = step
    return True


def _hash_code(code: str) -> str:
    return hashlib.sha256(_normalize(code).encode()).hexdigest()


def new_recovery_codes(user: User) -> list[str]:
    """Ten fresh codes, shown once; the earlier ones stop working."""
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(10))
        codes.append(f"{raw[:5]}-{raw[5:]}")
        db.session.add(RecoveryCode(user_id=user.id, code_hash=_hash_code(raw)))
    return codes


def use_recovery_code(user: User, code: str) -> bool:
    if len(_normalize(code)) != 10:
        return False
    row = db.session.scalars(
        select(RecoveryCode).where(
            RecoveryCode.user_id == user.id,
            RecoveryCode.code_hash == _hash_code(code),
            RecoveryCode.used_at.is_(None),
        )
    ).first()
    if row is None:
        return False
    row.used_at = utcnow()
    return True


def remaining_recovery_codes(user: User) -> int:
    rows = db.session.scalars(
        select(RecoveryCode.id).where(
            RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None)
        )
    )
    return len(list(rows))


def verify_second_factor(user: User, code: str, now: datetime | None = None) -> str | None:
    """ "app" or "recovery" for an accepted code, None otherwise."""
    if verify_code(user, code, now):
        return "app"
    if use_recovery_code(user, code):
        return "recovery"
    return None


# ---- the roles that must use two factors -------------------------------------------


def required_roles() -> set[str]:
    setting = db.session.get(SecuritySetting, REQUIRED_ROLES_KEY)
    return set(setting.value or []) if setting else set()


def set_required_roles(roles) -> None:
    setting = db.session.get(SecuritySetting, REQUIRED_ROLES_KEY)
    if setting is None:
        setting = SecuritySetting(key=REQUIRED_ROLES_KEY)
        db.session.add(setting)
    setting.value = sorted(set(roles))


def must_enrol(user: User) -> bool:
    """Signed in, but their role needs two factors and they have none yet."""
    if user.two_factor_enabled:
        return False
    # Read with the session by crm.services.sessions.load(): no query of its own.
    roles = getattr(user, "roles_needing_two_factor", None)
    return user.role in (required_roles() if roles is None else roles)
