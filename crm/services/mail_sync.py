"""Email in: bring a mailbox's new messages into the CRM over IMAP.

The database holds the watermark (Mailbox.uidvalidity, last_uid). Each message is stored
with everything it leads to (thread, timeline, incident or lead) and the watermark moves
past it IN THE SAME TRANSACTION, so a worker killed at any point loses nothing and
duplicates nothing: the rerun starts after the last message committed. On top of that,
a message whose normalized Message-ID the mailbox already holds is never stored twice
(a UIDVALIDITY change makes the server renumber everything: the whole folder is read
again and only the UIDs of the rows already there are updated).

The folder is selected read-only and bodies fetched with BODY.PEEK[]: the sync never
sets \\Seen and never looks at it. A message that cannot be read or stored is kept in
QuarantinedEmail for an admin and the sync goes on with the next one.

Two workers never sync one mailbox at once: each claims it with a compare-and-set on
Mailbox.sync_started_at, renewed while it works, and counted as abandoned (a worker that
died) after MAIL_SYNC_CLAIM_SECONDS.
"""

import imaplib
import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from crm.extensions import db
from crm.models import EmailAttachment, EmailMessage, Mailbox, QuarantinedEmail
from crm.models.types import utcnow
from crm.services import email_parsing, mail_routing
from crm.services.email_threading import attach_to_thread
from crm.services.email_timeline import link_known_records
from crm.services.mail_connections import MailboxNotConfigured, imap_connect

log = logging.getLogger(__name__)

_ERROR_LENGTH = 2000


@dataclass
class SyncResult:
    new: int = 0
    duplicates: int = 0
    quarantined: int = 0
    resynced: bool = False  # the folder's UIDVALIDITY changed: read again from the start
    skipped: str | None = None  # "busy" (another worker has it), "inactive", "not configured"
    error: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


class ClaimLost(RuntimeError):
    """Another worker took the mailbox over (ours was thought dead): stop quietly."""


# ---- the claim ---------------------------------------------------------------------


def _claim_seconds() -> int:
    return int(current_app.config.get("MAIL_SYNC_CLAIM_SECONDS", 600))


