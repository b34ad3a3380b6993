"""Which conversation a message belongs to (In-Reply-To, then References), and what it is about.

Owned by the inbound email work; outbound replies call it too.
"""

from sqlalchemy import select

from crm.extensions import db
from crm.models import EmailMessage, EmailThread
from crm.models.types import utcnow
from crm.services.email_parsing import message_ids, normalize_message_id

_SUBJECT_LENGTH = 300


def _parent_keys(message: EmailMessage) -> list[str]:
    """The ids the message answers, the one to try first first: In-Reply-To, then
    References from the newest (last) to the oldest."""
    ids = message_ids(message.in_reply_to) + message_ids(message.references)[::-1]
    own = message.message_id_key
    keys = (normalize_message_id(i) for i in ids)
    return [k for k in dict.fromkeys(keys) if k and k != own]


def _known_parent(keys: list[str]) -> EmailMessage | None:
    """The first of `keys` that a threaded message of any mailbox carries (one query)."""
    if not keys:
        return None
    found = db.session.execute(
        select(EmailMessage.message_id_key, EmailMessage.id)
        .where(EmailMessage.message_id_key.in_(keys), EmailMessage.thread_id.isnot(None))
        .order_by(EmailMessage.id)
    ).all()
    first_of_key = {}
    for key, message_id in found:
        first_of_key.setdefault(key, message_id)
    for key in keys:
        if key in first_of_key:
            return db.session.get(EmailMessage, first_of_key[key])
    return None


def attach_to_thread(message: EmailMessage) -> EmailThread:
    """Put `message` in the thread of the message it answers (In-Reply-To, else the newest
    known of References, looked up by normalized Message-ID in any mailbox), or in a new
    thread. The thread keeps its incident/deal/contact; sets message.thread and returns it."""
    thread = message.thread
    moment = message.sent_at or utcnow()
    if thread is None:
        parent = _known_parent(_parent_keys(message))
        if parent is not None:
            thread = parent.thread
            # A reply to a campaign's mail counts for that campaign.
            if message.campaign_id is None:
                message.campaign_id = parent.campaign_id
        else:
            thread = EmailThread(
                subject=(message.subject or "")[:_SUBJECT_LENGTH],
                incident_id=message.incident_id,
                deal_id=message.deal_id,
                contact_id=message.contact_id,
                created_at=moment,
                last_message_at=moment,
            )
            db.session.add(thread)
        message.thread = thread
    # What the conversation is about comes with each of its messages, unless set apart.
    if message.incident_id is None:
        message.incident_id = thread.incident_id
    if message.deal_id is None:
        message.deal_id = thread.deal_id
    if thread.last_message_at is None or moment > thread.last_message_at:
        thread.last_message_at = moment
    return thread
