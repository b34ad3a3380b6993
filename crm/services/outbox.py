"""Email out: one EmailMessage row per message, queued, then sent by the worker.

queue_message() writes the row with its final Message-ID (<out-<uuid>@sender-domain>)
before any attempt, puts it in its thread and on the timelines, and has the send job
enqueued once the transaction commits (a job for a row that was rolled back would
find nothing; a job enqueued before the commit could run before the row exists).

deliver() is that job's work. It claims the row with a compare-and-set (queued ->
sending, attempts + 1), so a row enqueued twice, or picked by two workers, goes out
once; sends it; and records what happened:
- accepted: sent, delivered_at;
- refused for now (4xx, timeout, no connection): queued again with next_attempt_at
  after a growing wait (OUTBOX_RETRY_MINUTES), failed after OUTBOX_MAX_ATTEMPTS;
- refused for good (5xx): failed with a clear last_error, and the author notified.
While a row is "sending", next_attempt_at holds the time it was claimed: a row still
"sending" OUTBOX_CLAIM_TIMEOUT_SECONDS later was left by a worker that died, and the
sweeper (crm/jobs/outbox.py) has it sent again, with the same Message-ID, so the
recipient's mail client shows it once even if the first try did reach the server.
"""

import html
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta
from email.utils import formataddr, parseaddr

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, event, or_, select, update
from sqlalchemy.orm import Session, selectinload

from crm import mail
from crm.extensions import db
from crm.i18n import language_for
from crm.models import (
    Company,
    Contact,
    Deal,
    EmailAttachment,
    EmailMessage,
    EmailThread,
    Incident,
    Mailbox,
    User,
)
from crm.models.mail import PRIVACY_LEVELS
from crm.models.types import utcnow
from crm.services import canned_responses, notifications

log = logging.getLogger(__name__)

SNIPPET_LENGTH = 200
_PENDING = "outbox_pending_sends"


class OutboxRefused(ValueError):
    """A message that cannot be queued as written; the message is for the user."""


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    content: bytes


# ---- who may send from where ------------------------------------------------------------


def sender_mailboxes(user: User) -> list[Mailbox]:
    """The mailboxes `user` may send from: their own first, then the shared ones."""
    query = (
        select(Mailbox)
        .where(Mailbox.active.is_(True))
        .where(or_(Mailbox.owner_id == user.id, Mailbox.owner_id.is_(None)))
        .order_by(Mailbox.owner_id.is_(None), Mailbox.name)
    )
    return list(db.session.scalars(query))


def default_privacy(mailbox: Mailbox | None) -> str:
    """Mail from a shared mailbox is the company's; from a personal one, the team's."""
    if mailbox is not None and (mailbox.owner_id is not None or mailbox.owner is not None):
        return "team"
    return "public"


def sender_address(author: User | None, mailbox: Mailbox | None) -> str:
    if mailbox is not None:
        name = mailbox.owner.name if mailbox.owner is not None else mailbox.name
        return formataddr((name, mailbox.address))
    default_name, default_address = parseaddr(current_app.config["MAIL_FROM"])
    return formataddr((author.name if author else default_name, default_address))


def normalize_message_id(value: str | None) -> str:
    """The dedup and threading key of a Message-ID (helper of the inbound parser when it
    exists, so both sides agree)."""
    try:
        from crm.services.email_parsing import normalize_message_id as parse_normalize
    except ImportError:
        return (value or "").strip().strip("<>").strip().lower()
    return parse_normalize(value)


# ---- queueing ----------------------------------------------------------------------------


