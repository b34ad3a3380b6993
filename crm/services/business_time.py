"""Business time: moments and durations counted only while support works.

Pure functions over a `Calendar` (a zone, the working spans of each weekday, the
holidays). Spans are local wall-clock times of the calendar's zone; each day's
spans are turned into aware UTC intervals with that day's offset, so a day on
which the clocks change is measured as it really is, and "09:00" stays 09:00
local on either side of a change. Long durations skip whole ordinary weeks
(no holiday, no change of offset) arithmetically; the rest goes day by day,
never minute by minute.

The calendar rows (SupportCalendar, BusinessHours, Holiday) are read by
crm/services/support_settings.py, which builds a Calendar from them.
"""

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from zoneinfo import ZoneInfo

MINUTES_PER_DAY = 24 * 60
# Safety stop: a calendar whose every day is closed would otherwise loop for ever.
MAX_DAYS = 366 * 20

Span = tuple[int, int]  # (opens, closes) in minutes from local midnight; closes may be 1440


class ClosedCalendarError(ValueError):
    """The calendar has no working time at all: no due time can be computed."""


@dataclass(frozen=True)
class Calendar:
    timezone: str
    # Seven entries (Monday first), each a sorted tuple of non-overlapping spans.
    week: tuple[tuple[Span, ...], ...]
    holidays: frozenset[date] = field(default_factory=frozenset)

    def __post_init__(self):
        if len(self.week) != 7:
            raise ValueError("a week has seven days")
        for spans in self.week:
            for opens, closes in spans:
                if not 0 <= opens < closes <= MINUTES_PER_DAY:
                    raise ValueError(f"invalid span {opens}-{closes}")

    @classmethod
    def build(cls, timezone: str, hours: dict[int, list[tuple[time, time]]], holidays=()):
        """From {weekday: [(opens_at, closes_at), ...]}; a span closing at 00:00 or at
        23:59 or later closes at midnight."""
        week = []
        for weekday in range(7):
            spans = sorted(
                (_minute_of(opens), _closing_minute(closes))
                for opens, closes in hours.get(weekday, [])
            )
            week.append(tuple(spans))
        return cls(timezone, tuple(week), frozenset(holidays))

    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @cached_property
    def week_seconds(self) -> int:
        """Working seconds of an ordinary week (no holiday, no change of offset)."""
        return sum((closes - opens) * 60 for spans in self.week for opens, closes in spans)

    def day_minutes(self, weekday: int) -> int:
        return sum(closes - opens for opens, closes in self.week[weekday])


def _minute_of(moment: time) -> int:
    return moment.hour * 60 + moment.minute


def _closing_minute(moment: time) -> int:
    if moment == time(0, 0) or moment >= time(23, 59):
        return MINUTES_PER_DAY
    return _minute_of(moment)


def _local(day: date, minute: int, zone: ZoneInfo) -> datetime:
    """Local wall time `minute` of `day` as aware UTC (1440 is the next midnight).

    A time skipped in spring is read with the offset before the change (fold=0).
    """
    moment = datetime.combine(day, time()) + timedelta(minutes=minute)
    return moment.replace(tzinfo=zone).astimezone(UTC)


def day_intervals(calendar: Calendar, day: date) -> list[tuple[datetime, datetime]]:
    """The working intervals of a local day, as aware UTC pairs (none on a holiday)."""
    if day in calendar.holidays:
        return []
    zone = calendar.zone
    return [
        (_local(day, opens, zone), _local(day, closes, zone))
        for opens, closes in calendar.week[day.weekday()]
    ]


def _ordinary_week(calendar: Calendar, monday: date) -> bool:
    """No holiday and no change of UTC offset from this Monday to the next."""
    if any(monday + timedelta(days=i) in calendar.holidays for i in range(7)):
        return False
    zone = calendar.zone
    start = datetime.combine(monday, time()).replace(tzinfo=zone)
    end = datetime.combine(monday + timedelta(days=7), time()).replace(tzinfo=zone)
    return start.utcoffset() == end.utcoffset()


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("business time needs aware datetimes")
    return moment.astimezone(UTC)


