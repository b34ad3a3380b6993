"""Personal data of a contact (GDPR): a copy of all we hold about them, erasure on
request, and their consent to be contacted.

Erasure removes what names or reaches the person (crm.models.contacts.PERSONAL_FIELDS, tags)
and keeps the business records (deals, timeline, stage, owner) attached to an anonymous
"Erased contact #id". Earlier audit entries of the contact are redacted the same way (the
one change the audit log's triggers allow), and the erasure itself is logged without the
erased values.
"""

from sqlalchemy import select

from crm.csv_safety import write_csv
from crm.extensions import db
from crm.models import Activity, AuditLog, Contact, Deal, User
from crm.models.contacts import CONSENT_STATUSES, PERSONAL_FIELDS
from crm.models.types import utcnow
from crm.permissions import has_permission, visible_deals
from crm.services import audit
from crm.services.audit import plain
from crm.services.timeline import _deal_events_visible_to

ERASED = "[erased]"


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
    }


def as_csv(data: dict) -> str:
    """The export as one long table: section, item, field, value."""
    rows = []
    for name, value in data["contact"].items():
        rows.append(("contact", data["contact"]["id"], name, _cell(value)))
    for section in ("activities", "deals"):
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
    for name in PERSONAL_FIELDS:
        setattr(contact, name, None)
    contact.first_name = ""
    contact.last_name = erased_name(contact)
    contact.tags = []
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
        key: [ERASED if v is not None else None for v in pair] if key in PERSONAL_FIELDS else pair
        for key, pair in changes.items()
    }


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
