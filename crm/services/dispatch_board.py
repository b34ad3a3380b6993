"""The dispatch board: technicians as rows, days and hours as columns, and the tray
of interventions waiting for a time.

Everything is laid out in the viewer's zone from DAY_START to DAY_END. A week shows
Monday to Friday in hour slots (Saturday and Sunday too when something is booked
on them); a day shows half-hour slots. A booked intervention sits in the slot of its
start, with its offset and length in quarter hours as CSS classes, so the page is
right before any JavaScript runs. Three queries build it, whatever the data.
"""

from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import joinedload, selectinload

from crm.extensions import db
from crm.models import Intervention, TechnicianBooking, User
from crm.services import interventions as planning
from crm.services import keyset
from crm.services.recurrence import from_local_naive, local_midnight

VIEWS = ("week", "day")
DAY_START, DAY_END = 8, 18  # local hours shown
QUARTER = timedelta(minutes=15)
SLOT_MINUTES = {"week": 60, "day": 30}
TRAY_FIRST = 24  # oldest first; the rest of the tray comes a page at a time


@dataclass
class BoardQuery:
    """What the board shows, as read from and written to the URL."""

    view: str = "week"
    day: date = field(default_factory=date.today)
    skill: str = ""

    @classmethod
    def from_args(cls, args, today: date) -> "BoardQuery":
        view = args.get("view", "week")
        try:
            day = date.fromisoformat(args.get("date", ""))
        except ValueError:
            day = today
        return cls(
            view=view if view in VIEWS else "week",
            day=day,
            skill=(args.get("skill") or "").strip()[:80],
        )

    def args(self, **changes) -> dict:
        """Query arguments for url_for, defaults left out."""
        query = replace(self, **changes)
        values = {"date": query.day.isoformat()}
        if query.view != "week":
            values["view"] = query.view
        if query.skill:
            values["skill"] = query.skill
        return values

    def step(self, direction: int) -> date:
        if self.view == "day":
            return self.day + timedelta(days=direction)
        return self.day + timedelta(weeks=direction)

    @property
    def slot_minutes(self) -> int:
        return SLOT_MINUTES[self.view]


@dataclass
class Card:
    """One booking of a technician, where the board shows it."""

    intervention: Intervention
    booking: TechnicianBooking
    offset: int  # quarter hours from the start of its slot
    quarters: int  # its length on this day, in quarter hours
    starts_before: bool = False  # began before the hours shown (or an earlier day)
    ends_after: bool = False
    missing_skills: list[str] = field(default_factory=list)


@dataclass
class Slot:
    starts_at: datetime  # aware, in the viewer's zone
    cards: list[Card] = field(default_factory=list)

    @property
    def local_iso(self) -> str:
        return self.starts_at.strftime("%Y-%m-%dT%H:%M")


@dataclass
class DayCells:
    day: date
    slots: list[Slot]


@dataclass
class TechnicianRow:
    technician: User
    days: list[DayCells]


@dataclass
class TrayPage:
    """A page of the interventions waiting for a time, with how many wait in all."""

    interventions: list[Intervention]
    count: int  # waiting (with the skill asked for), the whole tray
    left: int = 0  # after this page
    next_cursor: str | None = None


@dataclass
class DispatchBoard:
    query: BoardQuery
    zone: ZoneInfo
    today: date
    days: list[date]
    hours: list[time]
    rows: list[TechnicianRow]
    tray: TrayPage
    skills: list[str]
    technicians: list[User]  # all of them, for the card menus

    @property
    def slots_per_day(self) -> int:
        return (DAY_END - DAY_START) * 60 // self.query.slot_minutes

    @property
    def quarters_per_slot(self) -> int:
        return self.query.slot_minutes // 15


