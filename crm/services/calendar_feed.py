"""Private ICS feeds: a user's or a team's agenda as an iCalendar file (RFC 5545).

Calendar clients (Google Calendar, Outlook, Thunderbird, Apple Calendar) subscribe to
the feed's secret address and fetch it every few minutes to hours. The token is the
only key, so it is long, random, revocable, and compared without timing hints.

What goes in the file:
- one VEVENT per event the owner organizes or attends (a team feed: its members'),
  over a window around today; a series is one VEVENT with RRULE and EXDATE, each
  changed occurrence a VEVENT with the same UID and a RECURRENCE-ID, as clients expect;
- times with the zone the event was planned in (TZID plus a VTIMEZONE), so that a
  weekly 9:00 meeting stays at 9:00 across daylight-saving changes in every client;
  all-day events as dates;
- in a team feed, a private event of somebody else is only "Busy";
- in a user feed, the user's open tasks as VTODO (Outlook and Thunderbird show them);
- the interventions a technician is booked on (a team feed: its members'), one VEVENT
  each with the address as LOCATION and the customer's phone in the DESCRIPTION.

The file's bytes only depend on the data (DTSTAMP is the row's last change, not the
time of the request), so its hash is a stable ETag for conditional requests.
"""

import contextlib
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask_babel import force_locale
from flask_babel import gettext as _
from icalendar import Calendar, Timezone, vCalAddress, vDuration, vRecur
from icalendar import Event as VEvent
from icalendar import Todo as VTodo
from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import joinedload, selectinload

from crm.extensions import db
from crm.i18n import DEFAULT_TIMEZONE
from crm.models import (
    CalendarFeed,
    Event,
    EventAttendee,
    Intervention,
    Task,
    Team,
    TechnicianBooking,
    User,
)
from crm.models.types import utcnow
from crm.services import bookings
from crm.services.recurrence import involving, overlapping, parse_iso_utc, to_local_naive

PRODID = "-//Open CRM//Agenda//EN"
# What the feed covers: enough history for "what did we agree last month", a year ahead.
WINDOW_BEFORE = timedelta(days=90)
WINDOW_AFTER = timedelta(days=365)
# How often clients should come back (most take it as a hint; Google decides alone).
REFRESH = timedelta(minutes=15)
# last_fetched_at is written at most this often: a feed polled every minute by many
# clients must not turn every fetch into a write.
FETCH_RECORD_INTERVAL = timedelta(minutes=1)

PARTSTAT = {
    "needs_action": "NEEDS-ACTION",
    "accepted": "ACCEPTED",
    "declined": "DECLINED",
    "tentative": "TENTATIVE",
}


# ---- the feeds themselves --------------------------------------------------------


def active_feed_for_user(user: User) -> CalendarFeed | None:
    return db.session.scalars(
        select(CalendarFeed).where(
            CalendarFeed.user_id == user.id, CalendarFeed.revoked_at.is_(None)
        )
    ).first()


def active_feed_for_team(team: Team) -> CalendarFeed | None:
    return db.session.scalars(
        select(CalendarFeed).where(
            CalendarFeed.team_id == team.id, CalendarFeed.revoked_at.is_(None)
        )
    ).first()


def create_user_feed(user: User) -> CalendarFeed:
    """The user's feed, created when there is none (creating twice gives the same one)."""
    feed = active_feed_for_user(user)
    if feed is None:
        feed = CalendarFeed(user_id=user.id, created_by_id=user.id)
        db.session.add(feed)
        db.session.flush()
    return feed


def create_team_feed(team: Team, by: User) -> CalendarFeed:
    feed = active_feed_for_team(team)
    if feed is None:
        feed = CalendarFeed(team_id=team.id, created_by_id=by.id)
        db.session.add(feed)
        db.session.flush()
    return feed


def revoke(feed: CalendarFeed) -> None:
    """The address stops working at once: clients subscribed to it get a 404."""
    if feed.revoked_at is None:
        feed.revoked_at = utcnow()


