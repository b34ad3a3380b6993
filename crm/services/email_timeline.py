"""A message on the 360° timelines: one Activity (kind "email") per linked contact or company.

Owned by the inbound email work; outbound messages call it too.
"""

from crm.models import EmailMessage


def link_known_records(message: EmailMessage) -> list:
    """Find the contacts (by email_key of From, To, Cc, other than our own mailboxes) and
    their companies (and companies by their own email) that `message` involves, set
    message.contact/company to the main one, and add one timeline Activity(kind="email",
    email_message_id=message.id, subject, body=snippet, occurred_at=sent_at, author for
    outbound, deal_id/incident_id when set) per contact, or per company when no contact.
    Idempotent: running it twice adds nothing. Returns the activities added."""
    raise NotImplementedError
