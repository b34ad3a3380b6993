"""Importing one .ics invitation (Google Calendar, Outlook, Thunderbird...) into the agenda.

Three steps, so that the user sees what will happen before anything is written:
1. read_invitation(data, user): parse and check the file, match the people in it
   with users and contacts; InvitationError with a message for the user otherwise;
2. plan_import(invitation, user): for each event of the file, create, update, cancel
   or leave alone, and the attendees already busy at that time;
3. apply_import(plan, user): write it (the caller commits).

The invitation's UID is kept as Event.ical_uid: importing the same invitation again,
or a later version of it (SEQUENCE at least as high), updates the event instead of
adding a second one; METHOD:CANCEL (or STATUS:CANCELLED) cancels it. The importing
user organizes the event on our side; the sender is named in the description, or
becomes a contact attendee when their address is a known contact's.
"""

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask_babel import gettext as _
from icalendar import Calendar
from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON
from sqlalchemy import func, or_, select
from sqlalchemy.orm import selectinload

from crm.extensions import db
from crm.models import Contact, Event, EventAttendee, User
from crm.models.search_keys import email_key
from crm.models.types import utcnow
from crm.permissions import can_edit_event
from crm.services import reminders
from crm.services.recurrence import (
    Occurrence,
    expand,
    expand_all,
    from_local_naive,
    involving,
    iso_utc,
    local_midnight,
    normalize_rule,
    overlapping,
    series_end,
)

MAX_BYTES = 1024 * 1024
# One invitation is one event, sometimes with a few changed occurrences.
MAX_EVENTS = 25
# Conflicts are looked for on a series' first occurrences only.
CONFLICT_OCCURRENCES = 10
CONFLICT_HORIZON = timedelta(days=90)
ACCEPTED_TYPES = {"text/calendar", "application/ics", "text/x-vcalendar"}
ACCEPTED_METHODS = {None, "PUBLISH", "REQUEST", "CANCEL", "ADD"}

PARTSTAT = {
    "NEEDS-ACTION": "needs_action",
    "ACCEPTED": "accepted",
    "DECLINED": "declined",
    "TENTATIVE": "tentative",
}
# Google's decoration around the Meet details in a description.
_GOOGLE_RULER = re.compile(r"^-::~[:~]*::-$", re.MULTILINE)


class InvitationError(ValueError):
    """The file cannot be imported; the message says why, for the user."""


@dataclass
class Person:
    email: str
    name: str | None
    response: str = "needs_action"
    user: User | None = None
    contact: Contact | None = None

    @property
    def label(self) -> str:
        return (
            f"{self.name} <{self.email}>" if self.name and self.name != self.email else self.email
        )


@dataclass
class InvitedEvent:
    """One VEVENT of the file, read into our terms (aware UTC, a zone name, our RRULE)."""

    uid: str
    sequence: int
    title: str
    starts_at: datetime
    ends_at: datetime
    all_day: bool
    timezone: str
    location: str | None
    notes: str | None
    rrule: str | None
    exdates: list[str]
    recurrence_id: datetime | None
    cancelled: bool
    private: bool
    organizer: Person | None
    attendees: list[Person]
    warnings: list[str] = field(default_factory=list)

    @property
    def last_moment(self) -> datetime:
        """A moment on the last day of an all-day event (ends_at is the next midnight)."""
        return self.ends_at - timedelta(minutes=1)

    @property
    def days(self) -> int:
        return max(round((self.ends_at - self.starts_at) / timedelta(days=1)), 1)

    def repeat_text(self) -> str:
        return describe_rule(self.rrule) if self.rrule else ""

    def description(self) -> str | None:
        """The sender's notes, then who organizes and who else is invited (not in the CRM)."""
        lines = [self.notes.strip()] if self.notes and self.notes.strip() else []
        people = []
        if self.organizer and self.organizer.contact is None and self.organizer.user is None:
            people.append(_("Organizer: %(person)s", person=self.organizer.label))
        strangers = [p.label for p in self.attendees if p.user is None and p.contact is None]
        if self.organizer:
            strangers = [s for s in strangers if s != self.organizer.label]
        if strangers:
            people.append(_("Also invited: %(people)s", people=", ".join(strangers)))
        if people:
            lines.append("\n".join(people))
        return "\n\n".join(lines) or None


