"""Support settings: the calendar of business hours and holidays, the service-level
policies per priority, and the defaults used until someone changes them.

Reading never writes: with no rows yet, the defaults below are used as they
are (Europe/Paris, Monday to Friday 09:00-12:30 and 13:30-18:00, French public
holidays of this year and the next). Write paths call ensure_policies() /
ensure_calendar(), which create the default rows when they are missing, so the
settings page always edits what the clocks use.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from flask import g, has_app_context
from sqlalchemy import (
    Date,
    Integer,
    String,
    Time,
    cast,
    func,
    literal_column,
    null,
    select,
    union_all,
)
from sqlalchemy.orm import selectinload

from crm.extensions import db
from crm.models.support import PRIORITIES, BusinessHours, Holiday, SlaPolicy, SupportCalendar
from crm.services.business_time import Calendar

DEFAULT_TIMEZONE = "Europe/Paris"
WORKDAY_SPANS = ((time(9, 0), time(12, 30)), (time(13, 30), time(18, 0)))
DEFAULT_HOURS = {weekday: list(WORKDAY_SPANS) for weekday in range(5)}
BUSINESS_DAY_MINUTES = 8 * 60  # the default working day above


@dataclass(frozen=True)
class PolicyTargets:
    """A priority's targets in business minutes (a SlaPolicy row, or the default)."""

    priority: str
    first_response_minutes: int
    resolution_minutes: int
    warning_minutes: int


DEFAULT_POLICIES = {
    "urgent": PolicyTargets("urgent", 60, 4 * 60, 15),
    "high": PolicyTargets("high", 2 * 60, BUSINESS_DAY_MINUTES, 30),
    "normal": PolicyTargets("normal", 4 * 60, 3 * BUSINESS_DAY_MINUTES, 60),
    "low": PolicyTargets("low", BUSINESS_DAY_MINUTES, 5 * BUSINESS_DAY_MINUTES, 60),
}


# ---- French public holidays --------------------------------------------------