def regenerate(feed: CalendarFeed, by: User) -> CalendarFeed:
    """A new address for the same agenda; the old one is revoked."""
    revoke(feed)
    db.session.flush()
    fresh = CalendarFeed(user_id=feed.user_id, team_id=feed.team_id, created_by_id=by.id)
    db.session.add(fresh)
    db.session.flush()
    return fresh


def find_by_token(token: str) -> CalendarFeed | None:
    """The active feed with this token, or None.

    The lookup goes through the unique index; the final comparison is constant-time
    so that the answer's timing says nothing about how much of a guess was right.
    """
    if not token or len(token) > 64:
        return None
    feed = db.session.scalars(
        select(CalendarFeed)
        .where(CalendarFeed.token == token)
        .options(joinedload(CalendarFeed.user), joinedload(CalendarFeed.team))
    ).first()
    if feed is None or not hmac.compare_digest(feed.token.encode(), token.encode()):
        return None
    if feed.revoked_at is not None:
        return None
    if feed.user is not None and not feed.user.active:
        return None
    return feed


def record_fetch(feed: CalendarFeed, now: datetime | None = None) -> bool:
    """Note when a client last fetched the feed, at most once a minute. True if written."""
    now = now or utcnow()
    if feed.last_fetched_at is not None and now - feed.last_fetched_at < FETCH_RECORD_INTERVAL:
        return False
    feed.last_fetched_at = now
    return True


def can_manage(user: User, feed: CalendarFeed) -> bool:
    """Users manage their own feed; a team's manager and admins manage the team's."""
    if feed.user_id is not None:
        return feed.user_id == user.id
    return can_manage_team(user, feed.team_id)


def can_manage_team(user: User, team_id: int | None) -> bool:
    from crm.permissions import has_permission

    if team_id is None or not has_permission(user, "agenda.plan_team"):
        return False
    return user.role == "admin" or user.team_id == team_id


# ---- what a feed contains ---------------------------------------------------------


@dataclass(frozen=True)
class FeedFile:
    body: bytes
    etag: str
    last_modified: datetime | None


def feed_window(now: datetime | None = None) -> tuple[datetime, datetime]:
    """[start, end) of the feed, on whole UTC days so the file only changes once a day."""
    today = (now or utcnow()).astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - WINDOW_BEFORE, today + WINDOW_AFTER


def _member_ids(feed: CalendarFeed) -> list[int]:
    if feed.user_id is not None:
        return [feed.user_id]
    return list(db.session.scalars(select(User.id).where(User.team_id == feed.team_id)))


# What the file says about an event, loaded with it: a fixed number of queries per feed.
_EVENT_LOADING = (
    joinedload(Event.organizer),
    joinedload(Event.contact),
    joinedload(Event.company),
    joinedload(Event.deal),
    selectinload(Event.attendees).options(
        joinedload(EventAttendee.user), joinedload(EventAttendee.contact)
    ),
)


def _root_events_filter(people: list[int], start: datetime, end: datetime):
    return and_(
        involving(people),
        Event.parent_id.is_(None),
        Event.status != "cancelled",
        overlapping(start, end),
    )


def _tasks_filter(user_id: int, start: datetime, end: datetime):
    return and_(
        Task.assignee_id == user_id,
        Task.due_at.is_not(None),
        Task.due_at < end,
        or_(Task.status == "open", and_(Task.status == "done", Task.due_at >= start)),
    )


@dataclass(frozen=True)
class FeedVersion:
    """What the feed's file depends on, summed up by two aggregate queries.

    Every change to an event (answers of attendees included: they bump its SEQUENCE)
    or a task moves its updated_at; additions and removals move the counts. Names of
    people and records are not followed: the cached file expires after CACHE_SECONDS.
    """

    etag: str
    last_modified: datetime | None


CACHE_SECONDS = 3600
# Bumped when the file's layout changes, so that no cached file of the old layout is served.
LAYOUT_VERSION = 2  # 2: interventions


