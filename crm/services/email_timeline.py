"""A message on the 360° timelines: one Activity (kind "email") per linked contact or company.

Owned by the inbound email work; outbound messages call it too.
"""

from email.utils import getaddresses, parseaddr

from flask import current_app
from sqlalchemy import func, select

from crm.extensions import db
from crm.models import Activity, Company, Contact, EmailMessage, Mailbox
from crm.models.search_keys import email_key
from crm.services.timeline import record_activity

_SUBJECT_LENGTH = 200


def involved_addresses(message: EmailMessage) -> list[str]:
    """The email keys of From, To and Cc, the other party first: the sender of a message
    that came in, the first recipient of one that went out."""
    sender = [message.from_address or ""]
    recipients = [*(message.to_addresses or []), *(message.cc_addresses or [])]
    ordered = sender + recipients if message.direction == "in" else recipients + sender
    keys = (email_key(address) for _name, address in getaddresses(ordered))
    return [k for k in dict.fromkeys(keys) if k and "@" in k]


def own_addresses() -> set[str]:
    """Our mailboxes (shared and personal) and the default sender: never a contact."""
    ours = {email_key(a) for a in db.session.scalars(select(Mailbox.address))}
    ours.add(email_key(parseaddr(current_app.config.get("MAIL_FROM", ""))[1]))
    return ours


def known_records(keys: list[str]) -> tuple[list[Contact], list[Company]]:
    """The contacts with those addresses (erased people left out), in the order of `keys`,
    and the companies whose own address is one of them."""
    if not keys:
        return [], []
    contacts = db.session.scalars(
        select(Contact).where(Contact.email_key.in_(keys), Contact.erased_at.is_(None))
    ).all()
    rank = {key: i for i, key in enumerate(keys)}
    contacts = sorted(contacts, key=lambda c: (rank[c.email_key], c.id))
    companies = db.session.scalars(
        select(Company).where(func.lower(func.trim(Company.email)).in_(keys)).order_by(Company.id)
    ).all()
    return contacts, list(companies)


def link_known_records(message: EmailMessage, new: bool = False) -> list:
    """Find the contacts (by email_key of From, To, Cc, other than our own mailboxes) and
    their companies (and companies by their own email) that `message` involves, set
    message.contact/company to the main one, and add one timeline Activity(kind="email",
    email_message_id=message.id, subject, body=snippet, occurred_at=sent_at, author for
    outbound, deal_id/incident_id when set) per contact, or per company when no contact.
    Idempotent: running it twice adds nothing. Returns the activities added. `new`: the
    message was written in this transaction, so no entry can point at it yet (not looked for).
    """
    ours = own_addresses()
    keys = [k for k in involved_addresses(message) if k not in ours]
    contacts, companies = known_records(keys)
    if message.contact is None and contacts:
        message.contact = contacts[0]
    if message.company is None:
        if message.contact is not None and message.contact.company is not None:
            message.company = message.contact.company
        elif companies:
            message.company = companies[0]
    if message.thread is not None and message.thread.contact_id is None and message.contact:
        message.thread.contact_id = message.contact.id
    if message.id is None:
        db.session.flush()  # the activities point at the message

    already = set()
    if not new:
        already = set(
            db.session.execute(
                select(Activity.contact_id, Activity.company_id).where(
                    Activity.email_message_id == message.id
                )
            ).all()
        )
    linked_contacts = {contact_id for contact_id, _company in already if contact_id}
    covered_companies = {company_id for _contact, company_id in already if company_id}
    # The contact the routing chose (a lead just captured) counts even if its address is
    # written differently.
    if message.contact is not None and message.contact not in contacts:
        contacts.insert(0, message.contact)
    added = []
    for contact in contacts:
        if contact.id in linked_contacts or contact.erased_at is not None:
            continue
        added.append(_activity(message, contact=contact, company=contact.company))
        linked_contacts.add(contact.id)
        if contact.company_id:
            covered_companies.add(contact.company_id)
    for company in companies:
        if company.id in covered_companies:
            continue
        added.append(_activity(message, contact=None, company=company))
        covered_companies.add(company.id)
    return added


def _activity(message: EmailMessage, *, contact: Contact | None, company: Company | None):
    activity = record_activity(
        message.author if message.direction == "out" else None,
        "email",
        contact=contact,
        company=company,
        subject=(message.subject or "")[:_SUBJECT_LENGTH] or None,
        body=message.snippet or None,
        occurred_at=message.sent_at,
        incident_id=message.incident_id,
    )
    activity.deal_id = message.deal_id
    activity.email_message_id = message.id
    return activity
