"""Agenda events: create, change, move, delete; series occurrences; conflicts; reports.

An occurrence of a series is addressed by its key ("12@2026-12-01T08:00:00Z").
Changing one occurrence only ("this occurrence") detaches it as an override row
(parent_id + recurrence_id, as RECURRENCE-ID in RFC 5545); removing one adds it
to the series' exdates. Every change bumps the ICS sequence, keeps rrule_until
right and re-plans reminders inside the caller's transaction.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from flask_babel import gettext as _
from sqlalchemy import exists, or_, select, union_all
from sqlalchemy.orm import joinedload, selectinload

from crm.extensions import db
from crm.i18n import DEFAULT_TIMEZONE
from crm.models import (
    Activity,
    Company,
    Contact,
    Event,
    EventAttendee,
    Incident,
    IncidentMessage,
    User,
)
from crm.models.agenda import RESPONSES
from crm.models.types import utcnow
from crm.services import reminders
from crm.services.recurrence import (
    Occurrence,
    expand_all,
    from_local_naive,
    involving,
    iso_utc,
    occurrence_at,
    overlapping,
    parse_iso_utc,
    series_end,
    to_local_naive,
)
from crm.services.timeline import record_activity

# Checking a whole endless series for conflicts would be slow and mostly noise:
# its first occurrences tell the organizer what they need to know.
CONFLICT_OCCURRENCES = 10
# The incident page lists this many of its next meetings, and this many of its last ones.
INCIDENT_MEETINGS = 5
# Where a report's timeline entry keeps the id of its note on the incident.
INCIDENT_NOTE = "incident_note"


class EventRefused(ValueError):
    """A change the rules do not allow; `code` says which, for the message."""

    def __init__(self, code: str):
        super().__init__(code)
        self.code = code


@dataclass
class EventFields:
    """What the event form gives, already validated and in UTC."""

    title: str
    kind: str
    starts_at: datetime
    ends_at: datetime
    all_day: bool = False
    location: str | None = None
    description: str | None = None
    private: bool = False
    rrule: str | None = None
    reminder_minutes: int | None = None
    organizer: User | None = None
    user_ids: list[int] = field(default_factory=list)
    contact_ids: list[int] = field(default_factory=list)
    contact: Contact | None = None
    company: Company | None = None
    deal: object | None = None
    incident: object | None = None


# ---- finding occurrences -----------------------------------------------------------------


def parse_key(key: str) -> tuple[int, datetime | None]:
    """ "12" -> (12, None); "12@2026-12-01T08:00:00Z" -> (12, that start). ValueError if not."""
    event_id, _, moment = key.partition("@")
    return int(event_id), parse_iso_utc(moment) if moment else None


def find_occurrence(key: str) -> Occurrence | None:
    """The occurrence a key names, or None (no such event, or not in its series)."""
    try:
        event_id, recurrence_id = parse_key(key)
    except ValueError:
        return None
    event = db.session.get(
        Event, event_id, options=[selectinload(Event.attendees), selectinload(Event.overrides)]
    )
    if event is None:
        return None
    if recurrence_id is None:
        return Occurrence(event, event.starts_at, event.ends_at)
    if not event.rrule:
        return None
    return occurrence_at(event, recurrence_id)


def root_of(event: Event) -> Event:
    return event.parent or event


# ---- create and change -------------------------------------------------------------------


def _zone_of(user: User | None) -> str:
    return (user.timezone if user else None) or DEFAULT_TIMEZONE


def _check(fields: EventFields) -> None:
    if fields.ends_at < fields.starts_at:
        raise EventRefused("ends_before_start")


def _set_attendees(event: Event, user_ids: list[int], contact_ids: list[int]) -> None:
    """Keep the answers of people still invited; add the new ones, drop the others."""
    organizer_id = event.organizer.id if event.organizer is not None else event.organizer_id
    wanted_users = set(user_ids) - {organizer_id}
    wanted_contacts = set(contact_ids)
    kept = []
    for attendee in event.attendees:
        if attendee.user_id in wanted_users:
            wanted_users.discard(attendee.user_id)
            kept.append(attendee)
        elif attendee.contact_id in wanted_contacts:
            wanted_contacts.discard(attendee.contact_id)
            kept.append(attendee)
    kept += [EventAttendee(user_id=i) for i in sorted(wanted_users)]
    kept += [EventAttendee(contact_id=i) for i in sorted(wanted_contacts)]
    event.attendees = kept


def _apply(event: Event, fields: EventFields, *, times: bool = True, rule: bool = True) -> None:
    event.title = fields.title
    event.kind = fields.kind
    event.location = fields.location
    event.description = fields.description
    event.private = fields.private
    event.reminder_minutes = fields.reminder_minutes
    event.contact = fields.contact
    event.company = fields.company
    event.deal = fields.deal
    event.incident = fields.incident
    if fields.organizer is not None and fields.organizer.id != event.organizer_id:
        event.organizer = fields.organizer
        event.timezone = _zone_of(fields.organizer)
    if times:
        event.starts_at = fields.starts_at
        event.ends_at = fields.ends_at
        event.all_day = fields.all_day
    if rule:
        event.rrule = fields.rrule
    _set_attendees(event, fields.user_ids, fields.contact_ids)


def _touched(*events: Event, bump: bool = True) -> None:
    """After any change: ICS sequence, series end, and the reminders (before commit)."""
    for event in dict.fromkeys(events):
        if bump:
            event.sequence = (event.sequence or 0) + 1
        event.rrule_until = series_end(event)
    db.session.flush()
    for event in events:
        reminders.schedule_event(event)


def create_event(actor: User, fields: EventFields) -> Event:
    _check(fields)
    organizer = fields.organizer or actor
    event = Event(organizer=organizer, timezone=_zone_of(organizer), status="confirmed", sequence=0)
    _apply(event, fields)
    db.session.add(event)
    _touched(event, bump=False)
    return event


def _detach(occurrence: Occurrence) -> Event:
    """The row that holds this occurrence alone: the event itself, or a new override."""
    event = occurrence.event
    if occurrence.recurrence_id is None:
        return event
    # Read before the override exists: a lazy load then would flush it half-built.
    invited = [(a.user_id, a.contact_id, a.response) for a in event.attendees]
    override = Event(
        parent=event,
        recurrence_id=occurrence.recurrence_id,
        ical_uid=event.ical_uid,
        starts_at=occurrence.start,
        ends_at=occurrence.end,
        sequence=event.sequence,
        **{
            name: getattr(event, name)
            for name in (
                "title",
                "kind",
                "status",
                "description",
                "location",
                "all_day",
                "timezone",
                "private",
                "reminder_minutes",
                "organizer_id",
                "contact_id",
                "company_id",
                "deal_id",
                "incident_id",
            )
        },
    )
    db.session.add(override)
    override.attendees = [
        EventAttendee(user_id=user_id, contact_id=contact_id, response=response)
        for user_id, contact_id, response in invited
    ]
    return override


def _shift_series(root: Event, occurrence: Occurrence, start: datetime, end: datetime) -> None:
    """Move a whole series as one occurrence moved: same wall-clock shift, new length."""
    zone = ZoneInfo(root.timezone)
    shift = to_local_naive(start, zone) - to_local_naive(occurrence.start, zone)
    length = to_local_naive(end, zone) - to_local_naive(start, zone)
    local_start = to_local_naive(root.starts_at, zone) + shift
    root.starts_at = from_local_naive(local_start, zone)
    root.ends_at = from_local_naive(local_start + length, zone)


def update_occurrence(
    actor: User, occurrence: Occurrence, fields: EventFields, scope: str = "series"
) -> Event:
    """Change an event; for an occurrence of a series, this one only or the whole series."""
    _check(fields)
    event = occurrence.event
    if occurrence.recurrence_id is not None and scope == "this":
        override = _detach(occurrence)
        _apply(override, fields, rule=False)
        override.rrule = None
        _touched(event, override)
        return override
    if event.parent is not None and scope == "series":
        root = event.parent
        _apply(root, fields, times=False)
        original = occurrence_at(root, event.recurrence_id) or Occurrence(
            root, event.recurrence_id, event.recurrence_id + (root.ends_at - root.starts_at)
        )
        _shift_series(root, original, fields.starts_at, fields.ends_at)
        root.all_day = fields.all_day
        _touched(root)
        return root
    if event.rrule and occurrence.recurrence_id is not None:
        _apply(event, fields, times=False)
        _shift_series(event, occurrence, fields.starts_at, fields.ends_at)
        event.all_day = fields.all_day
        _touched(event)
        return event
    _apply(event, fields, rule=event.parent is None)
    _touched(event)
    return event


def move_occurrence(occurrence: Occurrence, start: datetime, end: datetime) -> Event:
    """A drag on the agenda: this occurrence only, to its new times."""
    if end < start:
        raise EventRefused("ends_before_start")
    event = occurrence.event
    if event.rrule and occurrence.recurrence_id is None:
        _shift_series(event, occurrence, start, end)
        _touched(event)
        return event
    target = _detach(occurrence)
    target.starts_at, target.ends_at = start, end
    _touched(event, target)
    return target


def delete_occurrence(occurrence: Occurrence, scope: str = "series") -> None:
    event = occurrence.event
    if scope == "this" and (occurrence.recurrence_id is not None or event.parent is not None):
        root = event.parent or event
        recurrence_id = occurrence.recurrence_id or event.recurrence_id
        root.exdates = sorted({*(root.exdates or ()), iso_utc(recurrence_id)})
        if event.parent is not None:
            event.status = "cancelled"
            reminders.schedule_event(event)
            root.overrides.remove(event)  # delete-orphan: the row goes
        _touched(root)
        return
    root = event.parent or event
    root.status = "cancelled"
    for override in root.overrides:
        override.status = "cancelled"
        reminders.schedule_event(override)
    reminders.schedule_event(root)
    db.session.delete(root)
    db.session.flush()


def respond(user: User, event: Event, response: str) -> EventAttendee | None:
    """An invited user accepts or declines (the series, for an occurrence of one)."""
    if response not in RESPONSES:
        raise EventRefused("unknown_response")
    root = root_of(event)
    found = None
    for row in (root, *root.overrides):
        for attendee in row.attendees:
            if attendee.user_id == user.id:
                attendee.response = response
                found = found or attendee
    if found is not None:
        _touched(root)
    return found


# ---- conflicts -------------------------------------------------------------------------


@dataclass(frozen=True)
class Conflict:
    """`user` is already busy with `occurrence` when the new event would be."""

    user: User
    occurrence: Occurrence


def windows_of(fields: EventFields, timezone: str) -> list[tuple[datetime, datetime]]:
    """The times an event would take: its one window, or its series' first ones."""
    if not fields.rrule:
        return [(fields.starts_at, fields.ends_at)]
    probe = Event(
        id=0,
        title="",
        kind=fields.kind,
        status="confirmed",
        starts_at=fields.starts_at,
        ends_at=fields.ends_at,
        timezone=timezone,
        rrule=fields.rrule,
        overrides=[],
    )
    horizon = fields.starts_at + timedelta(days=400)
    found = expand_all([probe], fields.starts_at, horizon)[:CONFLICT_OCCURRENCES]
    return [(o.start, o.end) for o in found]


