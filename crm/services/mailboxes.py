"""Mailboxes: the shared ones (support@, sales@) and each user's own, their settings,
a connection check per direction, the quarantine of unreadable messages, and "sync now".

Passwords are kept as Fernet tokens (crm/services/secrets_box.py): an empty password on
an edit keeps the stored one, and no password ever goes back into a form.
"""

import imaplib
import smtplib
import socket
import ssl
from dataclasses import dataclass, field
from datetime import datetime

from flask import current_app
from flask_babel import gettext as _
from flask_babel import ngettext
from imapclient import exceptions as imap_errors
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from crm.extensions import db
from crm.models import Mailbox, QuarantinedEmail, User
from crm.models.types import utcnow
from crm.services import secrets_box
from crm.services.mail_connections import MailboxNotConfigured, imap_connect, smtp_connect

# What an admin may pick for a shared mailbox; "personal" is for a user's own.
SHARED_PURPOSES = ("support", "sales", "other")
SETTINGS = (
    "name",
    "address",
    "purpose",
    "team_id",
    "imap_host",
    "imap_port",
    "imap_security",
    "imap_username",
    "imap_folder",
    "smtp_host",
    "smtp_port",
    "smtp_security",
    "smtp_username",
)
PASSWORDS = ("imap_password", "smtp_password")
# The check runs inside a web request: it waits less than the sync does.
CHECK_TIMEOUT_SECONDS = 10


class MailboxRefused(ValueError):
    """A setting the database would refuse; str() is the field it is about."""


# ---- reading -------------------------------------------------------------------------


def shared_mailboxes() -> list[tuple[Mailbox, int]]:
    """Every shared mailbox with its count of unhandled quarantined messages, in one query."""
    waiting = (
        select(QuarantinedEmail.mailbox_id, func.count().label("waiting"))
        .where(QuarantinedEmail.resolved_at.is_(None))
        .group_by(QuarantinedEmail.mailbox_id)
        .subquery()
    )
    rows = db.session.execute(
        select(Mailbox, func.coalesce(waiting.c.waiting, 0))
        .outerjoin(waiting, waiting.c.mailbox_id == Mailbox.id)
        .where(Mailbox.owner_id.is_(None))
        .options(selectinload(Mailbox.team))
        .order_by(Mailbox.active.desc(), Mailbox.address)
    ).all()
    return [(mailbox, count) for mailbox, count in rows]


def every_mailbox() -> list[Mailbox]:
    """All mailboxes, shared first, with their owners: the System page's sync states."""
    return list(
        db.session.scalars(
            select(Mailbox)
            .options(selectinload(Mailbox.owner))
            .order_by(Mailbox.owner_id.is_not(None), Mailbox.address)
        )
    )


def shared_mailbox(mailbox_id: int) -> Mailbox | None:
    mailbox = db.session.get(Mailbox, mailbox_id)
    return mailbox if mailbox is not None and mailbox.shared else None


def own_mailbox(user: User) -> Mailbox | None:
    return db.session.scalars(
        select(Mailbox).where(Mailbox.owner_id == user.id).order_by(Mailbox.id)
    ).first()


def may_manage(user: User, mailbox: Mailbox) -> bool:
    """Admins manage shared mailboxes; a personal one is its owner's alone."""
    from crm.permissions import has_permission

    if mailbox.shared:
        return has_permission(user, "mailboxes.manage")
    return mailbox.owner_id == user.id


# ---- writing -------------------------------------------------------------------------


def settings_of(mailbox: Mailbox) -> dict:
    """The settings a form shows (never the passwords)."""
    return {name: getattr(mailbox, name) for name in SETTINGS}


def has_password(mailbox: Mailbox | None, direction: str) -> bool:
    return bool(mailbox is not None and getattr(mailbox, f"{direction}_password"))


def apply_settings(mailbox: Mailbox, data: dict) -> Mailbox:
    """Copy validated `data` onto `mailbox`; a password given is encrypted, an empty one
    keeps what is stored. Works on a transient mailbox too (the unsaved check)."""
    for name in SETTINGS:
        if name in data:
            setattr(mailbox, name, data[name])
    for name in PASSWORDS:
        if data.get(name):
            setattr(mailbox, name, secrets_box.encrypt("mail", data[name]))
    return mailbox


def _address_taken(address: str, mailbox: Mailbox | None) -> bool:
    query = select(Mailbox.id).where(func.lower(Mailbox.address) == address.lower())
    if mailbox is not None and mailbox.id is not None:
        query = query.where(Mailbox.id != mailbox.id)
    return db.session.scalar(query.limit(1)) is not None


def save_shared(mailbox: Mailbox | None, data: dict) -> Mailbox:
    """Create (mailbox None) or update a shared mailbox from validated form data."""
    if data.get("purpose") not in SHARED_PURPOSES:
        raise MailboxRefused("purpose")
    return _save(mailbox, data, owner=None)


