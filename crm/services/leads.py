"""Lead capture: one way in for the quick-add, the web forms, the sales mailbox and imports.

A lead is a Contact at the "lead" stage with its source (LEAD_SOURCES, or free text from
an import), kept for acquisition reports. Capturing the same email address twice never
makes a second contact: the existing one gets a timeline entry and stays as it was, so a
form sent twice, or a mail from a known customer, adds to the history it already has.

Exactly one timeline entry of each capture carries `data["lead_source"]`: the "created"
entry of a new lead, or the entry added to an existing contact. Scoring counts web form
submissions by it (crm/services/lead_scoring.py, activity "web_form").
"""

from sqlalchemy import select

from crm.extensions import db
from crm.models import Contact, User
from crm.models.search_keys import email_key
from crm.services import lead_routing, lead_scoring
from crm.services.companies import find_or_create_company
from crm.services.timeline import record_activity


def _text(value: str | None, length: int) -> str:
    return (value or "").strip()[:length]


def find_by_email(email: str | None) -> Contact | None:
    key = email_key(email)
    if not key:
        return None
    return db.session.scalars(
        select(Contact).where(Contact.email_key == key).order_by(Contact.id).limit(1)
    ).first()


def capture_lead(
    *,
    source: str,
    first_name: str = "",
    last_name: str = "",
    email: str | None = None,
    phone: str | None = None,
    company_name: str | None = None,
    message: str | None = None,
    custom_fields: dict | None = None,
    actor: User | None = None,
    route: bool = True,
) -> Contact:
    """A new contact at the "lead" stage with its source (or the existing contact with that
    email, untouched but for a timeline entry), its company found or created by name, the
    message as a note on its timeline, scored, and routed when `route`. The caller commits."""
    source = _text(source, 60) or "manual"
    message = (message or "").strip() or None
    existing = find_by_email(email)
    if existing is not None:
        if message:
            record_activity(
                actor, "note", contact=existing, body=message, data={"lead_source": source}
            )
        else:
            record_activity(
                actor,
                "system",
                contact=existing,
                data={"event": "lead_captured", "lead_source": source},
            )
        return existing

    contact = Contact(
        first_name=_text(first_name, 100),
        last_name=_text(last_name, 100),
        email=_text(email, 254) or None,
        phone=_text(phone, 40) or None,
        stage="lead",
        source=source,
        custom_fields=dict(custom_fields or {}),
    )
    if company_name and company_name.strip():
        contact.company = find_or_create_company(actor, _text(company_name, 200))
    db.session.add(contact)
    record_activity(
        actor, "system", contact=contact, data={"event": "created", "lead_source": source}
    )
    if message:
        record_activity(actor, "note", contact=contact, body=message)
    db.session.flush()  # the scoring reads its activities by id
    lead_scoring.apply(contact, *lead_scoring.score(contact))
    if route:
        lead_routing.route_lead(contact, actor)
    return contact