def find_conflicts(
    windows: list[tuple[datetime, datetime]],
    user_ids: list[int],
    exclude_event_id: int | None = None,
) -> list[Conflict]:
    """Who among `user_ids` already has a timed event overlapping one of `windows`.

    One query over the span of the windows; all-day events and declined
    invitations do not make anybody busy.
    """
    user_ids = sorted(set(filter(None, user_ids)))
    if not windows or not user_ids:
        return []
    start = min(w[0] for w in windows)
    end = max(w[1] for w in windows)
    query = (
        select(Event)
        .where(
            overlapping(start, end),
            Event.status != "cancelled",
            Event.all_day.is_(False),
            involving(user_ids),
        )
        .options(selectinload(Event.attendees), selectinload(Event.overrides))
    )
    if exclude_event_id is not None:
        query = query.where(
            Event.id != exclude_event_id,
            or_(Event.parent_id.is_(None), Event.parent_id != exclude_event_id),
        )
    events = db.session.scalars(query).all()
    users = {u.id: u for u in db.session.scalars(select(User).where(User.id.in_(user_ids)))}
    conflicts = []
    for occurrence in expand_all(events, start, end):
        if not any(
            occurrence.start < w_end and occurrence.end > w_start for w_start, w_end in windows
        ):
            continue
        event = occurrence.event
        busy = {a.user_id for a in event.attendees if a.user_id and a.response != "declined"}
        busy.add(event.organizer_id)
        conflicts += [Conflict(users[i], occurrence) for i in user_ids if i in busy]
    conflicts.sort(key=lambda c: (c.occurrence.start, c.user.name))
    return conflicts