def feed_version(feed: CalendarFeed, now: datetime | None = None) -> FeedVersion:
    start, end = feed_window(now)
    people = _member_ids(feed)
    parts = [LAYOUT_VERSION, feed.id, start.date().isoformat()]
    if feed.user is not None:
        parts += [feed.user.locale, feed.user.timezone]
    changes = [feed.created_at]
    if people:
        roots = select(Event.id).where(_root_events_filter(people, start, end))
        summary = (func.count(Event.id), func.max(Event.updated_at), func.sum(Event.sequence))
        for row in (
            db.session.execute(select(*summary).where(Event.id.in_(roots))).one(),
            db.session.execute(select(*summary).where(Event.parent_id.in_(roots))).one(),
        ):
            parts += list(row)
            changes.append(row[1])
    if feed.user_id is not None:
        row = db.session.execute(
            select(func.count(Task.id), func.max(Task.updated_at)).where(
                _tasks_filter(feed.user_id, start, end)
            )
        ).one()
        parts += list(row)
        changes.append(row[1])
    if people:
        # Booking changes go through the intervention's updated_at (crm/services/bookings.py).
        row = db.session.execute(
            select(func.count(Intervention.id), func.max(Intervention.updated_at)).where(
                Intervention.id.in_(_booked_filter(people, start, end))
            )
        ).one()
        parts += list(row)
        changes.append(row[1])
    etag = hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:32]
    return FeedVersion(etag, max((c for c in changes if c is not None), default=None))


def cached_body(feed: CalendarFeed, version: FeedVersion, build: Callable[[], bytes]) -> bytes:
    """The file from Redis while its version holds; built (and kept) otherwise.

    Serializing a few hundred events takes a few hundred milliseconds, and calendar
    apps poll every few minutes: the file is built once per change, not per poll.
    A Redis failure only costs the build.
    """
    from redis.exceptions import RedisError

    from crm.queues import redis_connection

    key = f"crm:feed:{feed.id}:{version.etag}"
    try:
        connection = redis_connection()
        body = connection.get(key)
    except RedisError:
        connection, body = None, None
    if body is not None:
        return body
    body = build()
    if connection is not None:
        with contextlib.suppress(RedisError):
            connection.set(key, body, ex=CACHE_SECONDS)
    return body


def feed_events(feed: CalendarFeed, start: datetime, end: datetime) -> list[Event]:
    """Root events (single events and series) of the feed's people that touch [start, end).

    A series comes with all its changed occurrences (they share its UID in the file).
    Cancelled events are left out: a feed is a snapshot, and a client drops what is gone.
    """
    people = _member_ids(feed)
    if not people:
        return []
    query = (
        select(Event)
        .where(_root_events_filter(people, start, end))
        .options(*_EVENT_LOADING, selectinload(Event.overrides).options(*_EVENT_LOADING))
        .order_by(Event.starts_at, Event.id)
    )
    return list(db.session.scalars(query))


def feed_tasks(feed: CalendarFeed, start: datetime, end: datetime) -> list[Task]:
    """A user's tasks with a due time: open ones in or before the window, done ones in it."""
    if feed.user_id is None:
        return []
    query = (
        select(Task).where(_tasks_filter(feed.user_id, start, end)).order_by(Task.due_at, Task.id)
    )
    return list(db.session.scalars(query))


def _booked_filter(people: list[int], start: datetime, end: datetime):
    """Ids of the interventions the people are booked on, or went to, in [start, end)."""
    return (
        select(TechnicianBooking.intervention_id)
        .join(TechnicianBooking.intervention)
        .where(*bookings.in_calendars_between(people, start, end))
    )


def feed_interventions(feed: CalendarFeed, start: datetime, end: datetime) -> list[Intervention]:
    """Interventions the feed's people are booked on (once each in a team feed)."""
    people = _member_ids(feed)
    if not people:
        return []
    query = (
        select(Intervention)
        .where(Intervention.id.in_(_booked_filter(people, start, end)))
        .options(joinedload(Intervention.contact), joinedload(Intervention.company))
        .order_by(Intervention.starts_at, Intervention.id)
    )
    return list(db.session.scalars(query))