def claim(mailbox_id: int) -> datetime | None:
    """Take the mailbox for one sync; the claim's time is its token (None: someone has it)."""
    at = utcnow()
    stale = at - timedelta(seconds=_claim_seconds())
    taken = db.session.execute(
        update(Mailbox)
        .where(
            Mailbox.id == mailbox_id,
            or_(Mailbox.sync_started_at.is_(None), Mailbox.sync_started_at < stale),
        )
        .values(sync_started_at=at)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    return at if taken == 1 else None


@dataclass
class Claim:
    mailbox_id: int
    token: datetime  # the sync_started_at we wrote: the claim is ours while it is there

    def renew(self) -> None:
        """Keep the claim alive between batches; raises ClaimLost if it is no longer ours."""
        at = utcnow()
        renewed = db.session.execute(
            update(Mailbox)
            .where(Mailbox.id == self.mailbox_id, Mailbox.sync_started_at == self.token)
            .values(sync_started_at=at)
            .execution_options(synchronize_session=False)
        ).rowcount
        db.session.commit()
        if renewed != 1:
            raise ClaimLost(self.mailbox_id)
        self.token = at


def release(claimed: Claim, **outcome) -> None:
    """Give the mailbox back, with the outcome (last_sync_at or the error) if still ours."""
    db.session.rollback()
    db.session.execute(
        update(Mailbox)
        .where(Mailbox.id == claimed.mailbox_id, Mailbox.sync_started_at == claimed.token)
        .values(sync_started_at=None, **outcome)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


# ---- one message -------------------------------------------------------------------


def _advance(mailbox_id: int, uid: int) -> None:
    db.session.execute(
        update(Mailbox)
        .where(Mailbox.id == mailbox_id, Mailbox.last_uid < uid)
        .values(last_uid=uid)
        .execution_options(synchronize_session=False)
    )


def _existing(mailbox_id: int, key: str) -> EmailMessage | None:
    return db.session.scalars(
        select(EmailMessage).where(
            EmailMessage.mailbox_id == mailbox_id, EmailMessage.message_id_key == key
        )
    ).first()


def _privacy(mailbox: Mailbox) -> str:
    # Shared mail is the office's; a personal mailbox's mail is its owner's and their team's.
    return "public" if mailbox.shared else "team"


def store_message(mailbox: Mailbox, parsed: email_parsing.ParsedEmail, uid, uidvalidity):
    """The EmailMessage of a parsed message, threaded, routed and on the timelines."""
    message = EmailMessage(
        mailbox=mailbox,
        direction="in",
        status="received",
        privacy=_privacy(mailbox),
        owner_id=mailbox.owner_id,
        message_id=parsed.message_id,
        message_id_key=parsed.message_id_key,
        in_reply_to=parsed.in_reply_to,
        references=" ".join(parsed.references) or None,
        subject=parsed.subject,
        from_address=parsed.from_address,
        from_name=parsed.from_name,
        to_addresses=parsed.to,
        cc_addresses=parsed.cc,
        text_body=parsed.text,
        html_body=parsed.html,
        snippet=parsed.snippet,
        sent_at=parsed.date,
        received_at=utcnow(),
        imap_uid=uid,
        imap_uidvalidity=uidvalidity,
        attachments=[
            EmailAttachment(
                filename=a.filename, content_type=a.content_type, size=a.size, content=a.content
            )
            for a in parsed.attachments
        ],
    )
    db.session.add(message)
    db.session.flush()
    attach_to_thread(message)
    # Routing first: it may create the contact (a new customer, a lead) the timeline links.
    mail_routing.route(message, automatic=parsed.automatic)
    link_known_records(message)
    return message


def _quarantine(mailbox_id: int, uid: int, uidvalidity: int, raw: bytes, error: Exception):
    db.session.rollback()
    log.warning("Mailbox %s: message UID %s quarantined: %r", mailbox_id, uid, error)
    same = db.session.scalars(
        select(QuarantinedEmail.id).where(
            QuarantinedEmail.mailbox_id == mailbox_id, QuarantinedEmail.raw == raw
        )
    ).first()
    if same is None:  # seen again after a UIDVALIDITY change: already with the admin
        db.session.add(
            QuarantinedEmail(
                mailbox_id=mailbox_id,
                imap_uid=uid,
                imap_uidvalidity=uidvalidity,
                raw=raw,
                error=f"{type(error).__name__}: {error}"[:_ERROR_LENGTH],
            )
        )
    _advance(mailbox_id, uid)
    db.session.commit()


def sync_one(mailbox_id: int, uid: int, uidvalidity: int, raw: bytes, result: SyncResult):
    """Store one fetched message and move the watermark past it, in one transaction."""
    try:
        parsed = email_parsing.parse_message(raw)
    except Exception as error:  # noqa: BLE001  (whatever the bytes do, the sync goes on)
        _quarantine(mailbox_id, uid, uidvalidity, raw, error)
        result.quarantined += 1
        return
    try:
        existing = _existing(mailbox_id, parsed.message_id_key)
        if existing is None:
            mailbox = db.session.get(Mailbox, mailbox_id)
            store_message(mailbox, parsed, uid, uidvalidity)
            result.new += 1
        else:
            # A resync, or our own sent copy: the row stays; it learns where it is now.
            existing.imap_uid, existing.imap_uidvalidity = uid, uidvalidity
            result.duplicates += 1
        _advance(mailbox_id, uid)
        db.session.commit()
    except IntegrityError as error:
        db.session.rollback()
        if _existing(mailbox_id, parsed.message_id_key) is None:
            _quarantine(mailbox_id, uid, uidvalidity, raw, error)
            result.quarantined += 1
        else:  # stored meanwhile by a sync that took over ours
            _advance(mailbox_id, uid)
            db.session.commit()
            result.duplicates += 1
    except Exception as error:  # noqa: BLE001  (a message we cannot store waits for an admin)
        if _is_connection_loss(error):
            raise
        _quarantine(mailbox_id, uid, uidvalidity, raw, error)
        result.quarantined += 1


def _is_connection_loss(error: Exception) -> bool:
    """A database that went away is no fault of the message: the sync stops, to retry."""
    from sqlalchemy.exc import DBAPIError

    return isinstance(error, DBAPIError) and error.connection_invalidated


# ---- the folder --------------------------------------------------------------------


def _batches(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _new_uids(client, last_uid: int) -> list[int]:
    # "UID n:*" always includes the highest UID, even one below n: filter it out.
    return sorted(uid for uid in client.search(["UID", f"{last_uid + 1}:*"]) if uid > last_uid)


def _sync_folder(client, mailbox: Mailbox, claimed: Claim, result: SyncResult) -> None:
    mailbox_id = mailbox.id
    status = client.select_folder(mailbox.imap_folder or "INBOX", readonly=True)
    uidvalidity = int(status[b"UIDVALIDITY"])
    last_uid = mailbox.last_uid or 0
    if mailbox.uidvalidity != uidvalidity:
        # Values are epoch seconds and may go down: any difference means "renumbered".
        result.resynced = mailbox.uidvalidity is not None
        db.session.execute(
            update(Mailbox)
            .where(Mailbox.id == mailbox_id)
            .values(uidvalidity=uidvalidity, last_uid=0)
            .execution_options(synchronize_session=False)
        )
        db.session.commit()
        last_uid = 0
    db.session.commit()  # no transaction stays open while the server answers
    batch_size = max(1, int(current_app.config.get("MAIL_SYNC_BATCH", 50)))
    for batch in _batches(_new_uids(client, last_uid), batch_size):
        claimed.renew()
        fetched = client.fetch(batch, ["BODY.PEEK[]"])
        for uid in batch:
            raw = (fetched.get(uid) or {}).get(b"BODY[]")
            if raw is None:  # expunged between SEARCH and FETCH
                _advance(mailbox_id, uid)
                db.session.commit()
                continue
            sync_one(mailbox_id, uid, uidvalidity, bytes(raw), result)


_CONNECTION_ERRORS = (imaplib.IMAP4.error, OSError, MailboxNotConfigured)


def sync_mailbox(mailbox_id: int) -> SyncResult:
    """Bring the mailbox's new messages in; returns what happened. Safe to call at any time,
    from any number of workers: only one syncs a mailbox at once."""
    mailbox = db.session.get(Mailbox, mailbox_id)
    if mailbox is None or not mailbox.active:
        return SyncResult(skipped="inactive")
    if not mailbox.imap_host:
        return SyncResult(skipped="not configured")
    token = claim(mailbox_id)
    if token is None:
        return SyncResult(skipped="busy")
    claimed, result = Claim(mailbox_id, token), SyncResult()
    try:
        mailbox = db.session.get(Mailbox, mailbox_id)
        with imap_connect(mailbox) as client:
            _sync_folder(client, mailbox, claimed, result)
    except ClaimLost:
        result.skipped = "busy"
        return result
    except _CONNECTION_ERRORS as error:
        result.error = _error_text(error)
        log.warning("Mailbox %s: sync failed: %s", mailbox_id, result.error)
        release(claimed, last_sync_error=result.error, last_sync_error_at=utcnow())
        return result
    except BaseException as error:
        # A bug or the job's timeout: said on the mailbox, the claim given back, then raised.
        release(claimed, last_sync_error=_error_text(error), last_sync_error_at=utcnow())
        raise
    release(claimed, last_sync_at=utcnow(), last_sync_error=None, last_sync_error_at=None)
    return result


def _error_text(error: BaseException) -> str:
    """What the admin reads on the mailbox: the kind of failure and the server's words."""
    if isinstance(error, MailboxNotConfigured):
        text = "Not configured: no IMAP host or password"
    elif isinstance(error, imaplib.IMAP4.abort):
        text = f"Connection dropped by the server: {error}"
    elif isinstance(error, imaplib.IMAP4.error):
        text = f"IMAP error: {error}"
    elif isinstance(error, TimeoutError):
        text = f"Timed out: {error}"
    elif isinstance(error, OSError):
        text = f"Cannot connect: {error}"
    else:
        text = f"{type(error).__name__}: {error}"
    return text[:_ERROR_LENGTH]
