"""An incident's replies go out by email, in the incident's own thread.

The reply leaves from the support mailbox (purpose "support", active) or, without one,
from the default sender; it goes to the incident's contact, with the subject
"Re: <subject> [<reference>]" so that the customer's answer can be routed back, and
answers the last message the customer sent in that thread.
"""

from sqlalchemy import and_, select

from crm.extensions import db
from crm.models import EmailMessage, EmailThread, Incident, IncidentMessage, Mailbox, User
from crm.services import outbox

NO_ADDRESS = "no_address"


def support_mailbox() -> Mailbox | None:
    query = (
        select(Mailbox)
        .where(Mailbox.purpose == "support", Mailbox.active.is_(True), Mailbox.owner_id.is_(None))
        .order_by(Mailbox.id)
        .limit(1)
    )
    return db.session.scalars(query).first()


def incident_thread(incident: Incident) -> tuple[EmailThread, EmailMessage | None]:
    """The incident's conversation by email (the newest, if mail made several) and the last
    message the customer sent in it, in one query; a new thread when there is none."""
    found = db.session.execute(
        select(EmailThread, EmailMessage)
        .outerjoin(
            EmailMessage,
            and_(EmailMessage.thread_id == EmailThread.id, EmailMessage.direction == "in"),
        )
        .where(EmailThread.incident_id == incident.id)
        .order_by(
            EmailThread.last_message_at.desc(),
            EmailThread.id.desc(),
            EmailMessage.id.is_(None),
            EmailMessage.sent_at.desc(),
            EmailMessage.id.desc(),
        )
        .limit(1)
    ).first()
    if found is not None:
        return found[0], found[1]
    thread = EmailThread(
        subject=incident.subject[:300], incident_id=incident.id, contact_id=incident.contact_id
    )
    db.session.add(thread)
    return thread, None


def reply_subject(incident: Incident) -> str:
    # "Re:" as every mail client writes it, whatever the language.
    return f"Re: {incident.subject} [{incident.reference}]"


def send_reply(actor: User, incident: Incident, reply: IncidentMessage) -> EmailMessage | None:
    """Queue `reply` as an email to the incident's contact; None (and the reply marked
    "not sent: no email address") when there is nobody to write to."""
    address = incident.contact.email if incident.contact is not None else None
    if not address:
        reply.email_status = NO_ADDRESS
        return None
    thread, last_inbound = incident_thread(incident)
    message = outbox.queue_message(
        actor,
        support_mailbox(),
        [address],
        [],
        reply_subject(incident),
        reply.body,
        contact=incident.contact,
        company=incident.company,
        incident=incident,
        thread=thread,
        in_reply_to=last_inbound,
    )
    reply.email = message
    reply.email_status = "queued"
    return message
