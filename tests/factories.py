"""Test data, one function per model; each adds to the session and flushes."""

import itertools

from crm.extensions import db
from crm.models import Activity, Company, Contact, Team, User
from crm.services.passwords import hash_password

_seq = itertools.count(1)
PASSWORD = "correct horse battery"


def make_team(name: str | None = None) -> Team:
    team = Team(name=name or f"Team {next(_seq)}")
    db.session.add(team)
    db.session.flush()
    return team


def make_user(role: str = "sales", password: str | None = PASSWORD, **fields) -> User:
    n = next(_seq)
    fields.setdefault("email", f"user{n}@example.com")
    fields.setdefault("name", f"User {n}")
    user = User(role=role, password_hash=hash_password(password) if password else None, **fields)
    db.session.add(user)
    db.session.flush()
    return user


def start_session(
    user: User, user_agent: str = "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"
) -> str:
    """A signed-in session of `user`: the token Flask-Login keeps in the cookie."""
    from crm.services import sessions

    token = sessions.start(user, "127.0.0.1", user_agent)
    db.session.flush()
    return token


def make_company(name: str | None = None, **fields) -> Company:
    company = Company(name=name or f"Company {next(_seq)}", **fields)
    db.session.add(company)
    db.session.flush()
    return company


def make_contact(first_name: str = "Jean", last_name: str | None = None, **fields) -> Contact:
    n = next(_seq)
    fields.setdefault("email", f"contact{n}@example.com")
    contact = Contact(
        first_name=first_name, last_name=f"Durand{n}" if last_name is None else last_name, **fields
    )
    db.session.add(contact)
    db.session.flush()
    return contact


def make_activity(contact: Contact, kind: str = "note", **fields) -> Activity:
    activity = Activity(kind=kind, contact=contact, company=contact.company, **fields)
    db.session.add(activity)
    db.session.flush()
    return activity


def make_pipeline(name: str | None = None):
    """A pipeline with the default stages (Prospection ... Won, Lost)."""
    from crm.models.deals import Pipeline, Stage
    from crm.services.deals import DEFAULT_PIPELINES

    pipeline = Pipeline(name=name or f"Pipeline {next(_seq)}")
    for index, (stage_name, probability, kind, milestone, stall_days) in enumerate(
        DEFAULT_PIPELINES["New business"]
    ):
        pipeline.stages.append(
            Stage(
                name=stage_name,
                position=index,
                probability=probability,
                kind=kind,
                milestone=milestone,
                stall_days=stall_days,
            )
        )
    db.session.add(pipeline)
    db.session.flush()
    return pipeline


def make_deal(pipeline=None, stage=None, owner=None, amount="1000", **fields):
    from decimal import Decimal

    from crm.models.deals import Deal, DealStageHistory

    pipeline = pipeline or make_pipeline()
    stage = stage or pipeline.stages[0]
    fields.setdefault("title", f"Deal {next(_seq)}")
    deal = Deal(pipeline=pipeline, stage=stage, owner=owner, amount=Decimal(amount), **fields)
    from crm.models.search_keys import fold

    deal.title_key = fold(deal.title)
    db.session.add(deal)
    db.session.add(DealStageHistory(deal=deal, to_stage=stage))
    db.session.flush()
    return deal


def make_product(code: str | None = None, **fields):
    from decimal import Decimal

    from crm.models.deals import Product

    n = next(_seq)
    fields.setdefault("name", f"Product {n}")
    fields.setdefault("unit_price", Decimal("100.00"))
    product = Product(code=code or f"P-{n}", **fields)
    product.name_key = product.name.lower()
    db.session.add(product)
    db.session.flush()
    return product


def make_event(organizer=None, start=None, minutes: int = 60, attendees=(), **fields):
    """An event (a series when rrule= is given); attendees are users or contacts."""
    from datetime import UTC, datetime, timedelta

    from crm.models import Event, EventAttendee
    from crm.services.recurrence import series_end

    if start is None:
        start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=1)
    fields.setdefault("title", f"Meeting {next(_seq)}")
    fields.setdefault("ends_at", start + timedelta(minutes=minutes))
    fields.setdefault("timezone", "Europe/Paris")
    event = Event(organizer=organizer, starts_at=start, **fields)
    for attendee in attendees:
        if isinstance(attendee, User):
            event.attendees.append(EventAttendee(user=attendee))
        else:
            event.attendees.append(EventAttendee(contact=attendee))
    event.rrule_until = series_end(event) if event.rrule else None
    db.session.add(event)
    db.session.flush()
    return event


def make_task(assignee=None, due=None, **fields):
    from crm.models import Task

    fields.setdefault("title", f"Task {next(_seq)}")
    task = Task(
        assignee=assignee, created_by=fields.pop("created_by", assignee), due_at=due, **fields
    )
    db.session.add(task)
    db.session.flush()
    return task


def make_incident(contact=None, **fields):
    from crm.models import Incident
    from crm.models.search_keys import fold

    fields.setdefault("subject", f"Printer jammed {next(_seq)}")
    incident = Incident(contact=contact, **fields)
    if contact is not None and incident.company is None:
        incident.company = contact.company
    incident.subject_key = fold(incident.subject)
    db.session.add(incident)
    db.session.flush()
    return incident


def make_intervention(incident=None, technicians=(), start=None, minutes: int = 60, **fields):
    """An intervention, booked for `technicians` at `start` (unscheduled without a start)."""
    from datetime import timedelta

    from crm.models import Intervention, TechnicianBooking

    fields.setdefault("title", f"On-site visit {next(_seq)}")
    intervention = Intervention(incident=incident, duration_minutes=minutes, **fields)
    if incident is not None:
        intervention.contact = intervention.contact or incident.contact
        intervention.company = intervention.company or incident.company
    if start is not None:
        intervention.starts_at, intervention.ends_at = start, start + timedelta(minutes=minutes)
        intervention.status = fields.get("status", "planned")
        for technician in technicians:
            intervention.bookings.append(
                TechnicianBooking(
                    technician=technician, starts_at=start, ends_at=intervention.ends_at
                )
            )
    db.session.add(intervention)
    db.session.flush()
    return intervention