def queue_message(
    author: User | None,
    mailbox: Mailbox | None,
    to: list[str],
    cc: list[str],
    subject: str,
    text: str,
    html_body: str | None = None,
    attachments: list[Attachment] = (),
    *,
    contact: Contact | None = None,
    company: Company | None = None,
    deal: Deal | None = None,
    incident: Incident | None = None,
    in_reply_to: EmailMessage | None = None,
    thread: EmailThread | None = None,
    track_opens: bool = False,
    privacy: str | None = None,
) -> EmailMessage:
    """Write an outgoing message and have it sent after the commit; returns the row.

    Refuses (OutboxRefused) a message without a recipient or still holding a placeholder:
    a gap is never sent blank. `thread`: the conversation it belongs to when the caller
    knows it (an incident's); else the thread of `in_reply_to`, else a new one.
    """
    to = [address.strip() for address in to if address and address.strip()]
    cc = [address.strip() for address in cc if address and address.strip()]
    if not to:
        raise OutboxRefused(_l("Say whom to send it to."))
    gaps = canned_responses.unfilled(f"{subject}\n{text}")
    if gaps:
        raise OutboxRefused(_l("Fill in the gaps before sending: %(gaps)s", gaps=", ".join(gaps)))
    if privacy not in PRIVACY_LEVELS:
        privacy = default_privacy(mailbox)
    if company is None and contact is not None:
        company = contact.company
    at = utcnow()
    from_name, from_address = parseaddr(sender_address(author, mailbox))
    message = EmailMessage(
        mailbox=mailbox,
        direction="out",
        status="queued",
        privacy=privacy,
        subject=subject.strip(),
        from_address=from_address,
        from_name=from_name or None,
        to_addresses=to,
        cc_addresses=cc,
        text_body=text,
        html_body=html_body,
        snippet=_snippet(text),
        sent_at=at,
        next_attempt_at=at,
        contact=contact,
        company=company,
        deal=deal,
        incident=incident,
        author=author,
        owner=author,
        track_opens=bool(track_opens),
        tracking_token=secrets.token_urlsafe(24) if track_opens else None,
    )
    message.message_id = mail.outbound_message_id(from_address)
    message.message_id_key = normalize_message_id(message.message_id)
    if in_reply_to is not None:
        message.in_reply_to = in_reply_to.message_id
        message.references = " ".join(
            part for part in (in_reply_to.references, in_reply_to.message_id) if part
        )
    for attachment in attachments:
        message.attachments.append(
            EmailAttachment(
                filename=attachment.filename,
                content_type=attachment.content_type or "application/octet-stream",
                size=len(attachment.content),
                content=attachment.content,
            )
        )
    db.session.add(message)
    _put_in_thread(message, thread or (in_reply_to.thread if in_reply_to else None))
    db.session.flush()
    _link_to_timelines(message)
    send_after_commit(message.id)
    return message


def _snippet(text: str) -> str:
    return " ".join((text or "").split())[:SNIPPET_LENGTH]


def _put_in_thread(message: EmailMessage, thread: EmailThread | None) -> None:
    """The given thread; else the inbound work's threading (In-Reply-To, References);
    else a new thread about the message's records."""
    if thread is None and message.in_reply_to:
        try:
            from crm.services.email_threading import attach_to_thread

            db.session.flush()
            thread = attach_to_thread(message)
        except NotImplementedError:
            thread = None
    if thread is None:
        thread = EmailThread(
            subject=message.subject[:300],
            incident_id=message.incident.id if message.incident else None,
            deal_id=message.deal.id if message.deal else None,
            contact_id=message.contact.id if message.contact else None,
        )
        db.session.add(thread)
    message.thread = thread
    thread.last_message_at = message.sent_at


def _link_to_timelines(message: EmailMessage) -> None:
    """One timeline entry per contact the message involves (the inbound work's linker);
    until it exists, one entry on the chosen contact or company."""
    try:
        from crm.services.email_timeline import link_known_records

        link_known_records(message, new=True)  # queued just now
        return
    except NotImplementedError:
        pass
    if message.contact is None and message.company is None:
        return
    from crm.services.timeline import record_activity

    activity = record_activity(
        message.author,
        "email",
        contact=message.contact,
        company=message.company,
        deal=message.deal,
        subject=message.subject[:200],
        body=message.snippet,
        occurred_at=message.sent_at,
        incident_id=message.incident_id,
    )
    activity.email_message_id = message.id


