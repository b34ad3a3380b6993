"""Writing to and reading from the one timeline of a record."""

from datetime import datetime

from sqlalchemy import and_, or_, select, union
from sqlalchemy.orm import joinedload, load_only

from crm.extensions import db
from crm.models import Activity, Company, Contact, Deal, EmailMessage, User
from crm.models.types import utcnow

TIMELINE_PAGE = 30
DEAL_TIMELINE_PAGE = 50


class Timeline(list):
    """A timeline's entries, newest first, with `emails`: the messages of its email entries
    that the reader may read, by id (read in the same query; the others show as private)."""

    def __init__(self, rows=()):
        super().__init__()
        self.emails: dict[int, EmailMessage] = {}
        for activity, message in rows:
            self.append(activity)
            if message is not None:
                self.emails[message.id] = message


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


# What an entry shows of its author, of the contact it is about (a company's timeline) and
# of its mail: read those columns only, not whole rows (password hashes, mail headers...).
_AUTHOR = joinedload(Activity.author).load_only(User.name)
_CONTACT = joinedload(Activity.contact).load_only(
    Contact.first_name, Contact.last_name, Contact.email, Contact.phone
)
_MAIL = load_only(
    EmailMessage.direction,
    EmailMessage.status,
    EmailMessage.subject,
    EmailMessage.snippet,
    EmailMessage.track_opens,
    EmailMessage.open_count,
)


def _with_readable_emails(query, user: User):
    """The entries of `query`, each with its email message when `user` may read it."""
    from crm.permissions import visible_emails

    readable = and_(EmailMessage.id == Activity.email_message_id, visible_emails(user).whereclause)
    query = query.add_columns(EmailMessage).outerjoin(EmailMessage, readable).options(_MAIL)
    return Timeline(db.session.execute(query).all())


def contact_timeline(contact: Contact, user: User, limit: int = TIMELINE_PAGE) -> Timeline:
    query = (
        select(Activity)
        .where(Activity.contact_id == contact.id, _deal_events_visible_to(user))
        .options(_AUTHOR)
        .order_by(Activity.occurred_at.desc(), Activity.id.desc())
        .limit(limit)
    )
    return _with_readable_emails(query, user)


def deal_timeline(deal: Deal, user: User, limit: int = DEAL_TIMELINE_PAGE) -> Timeline:
    """What was logged on a deal (whoever may see the deal sees all of it)."""
    query = (
        select(Activity)
        .where(Activity.deal_id == deal.id)
        .options(_AUTHOR)
        .order_by(Activity.occurred_at.desc(), Activity.id.desc())
        .limit(limit)
    )
    return _with_readable_emails(query, user)


def company_timeline(company: Company, user: User, limit: int = TIMELINE_PAGE) -> Timeline:
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
        .options(_AUTHOR, _CONTACT)
        .order_by(*newest_first)
        .limit(limit)
    )
    return _with_readable_emails(query, user)