# ---- meeting report --------------------------------------------------------------------


def report_activity(event: Event) -> Activity | None:
    query = select(Activity).where(Activity.event_id == event.id).order_by(Activity.id)
    return db.session.scalars(query).first()


def save_report(actor: User, event: Event, text: str, now: datetime | None = None) -> Activity:
    """The report of a meeting that has started, on the event, on the linked records'
    timelines (contact, company, deal) and, for a meeting about an incident, on the
    incident as an internal note; written again, the same timeline entry and note change."""
    now = now or utcnow()
    if now < event.starts_at:
        raise EventRefused("not_started")
    event.report = text
    event.report_at = now
    activity = report_activity(event)
    company = event.company or (event.contact.company if event.contact else None)
    if activity is None:
        activity = record_activity(
            actor,
            event.kind,
            contact=event.contact,
            company=company,
            deal=event.deal,
            subject=event.title,
            body=text,
            occurred_at=event.starts_at,
            incident_id=event.incident.id if event.incident else None,
        )
        activity.event_id = event.id
    else:
        activity.body = text
        activity.subject = event.title
        activity.contact, activity.company, activity.deal = event.contact, company, event.deal
        activity.incident_id = event.incident.id if event.incident else None
    _report_note(actor, event, activity, text, now)
    db.session.flush()
    return activity