def easter_sunday(year: int) -> date:
    """Gregorian Easter (the anonymous algorithm of Meeus/Jones/Butcher)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    f = (b + 8) // 25
    g_ = (b - f + 1) // 3
    h = (19 * a + b - d - g_ + 15) % 30
    i, k = c // 4, c % 4
    leap = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * leap) // 451
    month = (h + leap - 7 * m + 114) // 31
    day = (h + leap - 7 * m + 114) % 31 + 1
    return date(year, month, day)


def french_holidays(year: int) -> list[tuple[date, str]]:
    """The eleven public holidays of metropolitan France, with their French names."""
    easter = easter_sunday(year)
    days = [
        (date(year, 1, 1), "Jour de l'an"),
        (easter + timedelta(days=1), "Lundi de Pâques"),
        (date(year, 5, 1), "Fête du Travail"),
        (date(year, 5, 8), "Victoire 1945"),
        (easter + timedelta(days=39), "Ascension"),
        (easter + timedelta(days=50), "Lundi de Pentecôte"),
        (date(year, 7, 14), "Fête nationale"),
        (date(year, 8, 15), "Assomption"),
        (date(year, 11, 1), "Toussaint"),
        (date(year, 11, 11), "Armistice 1918"),
        (date(year, 12, 25), "Noël"),
    ]
    return sorted(days)


def _default_holidays(today: date) -> list[tuple[date, str]]:
    return french_holidays(today.year) + french_holidays(today.year + 1)


# ---- reading -----------------------------------------------------------------


def calendar_row() -> SupportCalendar | None:
    """The support calendar (the first one: there is one for now)."""
    return db.session.scalars(
        select(SupportCalendar)
        .options(selectinload(SupportCalendar.hours), selectinload(SupportCalendar.holidays))
        .order_by(SupportCalendar.id)
        .limit(1)
    ).first()


def default_calendar(today: date | None = None) -> Calendar:
    today = today or datetime.now(UTC).date()
    return Calendar.build(
        DEFAULT_TIMEZONE, DEFAULT_HOURS, [day for day, _name in _default_holidays(today)]
    )


def _settings_rows() -> list:
    """The calendar's zone, hours and holidays and the service levels, in one query: the
    clocks of a page read them all, four small tables in one round trip rather than four.
    Rows of (part, text, three numbers, two times, a day), the unused columns empty."""
    calendar_id = select(func.min(SupportCalendar.id)).scalar_subquery()
    text, number, moment, day = (cast(null(), kind) for kind in (String, Integer, Time, Date))

    def part(name: str):
        return literal_column(f"'{name}'")

    return db.session.execute(
        union_all(
            # First: its typed empty columns give every row its types (SQLite parses by them).
            select(part("zone"), SupportCalendar.timezone, number, number, number)
            .add_columns(moment, moment, day)
            .where(SupportCalendar.id == calendar_id),
            select(part("hours"), text, BusinessHours.weekday, number, number)
            .add_columns(BusinessHours.opens_at, BusinessHours.closes_at, day)
            .where(BusinessHours.calendar_id == calendar_id),
            select(part("holiday"), text, number, number, number)
            .add_columns(moment, moment, Holiday.day)
            .where(Holiday.calendar_id == calendar_id),
            select(part("policy"), SlaPolicy.priority, SlaPolicy.first_response_minutes)
            .add_columns(SlaPolicy.resolution_minutes, SlaPolicy.warning_minutes)
            .add_columns(moment, moment, day),
        )
    ).all()


def _read_settings() -> tuple[Calendar, dict[str, PolicyTargets]]:
    """The calendar and the targets the clocks use, read once per request or job run."""
    zone, hours, holidays, policies = None, {}, [], dict(DEFAULT_POLICIES)
    for part, text, first, second, third, opens, closes, day in _settings_rows():
        if part == "zone":
            zone = text
        elif part == "hours":
            hours.setdefault(first, []).append((opens, closes))
        elif part == "holiday":
            holidays.append(day)
        else:
            policies[text] = PolicyTargets(text, first, second, third)
    calendar = Calendar.build(zone, hours, holidays) if zone else default_calendar()
    if calendar.week_seconds == 0:
        # Every span removed: service levels cannot count anything; keep the defaults'
        # hours rather than never reaching a due time (the settings form forbids it).
        calendar = Calendar(calendar.timezone, default_calendar().week, calendar.holidays)
    if has_app_context():
        g.support_calendar, g.sla_policies = calendar, policies
    return calendar, policies


def load_calendar() -> Calendar:
    """The calendar the clocks use, read once per request or job run."""
    cached = g.get("support_calendar") if has_app_context() else None
    return cached if cached is not None else _read_settings()[0]


def forget_cached() -> None:
    """After saving settings: the next read sees the new rows."""
    if has_app_context():
        g.pop("support_calendar", None)
        g.pop("sla_policies", None)


def load_policies() -> dict[str, PolicyTargets]:
    """Targets per priority: the rows, the defaults for any priority without one."""
    cached = g.get("sla_policies") if has_app_context() else None
    return cached if cached is not None else _read_settings()[1]


def policy_for(priority: str) -> PolicyTargets:
    return load_policies().get(priority) or DEFAULT_POLICIES["normal"]


# ---- creating the defaults -----------------------------------------------------


def ensure_policies() -> dict[str, SlaPolicy]:
    """The policy rows, the missing ones created with the defaults (insert-or-ignore,
    so two first incidents created at once do not collide)."""
    from crm.services.reminders import dialect_insert

    existing = {row.priority: row for row in db.session.scalars(select(SlaPolicy))}
    missing = [p for p in PRIORITIES if p not in existing]
    if missing:
        rows = [
            {
                "priority": p,
                "first_response_minutes": DEFAULT_POLICIES[p].first_response_minutes,
                "resolution_minutes": DEFAULT_POLICIES[p].resolution_minutes,
                "warning_minutes": DEFAULT_POLICIES[p].warning_minutes,
            }
            for p in missing
        ]
        db.session.execute(dialect_insert(SlaPolicy).values(rows).on_conflict_do_nothing())
        existing = {row.priority: row for row in db.session.scalars(select(SlaPolicy))}
    return existing


def ensure_calendar(today: date | None = None) -> SupportCalendar:
    """The calendar row, created with the default hours and holidays when missing."""
    row = calendar_row()
    if row is not None:
        return row
    today = today or datetime.now(UTC).date()
    row = SupportCalendar(name="Support", timezone=DEFAULT_TIMEZONE)
    for weekday, spans in DEFAULT_HOURS.items():
        for opens, closes in spans:
            row.hours.append(BusinessHours(weekday=weekday, opens_at=opens, closes_at=closes))
    for day, name in _default_holidays(today):
        row.holidays.append(Holiday(day=day, name=name))
    db.session.add(row)
    db.session.flush()
    return row


# ---- saving the settings page ------------------------------------------------------


def save_policies(targets: dict[str, tuple[int, int, int]]) -> None:
    """{priority: (first response, resolution, warning) in minutes}, all at once."""
    rows = ensure_policies()
    for priority, (first, resolution, warning) in targets.items():
        row = rows[priority]
        row.first_response_minutes, row.resolution_minutes = first, resolution
        row.warning_minutes = warning
    db.session.flush()
    forget_cached()


def save_hours(timezone: str, spans: dict[int, list[tuple[time, time]]]) -> SupportCalendar:
    """Replace the working spans of every weekday. A closing time of 00:00 means midnight:
    stored as 23:59:59.999999, since the table wants closes_at after opens_at."""
    row = ensure_calendar()
    row.timezone = timezone
    row.hours.clear()
    db.session.flush()  # the old spans go before the new ones come
    for weekday in range(7):
        for opens, closes in spans.get(weekday, []):
            stored = time.max if closes == time(0, 0) else closes
            row.hours.append(BusinessHours(weekday=weekday, opens_at=opens, closes_at=stored))
    db.session.flush()
    forget_cached()
    return row


def add_holiday(day: date, name: str) -> bool:
    """False when the day is a holiday already."""
    row = ensure_calendar()
    if any(holiday.day == day for holiday in row.holidays):
        return False
    row.holidays.append(Holiday(day=day, name=name))
    db.session.flush()
    forget_cached()
    return True


def remove_holiday(holiday_id: int) -> bool:
    holiday = db.session.get(Holiday, holiday_id)
    if holiday is None:
        return False
    db.session.delete(holiday)
    db.session.flush()
    forget_cached()
    return True


def add_french_holidays(year: int) -> int:
    """Add the French public holidays of `year` that are missing; returns how many."""
    return sum(add_holiday(day, name) for day, name in french_holidays(year))
