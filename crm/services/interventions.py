"""Planning on-site interventions: create, schedule, reschedule, unschedule, cancel.

Technicians' time goes through crm/services/bookings.py, which keeps a technician
from being in two places at once. The status flow on site (en route, on site,
done) belongs to the technician's view; it frees the slot with bookings.release().
"""

from datetime import datetime, timedelta

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from crm.extensions import db
from crm.models import Company, Contact, Deal, Incident, Intervention, User
from crm.models.types import utcnow
from crm.services import bookings

TECHNICIAN_ROLE = "technician"
DURATION_CHOICES = (30, 60, 90, 120, 180, 240, 360, 480)


def technicians(skill: str | None = None) -> list[User]:
    """Active technicians by name; with `skill`, only those who have it."""
    query = select(User).where(User.active.is_(True), User.role == TECHNICIAN_ROLE)
    people = list(db.session.scalars(query.order_by(User.name, User.id)))
    if skill:
        people = [person for person in people if skill in (person.skills or ())]
    return people


def all_skills(people: list[User] | None = None) -> list[str]:
    """The skills technicians have, as planners pick them for an intervention."""
    people = technicians() if people is None else people
    return sorted({skill for person in people for skill in person.skills or ()}, key=str.casefold)


MAX_SKILLS, MAX_SKILL_LENGTH = 20, 40


def parse_skills(text: str) -> list[str]:
    """ "Gas, boilers , gas" -> ["Gas", "boilers"]: trimmed, once each (ignoring case), in order.

    ValueError when there are too many or one is too long.
    """
    skills: dict[str, str] = {}
    for part in (text or "").split(","):
        skill = " ".join(part.split())
        if skill:
            skills.setdefault(skill.casefold(), skill)
    if len(skills) > MAX_SKILLS or any(len(s) > MAX_SKILL_LENGTH for s in skills.values()):
        raise ValueError(text)
    return list(skills.values())


def missing_skills(intervention: Intervention, people: list[User]) -> list[str]:
    """Skills the intervention needs that none of `people` has."""
    held = {skill for person in people for skill in person.skills or ()}
    return [skill for skill in intervention.skills or () if skill not in held]


def postal_address(record: Contact | Company | None) -> str:
    if record is None:
        return ""
    town = " ".join(part for part in (record.postcode, record.city) if part)
    return ", ".join(part for part in (record.street, town, record.country) if part)


def customer_address(contact: Contact | None, company: Company | None) -> str:
    """Where to go: the contact's address, else their company's."""
    return (
        postal_address(contact)
        or postal_address(company)
        or (postal_address(contact.company) if contact is not None else "")
    )


def draft_for(incident: Incident | None = None, deal: Deal | None = None) -> dict:
    """What the planning form starts from: the record's customer, subject and address."""
    source = incident or deal
    if source is None:
        return {}
    contact, company = source.contact, source.company
    if company is None and contact is not None:
        company = contact.company
    title = incident.subject if incident is not None else deal.title
    return {
        "title": title,
        "contact": contact,
        "company": company,
        "address": customer_address(contact, company),
    }


def create(
    by: User,
    *,
    title: str,
    duration_minutes: int,
    address: str | None = None,
    skills: list[str] | None = None,
    notes: str | None = None,
    incident: Incident | None = None,
    deal: Deal | None = None,
    contact: Contact | None = None,
    company: Company | None = None,
    starts_at: datetime | None = None,
    technicians_: list[User] | None = None,
) -> Intervention:
    """A new intervention: unscheduled (on the board's tray) unless a time and
    technicians come with it. Raises DoubleBooking like schedule()."""
    source = incident or deal
    if source is not None:
        contact = contact or source.contact
        company = company or source.company
    if company is None and contact is not None:
        company = contact.company
    intervention = Intervention(
        title=title,
        status="unscheduled",
        incident=incident,
        deal=deal,
        contact=contact,
        company=company,
        duration_minutes=duration_minutes,
        address=address or None,
        skills=list(skills or []) or None,
        notes=notes or None,
        created_by=by,
    )
    db.session.add(intervention)
    if starts_at is not None and technicians_:
        schedule(intervention, technicians_, starts_at)
    else:
        db.session.flush()
    return intervention


def schedule(
    intervention: Intervention,
    people: list[User],
    starts_at: datetime,
    duration_minutes: int | None = None,
) -> None:
    """Put the intervention at `starts_at` for its duration, with these technicians.

    The same call reschedules (another time, other technicians). DoubleBooking or
    NotBookable when refused; the caller then rolls back.
    """
    minutes = duration_minutes or intervention.duration_minutes
    bookings.book(intervention, people, starts_at, starts_at + timedelta(minutes=minutes))


def unschedule(intervention: Intervention) -> None:
    """Back to the board's tray: no time, the technicians' slots freed."""
    if intervention.status not in ("planned", "unscheduled"):
        raise bookings.NotBookable(_l("Only a planned intervention goes back to the tray."))
    intervention.status = "unscheduled"
    intervention.status_changed_at = utcnow()
    intervention.starts_at = intervention.ends_at = None
    bookings.release(intervention)


def cancel(intervention: Intervention) -> None:
    if intervention.status in ("done", "cancelled"):
        return
    intervention.status = "cancelled"
    intervention.status_changed_at = utcnow()
    bookings.release(intervention)


def booked_technicians(intervention: Intervention) -> list[User]:
    return [b.technician for b in intervention.bookings if b.active]