@dataclass
class Invitation:
    method: str | None
    events: list[InvitedEvent]


@dataclass
class PlannedChange:
    """What importing one event of the file does.

    action: "create", "update", "cancel" (the event or one occurrence), or, doing
    nothing: "older" (the agenda has a later version), "attending" (on the agenda
    already, organized by somebody else in the CRM), "unknown" (a cancellation of
    an event that is not on the agenda).
    """

    item: InvitedEvent
    action: str
    existing: Event | None = None
    conflicts: list[Occurrence] = field(default_factory=list)
    # The series on the agenda that a changed occurrence belongs to.
    root: Event | None = None

    @property
    def changes_something(self) -> bool:
        return self.action in ("create", "update", "cancel")


def describe_rule(rule: str) -> str:
    """ "Every week on Tuesday, until 20 Apr 2027": a repeat rule, as people say it."""
    from babel.dates import get_day_names
    from flask_babel import format_date, get_locale

    parts = dict(part.partition("=")[::2] for part in rule.split(";"))
    interval = int(parts.get("INTERVAL") or 1)
    frequency = parts.get("FREQ", "")
    if frequency == "DAILY":
        text = _("Every day") if interval == 1 else _("Every %(n)d days", n=interval)
    elif frequency == "WEEKLY":
        text = _("Every week") if interval == 1 else _("Every %(n)d weeks", n=interval)
    elif frequency == "MONTHLY":
        text = _("Every month") if interval == 1 else _("Every %(n)d months", n=interval)
    elif frequency == "YEARLY":
        text = _("Every year")
    else:
        text = _("Repeats")
    names = get_day_names("wide", locale=get_locale() or "en")
    days = [
        names[WEEKDAY_INDEX[day[-2:]]]
        for day in parts.get("BYDAY", "").split(",")
        if day[-2:] in WEEKDAY_INDEX
    ]
    if days:
        text = _("%(repeat)s on %(days)s", repeat=text, days=", ".join(days))
    if parts.get("UNTIL"):
        until = datetime.strptime(parts["UNTIL"][:8], "%Y%m%d").date()
        text = _("%(repeat)s, until %(date)s", repeat=text, date=format_date(until, "medium"))
    elif parts.get("COUNT"):
        text = _("%(repeat)s, %(count)s times", repeat=text, count=parts["COUNT"])
    return text


WEEKDAY_INDEX = {"MO": 0, "TU": 1, "WE": 2, "TH": 3, "FR": 4, "SA": 5, "SU": 6}


# ---- 1. reading the file --------------------------------------------------------


def check_upload(filename: str | None, mimetype: str | None, data: bytes) -> None:
    """Size and type, before parsing: .ics or text/calendar, at most 1 MB."""
    if len(data) > MAX_BYTES:
        raise InvitationError(_("The file is larger than 1 MB: it is not a single invitation."))
    if not data.strip():
        raise InvitationError(_("The file is empty."))
    named_ics = bool(filename) and filename.lower().endswith((".ics", ".ical", ".ifb"))
    if not named_ics and (mimetype or "").split(";")[0].strip().lower() not in ACCEPTED_TYPES:
        raise InvitationError(_("Choose an .ics file (a calendar invitation)."))