def save_own(user: User, data: dict) -> Mailbox:
    """Create or update `user`'s own mailbox: purpose personal, their team's."""
    data = dict(data, purpose="personal", team_id=user.team_id)
    return _save(own_mailbox(user), data, owner=user)


def _save(mailbox: Mailbox | None, data: dict, owner: User | None) -> Mailbox:
    if _address_taken(data["address"], mailbox):
        raise MailboxRefused("address")
    if mailbox is None:
        mailbox = Mailbox(owner_id=owner.id if owner else None, active=True)
        db.session.add(mailbox)
    moved = mailbox.id is not None and (
        (mailbox.imap_host, mailbox.imap_username, mailbox.imap_folder)
        != (data.get("imap_host"), data.get("imap_username"), data.get("imap_folder"))
    )
    apply_settings(mailbox, data)
    if moved:
        # Another server, account or folder: its UIDs mean nothing here; the sync starts
        # over (deduplicated by Message-ID, so nothing comes in twice).
        mailbox.uidvalidity, mailbox.last_uid = None, 0
    db.session.flush()
    return mailbox


def set_active(mailbox: Mailbox, active: bool) -> None:
    """A deactivated mailbox keeps its messages and settings; the sync skips it."""
    mailbox.active = active
    if not active:
        mailbox.sync_started_at = None


# ---- sync now ------------------------------------------------------------------------


def request_sync(mailbox: Mailbox) -> None:
    """Queue a sync of `mailbox` now (the worker runs it); a second request while one
    waits is the same job."""
    from crm.jobs.mail_sync import request_sync as enqueue

    enqueue(mailbox)


# ---- the connection check ------------------------------------------------------------


@dataclass
class DirectionCheck:
    """One direction's outcome: ok, or a message that says what to fix."""

    direction: str  # imap | smtp
    ok: bool
    message: str
    details: dict = field(default_factory=dict)
    skipped: bool = False


@dataclass
class ConnectionCheck:
    imap: DirectionCheck
    smtp: DirectionCheck

    @property
    def ok(self) -> bool:
        return all(d.ok or d.skipped for d in (self.imap, self.smtp))


def check_connection(mailbox: Mailbox, timeout: float | None = None) -> ConnectionCheck:
    """Connect to both servers with `mailbox`'s settings (saved or not) and say how it went.

    IMAP: connect, TLS per imap_security, log in, SELECT the folder read-only, read its
    UIDVALIDITY and message count. SMTP: connect, EHLO, STARTTLS or SSL, log in when a
    user name is set. Nothing is written.
    """
    timeout = timeout or current_app.config.get("MAIL_CHECK_TIMEOUT_SECONDS", CHECK_TIMEOUT_SECONDS)
    return ConnectionCheck(imap=_check_imap(mailbox, timeout), smtp=_check_smtp(mailbox, timeout))


def _unreadable_password(mailbox: Mailbox, direction: str) -> bool:
    token = getattr(mailbox, f"{direction}_password")
    return bool(token) and secrets_box.decrypt("mail", token) is None


def _check_imap(mailbox: Mailbox, timeout: float) -> DirectionCheck:
    if not mailbox.imap_host:
        return DirectionCheck(
            "imap", False, _("No IMAP server set: mail is not read."), skipped=True
        )
    if _unreadable_password(mailbox, "imap"):
        return DirectionCheck("imap", False, _stored_password_lost())
    where = {"host": mailbox.imap_host, "port": mailbox.imap_port}
    try:
        with imap_connect(mailbox, timeout=timeout) as client:
            try:
                selected = client.select_folder(mailbox.imap_folder or "INBOX", readonly=True)
            except imap_errors.IMAPClientError:
                return DirectionCheck(
                    "imap",
                    False,
                    _(
                        "Signed in, but the folder %(folder)s does not exist.",
                        folder=mailbox.imap_folder,
                    ),
                )
    except MailboxNotConfigured:
        return DirectionCheck("imap", False, _("No IMAP server set."), skipped=True)
    except Exception as error:  # noqa: BLE001  (every failure becomes a sentence)
        return DirectionCheck("imap", False, _failure(error, mailbox.imap_security, **where))
    count = int(selected.get(b"EXISTS", 0))
    uidvalidity = selected.get(b"UIDVALIDITY")
    return DirectionCheck(
        "imap",
        True,
        ngettext(
            "Connected: %(folder)s holds %(num)d message.",
            "Connected: %(folder)s holds %(num)d messages.",
            count,
            folder=mailbox.imap_folder or "INBOX",
        ),
        details={"count": count, "uidvalidity": uidvalidity},
    )