def _check_open(calendar: Calendar) -> None:
    if calendar.week_seconds <= 0:
        raise ClosedCalendarError("the calendar has no working hours")


def add_business_time(calendar: Calendar, start: datetime, duration: timedelta) -> datetime:
    """The moment `duration` of working time after `start` (before it when negative).

    A start outside working hours counts from the next opening; the result is
    aware UTC. A result falling exactly on a closing time stays there (due at
    18:00 rather than at the next morning's opening).
    """
    start = _aware(start)
    seconds = duration.total_seconds()
    if seconds == 0:
        return start
    _check_open(calendar)
    if seconds < 0:
        return _walk_back(calendar, start, -seconds)
    remaining = seconds
    day = start.astimezone(calendar.zone).date()
    for _ in range(MAX_DAYS):
        for opens, closes in day_intervals(calendar, day):
            if closes <= start:
                continue
            begin = max(opens, start)
            available = (closes - begin).total_seconds()
            if remaining <= available:
                return begin + timedelta(seconds=remaining)
            remaining -= available
        day += timedelta(days=1)
        while (
            day.weekday() == 0
            and remaining > calendar.week_seconds
            and _ordinary_week(calendar, day)
        ):
            remaining -= calendar.week_seconds
            day += timedelta(days=7)
    raise ClosedCalendarError("no working time found")


def _walk_back(calendar: Calendar, end: datetime, seconds: float) -> datetime:
    remaining = seconds
    day = end.astimezone(calendar.zone).date()
    for _ in range(MAX_DAYS):
        for opens, closes in reversed(day_intervals(calendar, day)):
            if opens >= end:
                continue
            finish = min(closes, end)
            available = (finish - opens).total_seconds()
            if remaining <= available:
                return finish - timedelta(seconds=remaining)
            remaining -= available
        day -= timedelta(days=1)
        while (
            day.weekday() == 6
            and remaining > calendar.week_seconds
            and _ordinary_week(calendar, day - timedelta(days=6))
        ):
            remaining -= calendar.week_seconds
            day -= timedelta(days=7)
    raise ClosedCalendarError("no working time found")


def add_business_minutes(calendar: Calendar, start: datetime, minutes: float) -> datetime:
    return add_business_time(calendar, start, timedelta(minutes=minutes))


def business_seconds_between(calendar: Calendar, a: datetime, b: datetime) -> float:
    """Working seconds from `a` to `b`; negative when `b` comes before `a`."""
    a, b = _aware(a), _aware(b)
    if b < a:
        return -business_seconds_between(calendar, b, a)
    if a == b:
        return 0.0
    total = 0.0
    day = a.astimezone(calendar.zone).date()
    last = b.astimezone(calendar.zone).date()
    while day <= last:
        for opens, closes in day_intervals(calendar, day):
            begin, finish = max(opens, a), min(closes, b)
            if finish > begin:
                total += (finish - begin).total_seconds()
        day += timedelta(days=1)
        while (
            day.weekday() == 0 and day + timedelta(days=7) <= last and _ordinary_week(calendar, day)
        ):
            # The whole week lies strictly between a's day and b's day.
            total += calendar.week_seconds
            day += timedelta(days=7)
    return total


def business_minutes_between(calendar: Calendar, a: datetime, b: datetime) -> float:
    """Working minutes from `a` to `b` (fractional; negative when `b` is before `a`)."""
    return business_seconds_between(calendar, a, b) / 60


def is_open(calendar: Calendar, moment: datetime) -> bool:
    moment = _aware(moment)
    day = moment.astimezone(calendar.zone).date()
    return any(opens <= moment < closes for opens, closes in day_intervals(calendar, day))


def next_open(calendar: Calendar, moment: datetime) -> datetime:
    """`moment` itself during working hours, else the next opening (aware UTC)."""
    moment = _aware(moment)
    _check_open(calendar)
    day = moment.astimezone(calendar.zone).date()
    for _ in range(MAX_DAYS):
        for opens, closes in day_intervals(calendar, day):
            if closes > moment:
                return max(opens, moment)
        day += timedelta(days=1)
    raise ClosedCalendarError("no working time found")