def read_invitation(data: bytes, user: User) -> Invitation:
    """Parse an invitation and match its people; InvitationError when it cannot be used."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")  # some old exporters; ICS is UTF-8 by default
    try:
        calendar = Calendar.from_ical(text)
    except (ValueError, IndexError, KeyError, TypeError) as error:
        raise InvitationError(_("This file is not a calendar invitation.")) from error
    if isinstance(calendar, list):
        calendar = calendar[0] if calendar else None
    if calendar is None or calendar.name != "VCALENDAR":
        raise InvitationError(_("This file is not a calendar invitation."))
    method = str(calendar.get("method")).upper() if calendar.get("method") else None
    if method not in ACCEPTED_METHODS:
        raise InvitationError(
            _(
                "This file is an answer to an invitation (%(method)s), not an invitation.",
                method=method,
            )
        )
    components = calendar.walk("VEVENT")
    if not components:
        raise InvitationError(_("This file has no event in it."))
    if len(components) > MAX_EVENTS:
        raise InvitationError(
            _(
                "This file holds %(count)d events: import one invitation at a time.",
                count=len(components),
            )
        )
    user_zone = _zone_of(user)
    events = []
    for component in components:
        try:
            events.append(_read_event(component, method, user_zone))
        except InvitationError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as error:
            raise InvitationError(_("An event of this file cannot be read.")) from error
    _match_people(events)
    # The main event first, its changed occurrences after it.
    events.sort(key=lambda e: (e.uid, e.recurrence_id is not None, e.recurrence_id or e.starts_at))
    return Invitation(method=method, events=events)


def _zone_of(user: User) -> ZoneInfo:
    from crm.i18n import DEFAULT_TIMEZONE

    try:
        return ZoneInfo(user.timezone or DEFAULT_TIMEZONE)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_TIMEZONE)


def _zone_name(value, tzid: str | None, user_zone: ZoneInfo) -> str:
    """The Olson name to plan the event in: the file's zone when we can name it.

    Outlook writes Windows names ("Romance Standard Time") with its own VTIMEZONE;
    UTC times (Google's single events) and floating ones are planned in the user's zone.
    """
    if isinstance(value, datetime) and isinstance(value.tzinfo, ZoneInfo):
        if value.tzinfo.key not in ("UTC", "Etc/UTC"):
            return value.tzinfo.key
        return user_zone.key
    if tzid:
        name = WINDOWS_TO_OLSON.get(tzid, tzid)
        try:
            return ZoneInfo(name).key
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return user_zone.key


def _to_utc(value, zone: ZoneInfo) -> datetime:
    """A DATE-TIME of the file as aware UTC (floating: a wall time in `zone`)."""
    if value.tzinfo is None:
        return from_local_naive(value, zone)
    return value.astimezone(UTC)


def _read_event(component, method: str | None, user_zone: ZoneInfo) -> InvitedEvent:
    uid = str(component.get("uid") or "").strip()
    if not uid:
        raise InvitationError(_("An event of this file has no UID: it cannot be kept in step."))
    if len(uid) > 255:
        raise InvitationError(_("An event of this file has an unusable UID."))
    start_prop = component.get("dtstart")
    if start_prop is None:
        raise InvitationError(_("An event of this file has no start time."))
    start = start_prop.dt
    tzid = start_prop.params.get("TZID")
    all_day = isinstance(start, date) and not isinstance(start, datetime)
    zone_name = _zone_name(start, tzid, user_zone)
    zone = ZoneInfo(zone_name)
    warnings = []
    if all_day:
        end_prop = component.get("dtend")
        end = end_prop.dt if end_prop is not None else None
        if isinstance(end, datetime):
            end = end.date()
        if end is None and component.get("duration") is not None:
            end = start + component.get("duration").dt
        if end is None or end <= start:
            end = start + timedelta(days=1)
        starts_at, ends_at = local_midnight(start, zone), local_midnight(end, zone)
    else:
        starts_at = _to_utc(start, zone)
        end_prop = component.get("dtend")
        if end_prop is not None:
            end = end_prop.dt
            if not isinstance(end, datetime):
                end = datetime.combine(end, start.time(), start.tzinfo)
            ends_at = _to_utc(end, zone)
        elif component.get("duration") is not None:
            ends_at = starts_at + component.get("duration").dt
        else:
            ends_at = starts_at
        ends_at = max(ends_at, starts_at)
    if not (1900 <= starts_at.year <= 2200):
        raise InvitationError(_("An event of this file has an impossible date."))

    rule = None
    if component.get("rrule") is not None:
        rules = component.get("rrule")
        rules = rules if isinstance(rules, list) else [rules]
        if len(rules) > 1:
            warnings.append(_("Only the first repeat rule is kept."))
        rule_text = rules[0].to_ical().decode()
        try:
            rule = normalize_rule(rule_text, zone)
        except ValueError as error:
            raise InvitationError(_("The repeat rule of this event cannot be read.")) from error
    if component.get("rdate") is not None:
        warnings.append(_("Extra dates (RDATE) are not imported: only the repeat rule is."))
    exdates = sorted({iso_utc(moment) for moment in _dates(component.get("exdate"), zone)})

    recurrence_id = None
    if component.get("recurrence-id") is not None:
        value = component.get("recurrence-id").dt
        recurrence_id = (
            local_midnight(value, zone) if not isinstance(value, datetime) else _to_utc(value, zone)
        )

    status = str(component.get("status") or "").upper()
    klass = str(component.get("class") or "").upper()
    sequence = int(component.get("sequence") or 0)
    location = _text(component.get("location"))
    conference = _text(component.get("x-google-conference"))
    notes = _text(component.get("description"))
    if notes:
        notes = re.sub(r"\n{3,}", "\n\n", _GOOGLE_RULER.sub("", notes)).strip() or None
    if conference and (not notes or conference not in notes):
        notes = "\n\n".join(p for p in (notes, _("Video call: %(url)s", url=conference)) if p)
    if not location and conference:
        location = conference
    return InvitedEvent(
        uid=uid,
        sequence=max(sequence, 0),
        title=(_text(component.get("summary")) or _("(no title)"))[:200],
        starts_at=starts_at,
        ends_at=ends_at,
        all_day=all_day,
        timezone=zone_name,
        location=location[:300] if location else None,
        notes=notes,
        rrule=rule,
        exdates=exdates,
        recurrence_id=recurrence_id,
        cancelled=method == "CANCEL" or status == "CANCELLED",
        private=klass in ("PRIVATE", "CONFIDENTIAL"),
        organizer=_person(component.get("organizer")),
        attendees=[
            p for p in (_person(a) for a in _as_list(component.get("attendee"))) if p is not None
        ],
        warnings=warnings,
    )


def _as_list(value) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _text(value) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _dates(prop, zone: ZoneInfo) -> list[datetime]:
    """EXDATE values (one or several properties, each a list) as aware UTC."""
    moments = []
    for entry in _as_list(prop):
        for item in entry.dts:
            value = item.dt
            if isinstance(value, datetime):
                moments.append(_to_utc(value, zone))
            else:
                moments.append(local_midnight(value, zone))
    return moments


def _person(address) -> Person | None:
    if address is None:
        return None
    text = str(address).strip()
    if not text.lower().startswith("mailto:"):
        return None
    email = text[7:].strip()
    if "@" not in email:
        return None
    params = getattr(address, "params", {})
    name = params.get("CN")
    return Person(
        email=email,
        name=str(name).strip() if name else None,
        response=PARTSTAT.get(str(params.get("PARTSTAT", "")).upper(), "needs_action"),
    )


def _match_people(events: list[InvitedEvent]) -> None:
    """Users by their address, else contacts by theirs: two queries for the whole file."""
    people = [p for e in events for p in ([e.organizer] if e.organizer else []) + e.attendees]
    if not people:
        return
    addresses = {p.email.lower() for p in people}
    users = {
        u.email.lower(): u
        for u in db.session.scalars(
            select(User).where(func.lower(User.email).in_(addresses), User.active.is_(True))
        )
    }
    keys = {email_key(p.email) for p in people} - {""}
    contacts = {}
    for contact in db.session.scalars(
        select(Contact).where(Contact.email_key.in_(keys)).order_by(Contact.id)
    ):
        contacts.setdefault(contact.email_key, contact)
    for person in people:
        person.user = users.get(person.email.lower())
        if person.user is None:
            person.contact = contacts.get(email_key(person.email))


# ---- 2. planning -------------------------------------------------------------------


def _existing_root(uid: str, user: User) -> Event | None:
    """The event with this UID on the user's agenda: organized by them, or attended."""
    candidates = list(
        db.session.scalars(
            select(Event)
            .where(
                Event.ical_uid == uid,
                Event.parent_id.is_(None),
                involving([user.id]),
            )
            .options(
                selectinload(Event.attendees),
                selectinload(Event.overrides),
                selectinload(Event.organizer),
            )
            .order_by(Event.id)
        )
    )
    # The one the user may change first: theirs, or their team's.
    candidates.sort(key=lambda e: not can_edit_event(user, e))
    return candidates[0] if candidates else None


def plan_import(invitation: Invitation, user: User) -> list[PlannedChange]:
    plan = []
    roots: dict[str, Event | None] = {}
    for item in invitation.events:
        if item.uid not in roots:
            roots[item.uid] = _existing_root(item.uid, user)
        root = roots[item.uid]
        existing = root
        if item.recurrence_id is not None and root is not None:
            existing = next(
                (o for o in root.overrides if o.recurrence_id == item.recurrence_id), None
            )
        if root is not None and not can_edit_event(user, root):
            plan.append(PlannedChange(item, "attending", root))
            continue
        if item.cancelled:
            if root is None:
                plan.append(PlannedChange(item, "unknown"))
            elif existing is not None and existing.status == "cancelled":
                plan.append(PlannedChange(item, "older", existing))
            else:
                plan.append(PlannedChange(item, "cancel", existing or root))
            continue
        if existing is not None and item.sequence < (existing.sequence or 0):
            plan.append(PlannedChange(item, "older", existing))
            continue
        action = "update" if existing is not None else "create"
        change = PlannedChange(item, action, existing, root=root)
        change.conflicts = _conflicts(item, user, root)
        plan.append(change)
    return plan


def _transient_event(item: InvitedEvent) -> Event:
    """An unsaved Event with the item's times, to expand its occurrences."""
    event = Event(
        title=item.title,
        starts_at=item.starts_at,
        ends_at=item.ends_at,
        all_day=item.all_day,
        timezone=item.timezone,
        rrule=item.rrule,
        exdates=item.exdates or None,
    )
    event.overrides = []
    return event


def _conflicts(item: InvitedEvent, user: User, root: Event | None) -> list[Occurrence]:
    """Occurrences of other events where the user or a matched colleague is already busy."""
    if item.all_day:
        return []  # all-day entries (a trade fair, a day off) do not block hours
    ours = expand(_transient_event(item), item.starts_at, item.starts_at + CONFLICT_HORIZON)
    ours = ours[:CONFLICT_OCCURRENCES]
    if not ours:
        return []
    people = {user.id} | {p.user.id for p in item.attendees if p.user is not None}
    start, end = ours[0].start, ours[-1].end
    query = (
        select(Event)
        .where(
            overlapping(start, end),
            Event.status != "cancelled",
            Event.all_day.is_(False),
            involving(people),
        )
        .options(selectinload(Event.overrides), selectinload(Event.organizer))
    )
    if root is not None:
        query = query.where(
            Event.id != root.id, or_(Event.parent_id.is_(None), Event.parent_id != root.id)
        )
    others = expand_all(db.session.scalars(query), start, end)
    found = []
    for other in others:
        if any(other.start < mine.end and other.end > mine.start for mine in ours):
            found.append(other)
    return found


# ---- 3. writing --------------------------------------------------------------------


def apply_import(plan: list[PlannedChange], user: User) -> list[Event]:
    """Write the planned changes; returns the events created, updated or cancelled."""
    touched: list[Event] = []
    roots: dict[str, Event] = {}
    for change in plan:
        item = change.item
        if change.action == "create":
            parent = (
                (roots.get(item.uid) or change.root) if item.recurrence_id is not None else None
            )
            event = _create(item, user, parent)
            if item.recurrence_id is None:
                roots[item.uid] = event
        elif change.action == "update":
            event = change.existing
            _update(event, item, user)
            if event.parent_id is None:
                roots[item.uid] = event
        elif change.action == "cancel":
            event = _cancel(change.existing, item)
        else:
            continue
        touched.append(event)
    db.session.flush()
    scheduled = set()
    for event in touched:
        root = event.parent or event
        if id(root) not in scheduled:
            scheduled.add(id(root))
            reminders.schedule_event(root)
    return touched


def _attendee_rows(item: InvitedEvent, user: User) -> list[EventAttendee]:
    rows, seen_users, seen_contacts = [], {user.id}, set()
    people = list(item.attendees)
    if item.organizer is not None and item.organizer.contact is not None:
        # The customer who invited us is in the CRM: they attend, and accepted.
        people.insert(
            0,
            Person(
                item.organizer.email,
                item.organizer.name,
                "accepted",
                contact=item.organizer.contact,
            ),
        )
    for person in people:
        if person.user is not None and person.user.id not in seen_users:
            seen_users.add(person.user.id)
            rows.append(EventAttendee(user=person.user, response=person.response))
        elif person.contact is not None and person.contact.id not in seen_contacts:
            seen_contacts.add(person.contact.id)
            rows.append(EventAttendee(contact=person.contact, response=person.response))
    return rows


def _create(item: InvitedEvent, user: User, parent: Event | None) -> Event:
    event = Event(
        kind="meeting",
        status="confirmed",
        ical_uid=item.uid,
        organizer=user if parent is None else parent.organizer,
        private=item.private,
    )
    if parent is not None:
        event.parent = parent
        event.recurrence_id = item.recurrence_id
    _fill(event, item)
    event.attendees = _attendee_rows(item, user)
    # An invitation from a customer belongs on that customer's record.
    contact = next(
        (p.contact for p in [item.organizer, *item.attendees] if p and p.contact is not None),
        None,
    )
    if contact is not None and parent is None:
        event.contact = contact
        event.company = contact.company
    db.session.add(event)
    return event


def _fill(event: Event, item: InvitedEvent) -> None:
    event.title = item.title
    event.starts_at = item.starts_at
    event.ends_at = item.ends_at
    event.all_day = item.all_day
    event.timezone = item.timezone
    event.location = item.location
    event.description = item.description()
    event.sequence = max(item.sequence, event.sequence or 0)
    if event.parent is None and event.recurrence_id is None:
        event.rrule = item.rrule
        event.exdates = item.exdates or None
        event.rrule_until = series_end(event) if item.rrule else None
    else:
        event.rrule, event.exdates, event.rrule_until = None, None, None


def _update(event: Event, item: InvitedEvent, user: User) -> None:
    _fill(event, item)
    event.updated_at = utcnow()  # attendee rows may be all that changed: feeds must see it
    event.status = "confirmed"
    event.private = item.private or event.private
    present_users = {a.user_id for a in event.attendees if a.user_id}
    present_contacts = {a.contact_id for a in event.attendees if a.contact_id}
    responses = {}
    for row in _attendee_rows(item, event.organizer or user):
        if row.user is not None:
            responses[("user", row.user.id)] = row.response
            if row.user.id not in present_users:
                event.attendees.append(row)
        elif row.contact is not None:
            responses[("contact", row.contact.id)] = row.response
            if row.contact.id not in present_contacts:
                event.attendees.append(row)
    for attendee in event.attendees:
        key = ("user", attendee.user_id) if attendee.user_id else ("contact", attendee.contact_id)
        if attendee.id is not None and key in responses:
            attendee.response = responses[key]


def _cancel(event: Event, item: InvitedEvent) -> Event:
    """Cancel the event, or one occurrence of a series (an override, or an EXDATE)."""
    event.sequence = max(item.sequence, event.sequence or 0)
    event.updated_at = utcnow()
    if item.recurrence_id is not None and event.parent_id is None and event.rrule:
        skipped = set(event.exdates or ())
        skipped.add(iso_utc(item.recurrence_id))
        event.exdates = sorted(skipped)
        return event
    event.status = "cancelled"
    return event