def _check_smtp(mailbox: Mailbox, timeout: float) -> DirectionCheck:
    if not mailbox.smtp_host:
        return DirectionCheck(
            "smtp", False, _("No SMTP server set: mail is not sent."), skipped=True
        )
    if mailbox.smtp_username and _unreadable_password(mailbox, "smtp"):
        return DirectionCheck("smtp", False, _stored_password_lost())
    where = {"host": mailbox.smtp_host, "port": mailbox.smtp_port}
    try:
        with smtp_connect(mailbox, timeout=timeout) as client:
            code, _text = client.noop()
            extensions = sorted(client.esmtp_features)
    except MailboxNotConfigured:
        return DirectionCheck("smtp", False, _("No SMTP server set."), skipped=True)
    except Exception as error:  # noqa: BLE001  (every failure becomes a sentence)
        return DirectionCheck("smtp", False, _failure(error, mailbox.smtp_security, **where))
    if mailbox.smtp_username:
        message = _("Connected and signed in: ready to send.")
    else:
        message = _("Connected (no user name: sending without signing in).")
    return DirectionCheck("smtp", code == 250, message, details={"extensions": extensions})


def _stored_password_lost() -> str:
    return _(
        "The stored password can no longer be read (the encryption key changed): type it again."
    )


def _failure(error: Exception, security: str, host: str, port: int) -> str:
    """A sentence for the admin from what the connection raised."""
    if isinstance(error, socket.gaierror):
        return _("The server name %(host)s could not be found (DNS).", host=host)
    if isinstance(error, ConnectionRefusedError):
        return _(
            "%(host)s refused the connection on port %(port)d: check the port.",
            host=host,
            port=port,
        )
    if isinstance(error, TimeoutError | socket.timeout):
        return _(
            "No answer from %(host)s on port %(port)d in time: check the host, the port and "
            "any firewall.",
            host=host,
            port=port,
        )
    if isinstance(error, ssl.SSLCertVerificationError):
        return _(
            "The server's TLS certificate could not be verified: %(reason)s.",
            reason=error.verify_message or error.reason or str(error),
        )
    if isinstance(error, ssl.SSLError):
        return _(
            "The secure connection failed (%(reason)s): check the security mode, usually SSL "
            "on ports 993 and 465, STARTTLS on 143 and 587.",
            reason=error.reason or str(error),
        )
    if isinstance(error, imap_errors.LoginError | smtplib.SMTPAuthenticationError):
        return _("The server refused the user name or the password.")
    if isinstance(error, smtplib.SMTPNotSupportedError) or (
        security == "starttls" and "STARTTLS" in str(error).upper()
    ):
        return _("The server does not offer STARTTLS: choose another security mode.")
    if isinstance(error, smtplib.SMTPServerDisconnected | imaplib.IMAP4.abort | EOFError):
        return _(
            "The server closed the connection: check the security mode (%(mode)s) and the port.",
            mode=security,
        )
    if isinstance(error, OSError):
        return _(
            "Could not connect to %(host)s: %(error)s.", host=host, error=error.strerror or error
        )
    return _("The server answered with an error: %(error)s", error=_last_line(str(error)))


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


# ---- the quarantine ------------------------------------------------------------------


def quarantined(mailbox: Mailbox, include_handled: bool = False) -> list[QuarantinedEmail]:
    """What the sync could not read in `mailbox`, newest first (raw bytes not loaded)."""
    query = select(QuarantinedEmail).where(QuarantinedEmail.mailbox_id == mailbox.id)
    if not include_handled:
        query = query.where(QuarantinedEmail.resolved_at.is_(None))
    return list(db.session.scalars(query.order_by(QuarantinedEmail.created_at.desc()).limit(500)))


def waiting_count(mailbox: Mailbox) -> int:
    """How many quarantined messages of `mailbox` are not handled yet."""
    return db.session.scalar(
        select(func.count())
        .select_from(QuarantinedEmail)
        .where(QuarantinedEmail.mailbox_id == mailbox.id, QuarantinedEmail.resolved_at.is_(None))
    )


def quarantine_sizes(items: list[QuarantinedEmail]) -> dict[int, int]:
    """Each item's size in bytes, read by the database rather than by loading the raw mail."""
    if not items:
        return {}
    rows = db.session.execute(
        select(QuarantinedEmail.id, func.length(QuarantinedEmail.raw)).where(
            QuarantinedEmail.id.in_([item.id for item in items])
        )
    ).all()
    return {item_id: size or 0 for item_id, size in rows}


def mark_handled(item: QuarantinedEmail, when: datetime | None = None) -> None:
    if item.resolved_at is None:
        item.resolved_at = when or utcnow()


def eml_filename(item: QuarantinedEmail) -> str:
    return f"quarantine-{item.mailbox_id}-{item.imap_uidvalidity}-{item.imap_uid}.eml"