def send_after_commit(message_id: int) -> None:
    """Enqueue the send job once the current transaction commits (never if it rolls back)."""
    session = db.session()
    session.info.setdefault(_PENDING, []).append(message_id)


@event.listens_for(Session, "after_commit")
def _enqueue_pending(session) -> None:
    pending = session.info.pop(_PENDING, None)
    if pending:
        from crm.jobs.outbox import enqueue_send

        for message_id in pending:
            try:
                enqueue_send(message_id)
            except Exception:  # noqa: BLE001  (Redis away: the row is queued, the sweeper sends it)
                log.warning(
                    "Could not enqueue email %s; the sweeper will", message_id, exc_info=True
                )


@event.listens_for(Session, "after_rollback")
def _forget_pending(session) -> None:
    session.info.pop(_PENDING, None)


# ---- sending -----------------------------------------------------------------------------


def _claim_timeout() -> timedelta:
    return timedelta(seconds=current_app.config["OUTBOX_CLAIM_TIMEOUT_SECONDS"])


def _due_condition(at):
    """Queued and due, or "sending" for longer than a live worker would take."""
    return or_(
        and_(
            EmailMessage.status == "queued",
            or_(EmailMessage.next_attempt_at.is_(None), EmailMessage.next_attempt_at <= at),
        ),
        and_(
            EmailMessage.status == "sending",
            EmailMessage.next_attempt_at <= at - _claim_timeout(),
        ),
    )


def due_messages(at=None) -> list[tuple[int, str]]:
    """(id, status) of the outgoing messages to send now, oldest first."""
    at = at or utcnow()
    query = (
        select(EmailMessage.id, EmailMessage.status)
        .where(EmailMessage.direction == "out", _due_condition(at))
        .order_by(EmailMessage.next_attempt_at, EmailMessage.id)
    )
    return [tuple(row) for row in db.session.execute(query)]


