"""Accounts: invitations, roles, deactivation, sign-in."""

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import func, select

from crm.extensions import db
from crm.models import Team, User
from crm.models.types import utcnow
from crm.models.users import ROLES, new_security_stamp
from crm.services.passwords import hash_password, needs_rehash, verify_password
from crm.services.sessions import revoke_all


class AccountError(ValueError):
    """A rule about accounts was broken; the message is for the user."""


def find_by_email(email: str) -> User | None:
    return db.session.scalars(select(User).where(User.email == email.strip().lower())).first()


def authenticate(email: str, password: str) -> User | None:
    user = find_by_email(email)
    if not verify_password(user.password_hash if user else None, password):
        return None
    if not user.active:
        return None
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.last_login_at = utcnow()
    return user


def invite_user(email: str, name: str, role: str, team: Team | None = None) -> User:
    if role not in ROLES:
        raise AccountError("unknown role")
    if find_by_email(email):
        raise AccountError("duplicate")
    user = User(email=email.strip().lower(), name=name.strip(), role=role, team=team)
    db.session.add(user)
    return user


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="invitation")


def invitation_token(user: User) -> str:
    # Bound to the security stamp: once used (or the user deactivated) it is void.
    return _serializer().dumps({"user": user.id, "stamp": user.security_stamp})


def user_for_invitation(token: str) -> User | None:
    try:
        payload = _serializer().loads(token, max_age=current_app.config["INVITE_MAX_AGE_SECONDS"])
    except (BadSignature, SignatureExpired):
        return None
    user = db.session.get(User, payload.get("user"))
    if user is None or user.security_stamp != payload.get("stamp") or not user.active:
        return None
    return user


def set_password(user: User, password: str) -> None:
    user.password_hash = hash_password(password)
    user.end_all_sessions()


def change_password(user: User, current: str, new: str) -> bool:
    """False when `current` is wrong. Every other session of the user ends: whoever knew the
    old password and signed in with it elsewhere is out."""
    if not verify_password(user.password_hash, current):
        return False
    user.password_hash = hash_password(new)
    user.security_stamp = new_security_stamp()
    revoke_all(user, keep=user.current_session)
    return True


def change_role(actor: User, user: User, role: str) -> None:
    if role not in ROLES:
        raise AccountError("unknown role")
    if user.role == "admin" and role != "admin" and _active_admins() <= 1:
        raise AccountError("last_admin")
    user.role = role


def deactivate(actor: User, user: User) -> None:
    """Deactivation ends the user's sessions at once: their cookie no longer matches."""
    if user.id == actor.id:
        raise AccountError("self")
    if user.role == "admin" and _active_admins() <= 1:
        raise AccountError("last_admin")
    user.active = False
    user.end_all_sessions()


def reactivate(user: User) -> None:
    user.active = True


def _active_admins() -> int:
    return db.session.scalar(
        select(func.count(User.id)).where(User.role == "admin", User.active.is_(True))
    )


def all_users() -> list[User]:
    return list(db.session.scalars(select(User).order_by(User.active.desc(), User.name)))


def all_teams() -> list[Team]:
    return list(db.session.scalars(select(Team).order_by(Team.name)))