def calendar_name(feed: CalendarFeed) -> str:
    if feed.user is not None:
        return _("CRM agenda – %(name)s", name=feed.user.name)
    return _("CRM agenda – team %(name)s", name=feed.team.name if feed.team else "")


def build_feed(
    feed: CalendarFeed,
    link: Callable[[Event | Task], str],
    domain: str,
    now: datetime | None = None,
) -> FeedFile:
    """The feed as an iCalendar file, in the owner's language.

    `link(record)` gives the absolute address of an event or task in the CRM;
    `domain` makes the UIDs of tasks unique across installations.
    """
    locale = (feed.user.locale if feed.user else None) or "en"
    zone_name = (feed.user.timezone if feed.user else None) or DEFAULT_TIMEZONE
    start, end = feed_window(now)
    with force_locale(locale):
        builder = _FeedBuilder(feed, link, domain)
        events = feed_events(feed, start, end)
        tasks = feed_tasks(feed, start, end)
        visits = feed_interventions(feed, start, end)
        calendar = builder.calendar(calendar_name(feed), zone_name)
        for event in events:
            for component in builder.event_components(event):
                calendar.add_component(component)
        for task in tasks:
            calendar.add_component(builder.todo(task))
        for visit in visits:
            calendar.add_component(builder.intervention(visit))
        _add_timezones(calendar, builder.zones_used | {zone_name}, events, end)
    body = calendar.to_ical()
    changes = [e.updated_at for e in events] + [t.updated_at for t in tasks]
    changes += [o.updated_at for e in events for o in e.overrides]
    changes += [v.updated_at for v in visits]
    last_modified = max((c for c in changes if c is not None), default=feed.created_at)
    etag = hashlib.sha256(body).hexdigest()[:32]
    return FeedFile(body=body, etag=etag, last_modified=last_modified)


def _add_timezones(calendar: Calendar, zones: set[str], events: list[Event], end: datetime):
    """A VTIMEZONE for every zone named by a TZID, from the first event to years ahead.

    Clients that know Olson names (Google, Thunderbird, Apple) use the name; Outlook
    reads the rules, which must cover the series' whole span.
    """
    first = min((e.starts_at for e in events), default=end - WINDOW_AFTER - WINDOW_BEFORE)
    first_date = (first - timedelta(days=1)).date()
    last_date = date(end.year + 5, 1, 1)
    components = []
    for name in sorted(zones - {"UTC"}):
        try:
            components.append(Timezone.from_tzid(name, first_date=first_date, last_date=last_date))
        except (ValueError, ZoneInfoNotFoundError):
            continue
    # VTIMEZONEs go before the components that name them.
    calendar.subcomponents[0:0] = components


