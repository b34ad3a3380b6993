"""Personal data of a contact (GDPR): a copy of all we hold about them, erasure on
request, and their consent to be contacted.

The export holds the contact's fields and custom fields, the timeline, the deals, the
emails, the incidents and the campaigns sent to them, each as far as the exporting user may
see it (visible_deals, visible_emails, visible_incidents).

Erasure removes what names or reaches the person (crm.models.contacts.PERSONAL_FIELDS, tags,
custom fields, their address in the emails and campaign sends linked to them) and keeps the
business records (deals, timeline, emails, incidents, stage, owner) attached to an anonymous
"Erased contact #id". Earlier audit entries of the contact are redacted the same way (the
one change the audit log's triggers allow), and the erasure itself is logged without the
erased values.
"""

from email.utils import getaddresses

from sqlalchemy import select

from crm.csv_safety import write_csv
from crm.extensions import db
from crm.models import (
    Activity,
    AuditLog,
    CampaignRecipient,
    Contact,
    Deal,
    EmailMessage,
    Incident,
    User,
)
from crm.models.contacts import CONSENT_STATUSES, PERSONAL_FIELDS
from crm.models.search_keys import email_key
from crm.models.types import utcnow
from crm.permissions import has_permission, visible_deals, visible_emails, visible_incidents
from crm.services import audit, custom_fields
from crm.services.audit import plain
from crm.services.timeline import _deal_events_visible_to

ERASED = "[erased]"
# Audited columns that hold the person's data beside PERSONAL_FIELDS: redacted on erasure.
REDACTED_KEYS = frozenset(PERSONAL_FIELDS) | {"custom_fields"}


def erased_name(contact: Contact) -> str:
    return f"Erased contact #{contact.id}"


# ---- export -------------------------------------------------------------------------


def export(actor: User, contact: Contact) -> dict:
    """Everything held about the contact that `actor` may see, as plain JSON values."""
    fields = {name: plain(getattr(contact, name)) for name in PERSONAL_FIELDS}
    fields.update(
        id=contact.id,
        stage=contact.stage,
        source=contact.source,
        score=contact.score,
        company=contact.company.name if contact.company else None,
        owner=contact.owner.name if contact.owner else None,
        tags=[tag.name for tag in contact.tags],
        consent_status=contact.consent_status,
        consent_at=plain(contact.consent_at),
        unsubscribed_at=plain(contact.unsubscribed_at),
        erased_at=plain(contact.erased_at),
        created_at=plain(contact.created_at),
        updated_at=plain(contact.updated_at),
        custom_fields=_custom_values(contact),
    )
    activities = db.session.scalars(
        select(Activity)
        .where(Activity.contact_id == contact.id, _deal_events_visible_to(actor))
        .order_by(Activity.occurred_at, Activity.id)
    )
    see_amounts = has_permission(actor, "deals.see_amounts")
    deals = db.session.scalars(
        visible_deals(actor).where(Deal.contact_id == contact.id).order_by(Deal.id)
    )
    return {
        "contact": fields,
        "activities": [
            {
                "id": a.id,
                "kind": a.kind,
                "occurred_at": plain(a.occurred_at),
                "author": a.author.name if a.author else None,
                "subject": a.subject,
                "body": a.body,
                "outcome": a.outcome,
                "data": a.data,
            }
            for a in activities
        ],
        "deals": [
            {
                "id": d.id,
                "title": d.title,
                "stage": d.stage.name,
                "expected_close": plain(d.expected_close),
                **({"amount": plain(d.amount), "currency": d.currency} if see_amounts else {}),
            }
            for d in deals
        ],
        "emails": [
            {
                "id": m.id,
                "direction": m.direction,
                "sent_at": plain(m.sent_at),
                "from": m.from_address,
                "to": m.to_addresses or [],
                "cc": m.cc_addresses or [],
                "subject": m.subject,
                "body": m.text_body,
                "opened_at": plain(m.first_opened_at),
            }
            for m in db.session.scalars(
                visible_emails(actor)
                .where(EmailMessage.contact_id == contact.id)
                .order_by(EmailMessage.sent_at, EmailMessage.id)
            )
        ],
        "incidents": [
            {
                "id": i.id,
                "subject": i.subject,
                "description": i.description,
                "status": i.status,
                "created_at": plain(i.created_at),
                "closed_at": plain(i.closed_at),
            }
            for i in db.session.scalars(
                visible_incidents(actor)
                .where(Incident.contact_id == contact.id)
                .order_by(Incident.id)
            )
        ],
        "campaigns": [
            {
                "id": r.id,
                "campaign": r.campaign.name,
                "email": r.email,
                "status": r.status,
                "skip_reason": r.skip_reason,
                "sent_at": plain(r.sent_at),
                "opened_at": plain(r.opened_at),
                "replied_at": plain(r.replied_at),
            }
            for r in db.session.scalars(
                select(CampaignRecipient)
                .where(CampaignRecipient.contact_id == contact.id)
                .order_by(CampaignRecipient.id)
            )
        ],
    }