def _report_note(actor: User, event: Event, activity: Activity, text: str, now: datetime):
    """The report as one internal note on the incident the meeting was about (as a
    visit's report is), found again through the timeline entry when rewritten; it goes
    when the meeting is no longer linked to an incident."""
    data = dict(activity.data or {})
    note_id = data.get(INCIDENT_NOTE)
    note = db.session.get(IncidentMessage, note_id) if note_id else None
    if event.incident is None:
        if note is not None:
            db.session.delete(note)
        if INCIDENT_NOTE in data:
            del data[INCIDENT_NOTE]
            activity.data = data or None
        return
    body = _("Meeting report: %(title)s", title=event.title) + "\n\n" + text
    if note is not None:
        note.incident, note.body = event.incident, body
        return
    note = IncidentMessage(
        incident=event.incident, kind="note", author=actor, body=body, created_at=now
    )
    db.session.add(note)
    db.session.flush()
    activity.data = {**data, INCIDENT_NOTE: note.id}


def report_target(occurrence: Occurrence) -> Event:
    """A report is about one meeting: an occurrence of a series gets a row of its own."""
    return _detach(occurrence)


# ---- an incident's meetings --------------------------------------------------------------


@dataclass
class IncidentMeetings:
    """The meetings about an incident, each with whether the viewer may read what it is."""

    upcoming: list[tuple[Event, bool]]
    recent: list[tuple[Event, bool]]


def _still_running(now: datetime):
    """Not over yet: ends later, or a series with occurrences to come."""
    series_goes_on = Event.rrule.is_not(None) & or_(
        Event.rrule_until.is_(None), Event.rrule_until >= now
    )
    return or_(Event.ends_at >= now, series_goes_on)


def incident_meetings(incident: Incident, user: User, now: datetime | None = None):
    """The next and the last meetings about `incident` (INCIDENT_MEETINGS of each, a series
    as one), in one query whatever their number. A private one is "busy" to those who are
    neither its organizer nor invited (event_details_visible, in SQL)."""
    now = now or utcnow()
    about = select(Event.id).where(
        Event.incident_id == incident.id,
        Event.parent_id.is_(None),
        Event.status != "cancelled",
    )
    running = _still_running(now)
    upcoming = about.where(running).order_by(Event.starts_at, Event.id).limit(INCIDENT_MEETINGS)
    recent = (
        about.where(~running)
        .order_by(Event.starts_at.desc(), Event.id.desc())
        .limit(INCIDENT_MEETINGS)
    )
    picked = union_all(select(upcoming.subquery().c.id), select(recent.subquery().c.id))
    invited = exists().where(EventAttendee.event_id == Event.id, EventAttendee.user_id == user.id)
    readable = or_(Event.private.is_(False), Event.organizer_id == user.id, invited)
    rows = db.session.execute(
        select(Event, readable)
        .where(Event.id.in_(picked))
        .options(joinedload(Event.organizer))
        .order_by(Event.starts_at, Event.id)
    ).all()
    meetings = IncidentMeetings([], [])
    for event, may_read in rows:
        goes_on = event.ends_at >= now or (
            event.rrule and (event.rrule_until is None or event.rrule_until >= now)
        )
        (meetings.upcoming if goes_on else meetings.recent).append((event, bool(may_read)))
    meetings.recent.reverse()
    return meetings