def week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _day_bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The hours shown on a local day, as aware datetimes in the zone."""
    start = from_local_naive(datetime.combine(day, time(DAY_START)), zone).astimezone(zone)
    end = from_local_naive(datetime.combine(day, time(DAY_END)), zone).astimezone(zone)
    return start, end


def _quarters(delta: timedelta) -> int:
    return int(delta / QUARTER)


def _place(booking: TechnicianBooking, day_start: datetime, day_end: datetime, slot_minutes: int):
    """(slot index, offset, quarters, starts_before, ends_after) of a booking on one day."""
    start = booking.starts_at.astimezone(day_start.tzinfo)
    end = booking.ends_at.astimezone(day_start.tzinfo)
    shown_start = min(max(start, day_start), day_end - QUARTER)
    shown_end = max(min(end, day_end), shown_start + QUARTER)
    from_top = _quarters(shown_start - day_start)
    per_slot = slot_minutes // 15
    index, offset = divmod(from_top, per_slot)
    quarters = max(1, -(-(shown_end - shown_start) // QUARTER))
    return index, offset, quarters, start < day_start, end > day_end


def board_days(query: BoardQuery, booked_days: set[date]) -> list[date]:
    if query.view == "day":
        return [query.day]
    first = week_start(query.day)
    week = [first + timedelta(days=i) for i in range(7)]
    return [day for day in week if day.weekday() < 5 or day in booked_days]


def load_bookings(people: list[User], start: datetime, end: datetime) -> list[TechnicianBooking]:
    if not people:
        return []
    query = (
        select(TechnicianBooking)
        .where(
            TechnicianBooking.technician_id.in_([person.id for person in people]),
            TechnicianBooking.active.is_(True),
            TechnicianBooking.starts_at < end,
            TechnicianBooking.ends_at > start,
        )
        .options(
            joinedload(TechnicianBooking.intervention).options(
                joinedload(Intervention.contact),
                joinedload(Intervention.company),
                selectinload(Intervention.bookings),
            )
        )
        .order_by(TechnicianBooking.starts_at)
    )
    return list(db.session.scalars(query).unique())


def load_tray(skill: str = "", cursor: str | None = None, size: int = TRAY_FIRST) -> TrayPage:
    """Interventions waiting for a time, oldest first (a skill narrows them), a page at a
    time from `cursor`: the tray's ids and skills from one narrow query (the skills are a
    JSON list, matched here alike on every database), the page's cards from a second."""
    waiting = db.session.execute(
        select(Intervention.id, Intervention.created_at, Intervention.skills)
        .where(Intervention.status == "unscheduled")
        .order_by(Intervention.created_at, Intervention.id)
    ).all()
    if skill:
        waiting = [row for row in waiting if skill in (row.skills or ())]
    count = len(waiting)
    position = keyset.decode_cursor(cursor, "datetime") if cursor else None
    if position is not None:
        waiting = [row for row in waiting if (row.created_at, row.id) > position]
    page, rest = waiting[:size], waiting[size:]
    cards = (
        {
            visit.id: visit
            for visit in db.session.scalars(
                select(Intervention)
                .where(Intervention.id.in_([row.id for row in page]))
                .options(joinedload(Intervention.contact), joinedload(Intervention.company))
            )
        }
        if page
        else {}
    )
    next_cursor = keyset.encode_cursor(page[-1].created_at, page[-1].id) if rest else None
    return TrayPage([cards[row.id] for row in page], count, len(rest), next_cursor)


def build_board(
    query: BoardQuery, zone: ZoneInfo, now: datetime, tray_cursor: str | None = None
) -> DispatchBoard:
    everyone = planning.technicians()
    skills = planning.all_skills(everyone)
    people = [p for p in everyone if not query.skill or query.skill in (p.skills or ())]
    span = (
        [query.day]
        if query.view == "day"
        else [week_start(query.day) + timedelta(days=i) for i in range(7)]
    )
    range_start = local_midnight(span[0], zone)
    range_end = local_midnight(span[-1] + timedelta(days=1), zone)
    booked = load_bookings(people, range_start, range_end)
    booked_days = {b.starts_at.astimezone(zone).date() for b in booked}
    days = board_days(query, booked_days)

    by_technician: dict[int, list[TechnicianBooking]] = {}
    for booking in booked:
        by_technician.setdefault(booking.technician_id, []).append(booking)
    people_by_id = {person.id: person for person in everyone}
    rows = []
    for person in people:
        cells = []
        for day in days:
            day_start, day_end = _day_bounds(day, zone)
            slot_length = timedelta(minutes=query.slot_minutes)
            slots = [
                Slot((day_start + i * slot_length).astimezone(zone))
                for i in range((DAY_END - DAY_START) * 60 // query.slot_minutes)
            ]
            for booking in by_technician.get(person.id, []):
                first = booking.starts_at.astimezone(zone).date()
                last = (booking.ends_at - timedelta(microseconds=1)).astimezone(zone).date()
                if not first <= day <= last:
                    continue
                index, offset, quarters, before, after = _place(
                    booking, day_start, day_end, query.slot_minutes
                )
                team = [
                    people_by_id.get(b.technician_id)
                    for b in booking.intervention.bookings
                    if b.active
                ]
                slots[index].cards.append(
                    Card(
                        booking.intervention,
                        booking,
                        offset,
                        quarters,
                        before or day > first,
                        after or day < last,
                        planning.missing_skills(booking.intervention, [t for t in team if t]),
                    )
                )
            cells.append(DayCells(day, slots))
        rows.append(TechnicianRow(person, cells))

    hours_shown = [
        time(DAY_START + (i * query.slot_minutes) // 60, (i * query.slot_minutes) % 60)
        for i in range((DAY_END - DAY_START) * 60 // query.slot_minutes)
    ]
    return DispatchBoard(
        query=query,
        zone=zone,
        today=now.astimezone(zone).date(),
        days=days,
        hours=hours_shown,
        rows=rows,
        tray=load_tray(query.skill, tray_cursor),
        skills=skills,
        technicians=everyone,
    )