def _custom_values(contact: Contact) -> dict:
    """{label: value as shown} of the contact's custom fields that hold a value."""
    values = contact.custom_fields or {}
    return {
        d.label: custom_fields.display(d, values[d.key])
        for d in custom_fields.definitions("contact", include_inactive=True)
        if values.get(d.key) not in (None, "", [])
    }


def as_csv(data: dict) -> str:
    """The export as one long table: section, item, field, value."""
    rows = []
    for name, value in data["contact"].items():
        rows.append(("contact", data["contact"]["id"], name, _cell(value)))
    for section in ("activities", "deals", "emails", "incidents", "campaigns"):
        for item in data[section]:
            rows.extend(
                (section, item["id"], name, _cell(value))
                for name, value in item.items()
                if name != "id"
            )
    return write_csv(["section", "item", "field", "value"], rows)


def _cell(value) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}={v}" for k, v in value.items())
    return "" if value is None else str(value)


def record_export(actor: User, contact: Contact, kind: str) -> None:
    audit.record("export", contact, summary=f"Personal data ({kind})", actor=actor)


# ---- erasure --------------------------------------------------------------------------


def erase(actor: User, contact: Contact) -> None:
    """Remove the person, keep the business records. The caller commits."""
    audit.quiet(contact)  # the generic log would keep the erased values as "before"
    addresses = {email_key(contact.email)} - {""}
    for name in PERSONAL_FIELDS:
        setattr(contact, name, None)
    contact.first_name = ""
    contact.last_name = erased_name(contact)
    contact.tags = []
    contact.custom_fields = {}
    _erase_addresses(contact, addresses)
    contact.erased_at = utcnow()
    entries = db.session.scalars(
        select(AuditLog).where(
            AuditLog.entity_type == "contact",
            AuditLog.entity_id == contact.id,
            AuditLog.redacted_at.is_(None),
        )
    )
    for entry in entries:
        entry.summary = erased_name(contact)
        entry.changes = _redacted(entry.changes)
        entry.redacted_at = utcnow()
    audit.record(
        "erase",
        contact,
        summary=erased_name(contact),
        changes={name: [ERASED, None] for name in PERSONAL_FIELDS},
        actor=actor,
    )


def _redacted(changes: dict | None) -> dict | None:
    if not changes:
        return changes
    return {
        key: [ERASED if v is not None else None for v in pair] if key in REDACTED_KEYS else pair
        for key, pair in changes.items()
    }


def _erase_addresses(contact: Contact, addresses: set[str]) -> None:
    """The person's address out of the emails and campaign sends linked to them; the
    messages themselves stay on the timeline, like the notes and calls."""
    for recipient in db.session.scalars(
        select(CampaignRecipient).where(CampaignRecipient.contact_id == contact.id)
    ):
        recipient.email = ""
    for message in db.session.scalars(
        select(EmailMessage).where(EmailMessage.contact_id == contact.id)
    ):
        if _keys([message.from_address]) & addresses:
            message.from_address, message.from_name = "", None
        message.to_addresses = _without(message.to_addresses, addresses)
        message.cc_addresses = _without(message.cc_addresses, addresses)


def _keys(entries) -> set[str]:
    return {email_key(address) for _name, address in getaddresses(entries or [])}


def _without(entries: list | None, addresses: set[str]) -> list:
    return [entry for entry in entries or [] if not (_keys([entry]) & addresses)]


# ---- consent ---------------------------------------------------------------------------


def set_consent(contact: Contact, status: str) -> None:
    if status not in CONSENT_STATUSES:
        raise ValueError(f"unknown consent status {status!r}")
    if status != contact.consent_status:
        contact.consent_status = status
        contact.consent_at = None if status == "unknown" else utcnow()


def set_unsubscribed(contact: Contact, unsubscribed: bool) -> None:
    if unsubscribed and contact.unsubscribed_at is None:
        contact.unsubscribed_at = utcnow()
    elif not unsubscribed:
        contact.unsubscribed_at = None
