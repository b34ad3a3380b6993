"""Writing to and reading from the one timeline of a record."""

from datetime import datetime

from sqlalchemy import or_, select, union
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
    incident_id: int | None = None,
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
        incident_id=incident_id,
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

    # EXISTS per entry rather than IN (all visible deals): PostgreSQL cannot use an IN list
    # built once inside the index lookups of the company timeline, and read every activity.
    visible = visible_deals(user).with_only_columns(Deal.id).where(Deal.id == Activity.deal_id)
    return or_(Activity.deal_id.is_(None), visible.exists())


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
    """What was logged on the company, and by or about its people (also before they joined).

    The newest of each kind are picked apart, each by its own index, then merged: as one
    condition with OR, PostgreSQL read the whole activity table (100 ms at 200,000 rows).
    """
    newest_first = (Activity.occurred_at.desc(), Activity.id.desc())
    visible = _deal_events_visible_to(user)
    people = select(Contact.id).where(Contact.company_id == company.id)
    branches = [
        select(Activity.id)
        .where(condition, visible)
        .order_by(*newest_first)
        .limit(limit)
        .subquery()
        for condition in (Activity.company_id == company.id, Activity.contact_id.in_(people))
    ]
    candidates = union(*(select(branch.c.id) for branch in branches))
    query = (
        select(Activity)
        .where(Activity.id.in_(candidates))
        .options(joinedload(Activity.author), joinedload(Activity.contact))
        .order_by(*newest_first)
        .limit(limit)
    )
    return list(db.session.scalars(query))