class _FeedBuilder:
    def __init__(self, feed: CalendarFeed, link, domain: str):
        self.feed = feed
        self.is_team = feed.team_id is not None
        self.link = link
        self.domain = domain
        self.zones_used: set[str] = set()

    def calendar(self, name: str, zone_name: str) -> Calendar:
        calendar = Calendar()
        calendar.add("prodid", PRODID)
        calendar.add("version", "2.0")
        calendar.add("calscale", "GREGORIAN")
        calendar.add("method", "PUBLISH")
        calendar.add("x-wr-calname", name)
        calendar.add("name", name)
        calendar.add("x-wr-timezone", zone_name)
        calendar.add("refresh-interval", REFRESH, parameters={"VALUE": "DURATION"})
        calendar.add("x-published-ttl", vDuration(REFRESH))
        return calendar

    # -- events --

    def event_components(self, event: Event) -> list[VEvent]:
        """The series (or single event) and, after it, its changed occurrences."""
        components = [self.vevent(event, root=event)]
        for override in sorted(event.overrides, key=lambda o: o.recurrence_id or o.starts_at):
            if override.status == "cancelled" or override.recurrence_id is None:
                continue
            components.append(self.vevent(override, root=event))
        return components

    def _redacted(self, root: Event) -> bool:
        """A team feed shows somebody's private event as busy time only.

        The team's subscribers are not known one by one, so no attendee is assumed;
        in a user feed the owner organizes or attends every event, and sees it all.
        """
        return self.is_team and root.private

    def _zone(self, event: Event) -> ZoneInfo:
        try:
            zone = ZoneInfo(event.timezone or DEFAULT_TIMEZONE)
        except (ZoneInfoNotFoundError, ValueError):
            zone = ZoneInfo(DEFAULT_TIMEZONE)
        self.zones_used.add(zone.key)
        return zone

    def _moment(self, moment: datetime, zone: ZoneInfo, all_day: bool):
        """A DTSTART-like value: a local date for all-day events, else a zoned time."""
        if all_day:
            return to_local_naive(moment, zone).date()
        return moment.astimezone(zone)

    def vevent(self, event: Event, root: Event) -> VEvent:
        zone = self._zone(root)
        all_day = root.all_day if event is not root else event.all_day
        component = VEvent()
        component.add("uid", root.ical_uid)
        component.add("dtstamp", (event.updated_at or event.created_at or utcnow()).astimezone(UTC))
        if event.created_at:
            component.add("created", event.created_at.astimezone(UTC))
        if event.updated_at:
            component.add("last-modified", event.updated_at.astimezone(UTC))
        component.add("sequence", event.sequence or 0)
        component.add("dtstart", self._moment(event.starts_at, zone, event.all_day))
        component.add("dtend", self._moment(event.ends_at, zone, event.all_day))
        if event is not root:
            component.add("recurrence-id", self._moment(event.recurrence_id, zone, root.all_day))
        elif event.rrule:
            component.add("rrule", vRecur.from_ical(_rule_for_ics(event, zone)))
            exdates = [
                self._moment(parse_iso_utc(text), zone, all_day) for text in event.exdates or ()
            ]
            exdates += [
                self._moment(o.recurrence_id, zone, all_day)
                for o in event.overrides
                if o.status == "cancelled" and o.recurrence_id is not None
            ]
            if exdates:
                component.add("exdate", sorted(exdates))
        component.add("status", "CONFIRMED")
        component.add("transp", "OPAQUE")
        component.add("class", "PRIVATE" if root.private else "PUBLIC")
        if self._redacted(root):
            component.add("summary", _("Busy"))
            return component
        component.add("summary", event.title)
        component.add("categories", [_kind_label(event.kind)])
        if event.location:
            component.add("location", event.location)
        url = self.link(event)
        component.add("url", url)
        component.add("description", _description(event, url))
        self._people(component, event if event.attendees else root)
        return component

    def _people(self, component: VEvent, event: Event) -> None:
        organizer = event.organizer or (event.parent.organizer if event.parent else None)
        if organizer is not None and organizer.email:
            component.add("organizer", _address(organizer.email, organizer.name))
        for attendee in event.attendees:
            person = attendee.user or attendee.contact
            email = getattr(person, "email", None)
            if not email:
                continue
            address = _address(email, person.name)
            address.params["PARTSTAT"] = PARTSTAT.get(attendee.response, "NEEDS-ACTION")
            address.params["ROLE"] = "REQ-PARTICIPANT"
            address.params["CUTYPE"] = "INDIVIDUAL"
            component.add("attendee", address, encode=False)

    # -- interventions --

    def intervention(self, visit: Intervention) -> VEvent:
        """An on-site visit: where to go, whom to call, the way back to the CRM."""
        component = VEvent()
        component.add("uid", f"intervention-{visit.id}@crm")
        component.add("dtstamp", (visit.updated_at or visit.created_at or utcnow()).astimezone(UTC))
        if visit.updated_at:
            component.add("last-modified", visit.updated_at.astimezone(UTC))
        component.add("dtstart", visit.starts_at.astimezone(UTC))
        component.add("dtend", visit.ends_at.astimezone(UTC))
        component.add("status", "CONFIRMED")
        component.add("transp", "OPAQUE")
        component.add("summary", visit.title)
        component.add("categories", [_("Intervention")])
        if visit.address:
            component.add("location", visit.address)
        url = self.link(visit)
        component.add("url", url)
        component.add("description", _intervention_description(visit, url))
        return component

    # -- tasks --

    def todo(self, task: Task) -> VTodo:
        component = VTodo()
        component.add("uid", f"task-{task.id}@{self.domain}")
        component.add("dtstamp", (task.updated_at or task.created_at or utcnow()).astimezone(UTC))
        if task.all_day:
            zone = ZoneInfo((task.assignee.timezone if task.assignee else None) or DEFAULT_TIMEZONE)
            component.add("due", to_local_naive(task.due_at, zone).date())
        else:
            component.add("due", task.due_at.astimezone(UTC))
        component.add("summary", task.title)
        url = self.link(task)
        component.add("url", url)
        component.add("description", "\n\n".join(p for p in (task.notes, url) if p))
        if task.status == "done":
            component.add("status", "COMPLETED")
            component.add("percent-complete", 100)
            if task.completed_at:
                component.add("completed", task.completed_at.astimezone(UTC))
        else:
            component.add("status", "NEEDS-ACTION")
        return component