def claim(message_id: int) -> int | None:
    """queued (or abandoned sending) -> sending, for one worker only; the attempt number."""
    at = utcnow()
    result = db.session.execute(
        update(EmailMessage)
        .where(EmailMessage.id == message_id, EmailMessage.direction == "out", _due_condition(at))
        .values(status="sending", attempts=EmailMessage.attempts + 1, next_attempt_at=at)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        db.session.rollback()
        return None
    db.session.commit()
    return db.session.scalar(select(EmailMessage.attempts).where(EmailMessage.id == message_id))


def deliver(message_id: int) -> str:
    """Send one queued message once; returns what happened (the job's result)."""
    attempt = claim(message_id)
    if attempt is None:
        return "not claimed"  # sent, failed, not due yet, or another worker has it
    message = db.session.scalars(
        select(EmailMessage)
        .where(EmailMessage.id == message_id)
        .options(
            selectinload(EmailMessage.attachments).undefer(EmailAttachment.content),
            selectinload(EmailMessage.mailbox),
        )
        .execution_options(populate_existing=True)
    ).one()
    built = build(message)
    mailbox = message.mailbox
    # No transaction stays open (and no row locked) while SMTP takes its time.
    db.session.commit()
    try:
        mail.deliver(built, mailbox)
    except mail.MailError as error:
        return _record_failure(message_id, attempt, error)
    _finish(
        message_id,
        attempt,
        status="sent",
        delivered_at=utcnow(),
        last_error=None,
        next_attempt_at=None,
    )
    db.session.commit()
    return "sent"


def _finish(message_id: int, attempt: int, **values) -> bool:
    """Record the outcome, unless another worker took the row over meanwhile."""
    result = db.session.execute(
        update(EmailMessage)
        .where(
            EmailMessage.id == message_id,
            EmailMessage.status == "sending",
            EmailMessage.attempts == attempt,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def _record_failure(message_id: int, attempt: int, error: mail.MailError) -> str:
    config = current_app.config
    if error.temporary and attempt < config["OUTBOX_MAX_ATTEMPTS"]:
        waits = config["OUTBOX_RETRY_MINUTES"]
        wait = waits[min(attempt, len(waits)) - 1]
        _finish(
            message_id,
            attempt,
            status="queued",
            next_attempt_at=utcnow() + timedelta(minutes=wait),
            last_error=str(error),
        )
        db.session.commit()
        return f"retry in {wait} min: {error}"
    message = db.session.get(EmailMessage, message_id)
    author = message.author
    with force_locale(_locale_of(author)):
        if error.temporary:
            reason = _(
                "No server took the message after %(count)s tries: %(error)s",
                count=attempt,
                error=str(error),
            )
        else:
            reason = _("The server refused the message: %(error)s", error=str(error))
        title = _("Your email could not be sent: %(subject)s", subject=message.subject)
    finished = _finish(
        message_id, attempt, status="failed", last_error=reason, next_attempt_at=None
    )
    if finished and author is not None:
        notifications.notify(
            author, title, kind="email_failed", body=reason, url=f"/email/messages/{message_id}"
        )
    db.session.commit()
    return f"failed: {reason}"


def _locale_of(user: User | None) -> str:
    return language_for(user)


def retry(message: EmailMessage) -> None:
    """A failed message, queued again now with its tries counted afresh (same Message-ID)."""
    message.status = "queued"
    message.attempts = 0
    message.next_attempt_at = utcnow()
    send_after_commit(message.id)


def pixel_url(token: str) -> str:
    return f"{current_app.config['BASE_URL'].rstrip('/')}/email/t/{token}.gif"


def text_to_html(text: str) -> str:
    paragraphs = (text or "").replace("\r\n", "\n").split("\n\n")
    return "".join(
        "<p>" + html.escape(part).replace("\n", "<br>\n") + "</p>\n" for part in paragraphs
    )


def build(message: EmailMessage):
    """The MIME message as it goes out: headers, text, HTML (with the pixel when
    tracked), attachments. The same bytes-to-be on every try, but the Date."""
    headers = {}
    if message.cc_addresses:
        headers["Cc"] = ", ".join(message.cc_addresses)
    if message.in_reply_to:
        headers["In-Reply-To"] = message.in_reply_to
    if message.references:
        headers["References"] = message.references
    if message.campaign_id is not None:  # List-Unsubscribe (RFC 2369, 8058)
        from crm.services.campaigns import list_unsubscribe_headers

        headers.update(list_unsubscribe_headers(message))
    body_html = message.html_body
    if message.track_opens and message.tracking_token:
        body_html = (body_html or text_to_html(message.text_body or "")) + (
            f'<img src="{pixel_url(message.tracking_token)}" width="1" height="1" alt="">'
        )
    built = mail.build_message(
        ", ".join(message.to_addresses),
        message.subject,
        message.text_body or "",
        body_html,
        message_id=message.message_id,
        sender=formataddr((message.from_name or "", message.from_address)),
        headers=headers,
        automatic=False,
    )
    for attachment in message.attachments:
        maintype, _sep, subtype = (attachment.content_type or "").partition("/")
        if not maintype or not subtype:
            maintype, subtype = "application", "octet-stream"
        built.add_attachment(
            attachment.content, maintype=maintype, subtype=subtype, filename=attachment.filename
        )
    return built


# ---- open tracking -----------------------------------------------------------------------


def record_open(token: str) -> bool:
    """The pixel was fetched: first and last open, and the count (tracked messages only)."""
    at = utcnow()
    db.session.execute(
        update(EmailMessage)
        .where(
            EmailMessage.tracking_token == token,
            EmailMessage.track_opens.is_(True),
            EmailMessage.first_opened_at.is_(None),
        )
        .values(first_opened_at=at)
        .execution_options(synchronize_session=False)
    )
    result = db.session.execute(
        update(EmailMessage)
        .where(EmailMessage.tracking_token == token, EmailMessage.track_opens.is_(True))
        .values(last_opened_at=at, open_count=EmailMessage.open_count + 1)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1
