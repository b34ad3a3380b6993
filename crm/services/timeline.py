"""Writing to and reading from the one timeline of a record."""

from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import joinedload

from crm.extensions import db
from crm.models import Activity, Company, Contact, Deal, User
from crm.models.types import utcnow

TIMELINE_PAGE = 30


def record_activity(
    author: User | None,
    kind: str,
    *,
    contact: Contact | None = None,
    company: Company | None = None,
    deal=None,
    subject: str | None = None,
    body: str | None = None,
    outcome: str | None = None,
    duration_minutes: int | None = None,
    occurred_at: datetime | None = None,
    data: dict | None = None,
) -> Activity:
    """Add an entry to the timeline of a contact (and its company) or of a company."""
    if company is None and contact is not None:
        company = contact.company
    activity = Activity(
        kind=kind,
        author=author,
        contact=contact,
        company=company,
        deal=deal,
        subject=subject,
        body=body,
        outcome=outcome,
        duration_minutes=duration_minutes,
        data=data,
        occurred_at=occurred_at or utcnow(),
    )
    db.session.add(activity)
    if contact is not None and kind != "system":
        contact.last_activity_at = max(
            contact.last_activity_at or activity.occurred_at, activity.occurred_at
        )
    return activity


def _deal_events_visible_to(user: User):
    """Entries about a deal show only to those who may see the deal."""
    from crm.permissions import visible_deals

    visible = visible_deals(user).with_only_columns(Deal.id)
    return or_(Activity.deal_id.is_(None), Activity.deal_id.in_(visible))


def contact_timeline(contact: Contact, user: User, limit: int = TIMELINE_PAGE) -> list[Activity]:
    query = (
        select(Activity)
        .where(Activity.contact_id == contact.id, _deal_events_visible_to(user))
        .options(joinedload(Activity.author))
        .order_by(Activity.occurred_at.desc(), Activity.id.desc())
        .limit(limit)
    )
    return list(db.session.scalars(query))


def company_timeline(company: Company, user: User, limit: int = TIMELINE_PAGE) -> list[Activity]:
    contact_ids = select(Contact.id).where(Contact.company_id == company.id)
    query = (
        select(Activity)
        .where(
            or_(Activity.company_id == company.id, Activity.contact_id.in_(contact_ids)),
            _deal_events_visible_to(user),
        )
        .options(joinedload(Activity.author), joinedload(Activity.contact))
        .order_by(Activity.occurred_at.desc(), Activity.id.desc())
        .limit(limit)
    )
    return list(db.session.scalars(query))