def _address(email: str, name: str | None) -> vCalAddress:
    address = vCalAddress(f"mailto:{email}")
    if name:
        address.params["CN"] = name
    return address


def _kind_label(kind: str) -> str:
    from crm.labels import ACTIVITY_LABELS

    return str(ACTIVITY_LABELS.get(kind, kind))


def _description(event: Event, url: str) -> str:
    """The event's notes, what it is about, and the way back to the CRM."""
    lines = []
    if event.description:
        lines += [event.description.strip(), ""]
    if event.contact is not None:
        lines.append(_("Contact: %(name)s", name=event.contact.name))
    if event.company is not None:
        lines.append(_("Company: %(name)s", name=event.company.name))
    if event.deal is not None:
        lines.append(_("Deal: %(name)s", name=event.deal.title))
    contacts_without_email = [
        a.contact.name for a in event.attendees if a.contact is not None and not a.contact.email
    ]
    if contacts_without_email:
        lines.append(_("Also with: %(names)s", names=", ".join(contacts_without_email)))
    if lines and lines[-1] != "":
        lines.append("")
    lines.append(_("Open in the CRM: %(url)s", url=url))
    return "\n".join(lines)


def _intervention_description(visit: Intervention, url: str) -> str:
    lines = []
    if visit.company is not None:
        lines.append(_("Company: %(name)s", name=visit.company.name))
    if visit.contact is not None:
        lines.append(_("Contact: %(name)s", name=visit.contact.name))
    phone = (visit.contact.phone if visit.contact else None) or (
        visit.company.phone if visit.company else None
    )
    if phone:
        lines.append(_("Phone: %(phone)s", phone=phone))
    if visit.notes:
        lines += ["", visit.notes.strip()]
    lines += ["", _("Open in the CRM: %(url)s", url=url)]
    return "\n".join(lines)


def _rule_for_ics(event: Event, zone: ZoneInfo) -> str:
    """Our RRULE as RFC 5545 wants it next to a zoned or all-day DTSTART.

    We keep UNTIL as a floating local time (recurrence.build_rule); the standard wants
    it in UTC when DTSTART has a zone, and as a date when DTSTART is a date.
    """
    parts = []
    for part in event.rrule.split(";"):
        name, _sep, value = part.partition("=")
        if name.upper() == "UNTIL" and not value.upper().endswith("Z"):
            local = (
                datetime.strptime(value, "%Y%m%dT%H%M%S")
                if "T" in value
                else datetime.strptime(value, "%Y%m%d").replace(hour=23, minute=59, second=59)
            )
            if event.all_day:
                value = f"{local:%Y%m%d}"
            else:
                value = f"{local.replace(tzinfo=zone).astimezone(UTC):%Y%m%dT%H%M%SZ}"
        parts.append(f"{name.upper()}={value}")
    return ";".join(parts)
