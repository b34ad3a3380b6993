"""Writing an email from a record: who it goes to, from where, whether opens are tracked,
and what the pages around a message need (its thread, the timeline's rows).

No request here: the email blueprint parses the form and calls these.
"""

import re
from dataclasses import dataclass, field
from email.utils import parseaddr

from sqlalchemy import select
from sqlalchemy.orm import selectinload, undefer

from crm.extensions import db
from crm.models import (
    Company,
    Contact,
    Deal,
    EmailMessage,
    EmailTemplate,
    Incident,
    Mailbox,
    User,
)
from crm.permissions import ADMIN, visible_emails
from crm.services import outbox

ADDRESS = re.compile(r"^[^@\s<>(),;:\"]+@[^@\s<>(),;:\"]+\.[^@\s<>(),;:\"]+$")
_SEPARATOR = re.compile(r"[,;](?=(?:[^\"]*\"[^\"]*\")*[^\"]*$)")
MAX_RECIPIENTS = 50
MAX_ATTACHMENTS = 10
RECIPIENT_SUGGESTIONS = 20


@dataclass
class About:
    """The records a message is about, from the one it was written on."""

    record: object | None = None
    contact: Contact | None = None
    company: Company | None = None
    deal: Deal | None = None
    incident: Incident | None = None
    suggestions: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        """ "contact:12": the hidden field that brings the record back with the form."""
        if self.record is None:
            return ""
        return f"{type(self.record).__name__.lower()}:{self.record.id}"

    def as_kwargs(self) -> dict:
        return {
            "contact": self.contact,
            "company": self.company,
            "deal": self.deal,
            "incident": self.incident,
        }


def about(record) -> About:
    if isinstance(record, Contact):
        return About(record, contact=record, company=record.company)
    if isinstance(record, Company):
        return About(record, company=record)
    if isinstance(record, Deal):
        return About(record, contact=record.contact, company=record.company, deal=record)
    if isinstance(record, Incident):
        return About(record, contact=record.contact, company=record.company, incident=record)
    return About()


def recipients(subject: About) -> list[str]:
    """Whom to write to: the contact; on a company or deal without one, the company's
    address or its people's. The first is prefilled, the others are suggested."""
    found = []
    if subject.contact is not None and subject.contact.email:
        found.append(subject.contact.email)
    company = subject.company
    if company is not None and (not found or subject.contact is None):
        if company.email:
            found.append(company.email)
        people = db.session.scalars(
            select(Contact.email)
            .where(Contact.company_id == company.id, Contact.email.isnot(None))
            .where(Contact.email != "")
            .order_by(Contact.sort_name, Contact.id)
            .limit(RECIPIENT_SUGGESTIONS)
        )
        found += list(people)
    return list(dict.fromkeys(found))


def may_track(contact: Contact | None) -> bool:
    """Opens are never tracked for a person who refused consent or unsubscribed."""
    if contact is None:
        return True
    return contact.consent_status != "refused" and contact.unsubscribed_at is None


def parse_addresses(text: str) -> tuple[list[str], list[str]]:
    """Addresses typed as "a@x.fr, Bob <b@y.com>; c@z.org": (valid ones, invalid ones)."""
    valid, invalid = [], []
    # Commas and semicolons part addresses, except inside a quoted name ("Curie, Marie").
    for chunk in _SEPARATOR.split(text or ""):
        if not chunk.strip():
            continue
        _name, address = parseaddr(chunk)
        address = address.strip()
        (valid if ADDRESS.match(address) else invalid).append(address or chunk.strip())
    return list(dict.fromkeys(valid)), invalid


def sender_choices(user: User) -> list[Mailbox]:
    return outbox.sender_mailboxes(user)


def templates() -> list[EmailTemplate]:
    return list(db.session.scalars(select(EmailTemplate).order_by(EmailTemplate.name)))


# ---- reading ---------------------------------------------------------------------------


def may_retry(user: User, message: EmailMessage) -> bool:
    return message.status == "failed" and (user.role == ADMIN or message.author_id == user.id)


def may_change_privacy(user: User, message: EmailMessage) -> bool:
    return message.owner_id == user.id


def thread_messages(user: User, message: EmailMessage) -> list[EmailMessage]:
    """The messages of `message`'s thread that `user` may read, oldest first (one query)."""
    if message.thread_id is None:
        return [message]
    query = (
        visible_emails(user)
        .where(EmailMessage.thread_id == message.thread_id)
        .order_by(EmailMessage.sent_at, EmailMessage.id)
    )
    return list(db.session.scalars(query))


def load_for_page(user: User, message_id: int) -> EmailMessage | None:
    """The message with what its page shows, if `user` may read it."""
    query = (
        visible_emails(user)
        .where(EmailMessage.id == message_id)
        .options(
            selectinload(EmailMessage.attachments),
            selectinload(EmailMessage.contact),
            selectinload(EmailMessage.company),
            selectinload(EmailMessage.author),
            selectinload(EmailMessage.mailbox),
            undefer(EmailMessage.html_body),
            undefer(EmailMessage.text_body),
        )
    )
    return db.session.scalars(query).one_or_none()
