"""Business time over the default support calendar (Europe/Paris, Monday to Friday
09:00-12:30 and 13:30-18:00) and a few others: lunch breaks, weekends, holidays,
the changes of clock in spring and autumn, spans ending at midnight, long
durations checked against a plain day-by-day count."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from crm.services.business_time import (
    Calendar,
    ClosedCalendarError,
    add_business_minutes,
    business_minutes_between,
    day_intervals,
    is_open,
    next_open,
)
from crm.services.support_settings import DEFAULT_HOURS, easter_sunday, french_holidays

PARIS = ZoneInfo("Europe/Paris")


def paris(*args) -> datetime:
    return datetime(*args, tzinfo=PARIS)


def calendar(holidays=(), hours=None, zone="Europe/Paris") -> Calendar:
    return Calendar.build(zone, DEFAULT_HOURS if hours is None else hours, holidays)


# 2025-03-03 is a Monday.
MONDAY = (2025, 3, 3)


def test_adds_within_a_span():
    due = add_business_minutes(calendar(), paris(*MONDAY, 9, 15), 60)
    assert due == paris(*MONDAY, 10, 15)
    assert due.tzinfo == UTC


def test_skips_the_lunch_break():
    due = add_business_minutes(calendar(), paris(*MONDAY, 12, 0), 60)
    assert due == paris(*MONDAY, 14, 0)


def test_due_exactly_at_closing_stays_there():
    assert add_business_minutes(calendar(), paris(*MONDAY, 17, 0), 60) == paris(*MONDAY, 18, 0)
    assert add_business_minutes(calendar(), paris(*MONDAY, 17, 0), 61) == paris(2025, 3, 4, 9, 1)


def test_start_outside_hours_begins_at_the_next_opening():
    cal = calendar()
    assert add_business_minutes(cal, paris(*MONDAY, 7, 0), 30) == paris(*MONDAY, 9, 30)
    assert add_business_minutes(cal, paris(*MONDAY, 12, 45), 30) == paris(*MONDAY, 14, 0)
    assert add_business_minutes(cal, paris(*MONDAY, 20, 0), 30) == paris(2025, 3, 4, 9, 30)


def test_weekend_skipped():
    cal = calendar()
    friday = paris(2025, 3, 7, 17, 30)
    assert add_business_minutes(cal, friday, 60) == paris(2025, 3, 10, 9, 30)
    assert add_business_minutes(cal, paris(2025, 3, 8, 11, 0), 60) == paris(2025, 3, 10, 10, 0)
    assert business_minutes_between(cal, friday, paris(2025, 3, 10, 9, 30)) == 60


def test_holidays_skipped():
    # Easter Monday 2025 is 21 April; 1 May is a Thursday.
    cal = calendar(holidays=[day for day, _ in french_holidays(2025)])
    assert add_business_minutes(cal, paris(2025, 4, 18, 17, 0), 120) == paris(2025, 4, 22, 10, 0)
    assert add_business_minutes(cal, paris(2025, 4, 30, 18, 0), 8 * 60) == paris(2025, 5, 2, 18, 0)
    assert business_minutes_between(cal, paris(2025, 4, 30, 9, 0), paris(2025, 5, 2, 18, 0)) == 960


def test_french_holidays():
    assert easter_sunday(2024) == date(2024, 3, 31)
    assert easter_sunday(2025) == date(2025, 4, 20)
    assert easter_sunday(2026) == date(2026, 4, 5)
    days = dict(french_holidays(2026))
    assert len(days) == 11
    assert days[date(2026, 4, 6)] == "Lundi de Pâques"
    assert days[date(2026, 5, 14)] == "Ascension"
    assert days[date(2026, 5, 25)] == "Lundi de Pentecôte"


def test_spring_forward_keeps_local_hours():
    # Clocks go forward on Sunday 30 March 2025: Friday 17:00 (UTC+1) + 2 h of business
    # time is Monday 10:00 local, UTC+2 by then.
    cal = calendar()
    due = add_business_minutes(cal, paris(2025, 3, 28, 17, 0), 120)
    assert due == paris(2025, 3, 31, 10, 0)
    assert due == datetime(2025, 3, 31, 8, 0, tzinfo=UTC)
    assert business_minutes_between(cal, paris(2025, 3, 28, 17, 0), due) == 120


def test_autumn_back_keeps_local_hours():
    cal = calendar()
    due = add_business_minutes(cal, paris(2025, 10, 24, 17, 0), 120)
    assert due == paris(2025, 10, 27, 10, 0)
    assert due == datetime(2025, 10, 27, 9, 0, tzinfo=UTC)


def test_round_the_clock_span_measures_the_real_day_length_on_changes():
    # A 24/7 service desk: the night of the change is an hour shorter (spring) or longer.
    always = {weekday: [(time(0, 0), time(0, 0))] for weekday in range(7)}
    cal = calendar(hours=always)
    assert (
        business_minutes_between(cal, paris(2025, 3, 30, 0, 0), paris(2025, 3, 31, 0, 0)) == 23 * 60
    )
    assert (
        business_minutes_between(cal, paris(2025, 10, 26, 0, 0), paris(2025, 10, 27, 0, 0))
        == 25 * 60
    )
    start = paris(2025, 3, 29, 12, 0)
    assert add_business_minutes(cal, start, 24 * 60) == start.astimezone(UTC) + timedelta(hours=24)


def test_span_ending_at_midnight():
    evenings = {0: [(time(18, 0), time(0, 0))]}
    cal = calendar(hours=evenings)
    assert add_business_minutes(cal, paris(*MONDAY, 23, 0), 60) == paris(2025, 3, 4, 0, 0)
    assert add_business_minutes(cal, paris(*MONDAY, 23, 0), 90) == paris(2025, 3, 10, 18, 30)
    assert day_intervals(cal, date(*MONDAY)) == [
        (paris(*MONDAY, 18, 0).astimezone(UTC), paris(2025, 3, 4, 0, 0).astimezone(UTC))
    ]


def _count_by_days(cal, start, end):
    total = 0.0
    day = start.astimezone(cal.zone).date() - timedelta(days=1)
    while day <= end.astimezone(cal.zone).date():
        for opens, closes in day_intervals(cal, day):
            begin, finish = max(opens, start), min(closes, end)
            if finish > begin:
                total += (finish - begin).total_seconds() / 60
        day += timedelta(days=1)
    return total


@pytest.mark.parametrize("minutes", [8 * 60 * 5, 8 * 60 * 23 + 17, 8 * 60 * 400 + 5])
def test_long_durations_agree_with_a_day_by_day_count(minutes):
    holidays = [d for y in (2025, 2026, 2027) for d, _ in french_holidays(y)]
    cal = calendar(holidays=holidays)
    start = paris(2025, 1, 6, 10, 17)
    due = add_business_minutes(cal, start, minutes)
    assert business_minutes_between(cal, start, due) == pytest.approx(minutes)
    assert _count_by_days(cal, start, due) == pytest.approx(minutes)
    # And back again.
    assert add_business_minutes(cal, due, -minutes) == start.astimezone(UTC)


def test_a_year_of_business_time_is_quick():
    import time as clock

    cal = calendar(holidays=[d for d, _ in french_holidays(2025)])
    began = clock.perf_counter()
    for _ in range(200):
        add_business_minutes(cal, paris(2025, 1, 2, 9, 0), 8 * 60 * 250)
    assert clock.perf_counter() - began < 2


def test_between_is_signed_and_zero_outside_hours():
    cal = calendar()
    a, b = paris(*MONDAY, 10, 0), paris(*MONDAY, 15, 0)
    assert business_minutes_between(cal, a, b) == 240
    assert business_minutes_between(cal, b, a) == -240
    assert business_minutes_between(cal, paris(*MONDAY, 19, 0), paris(*MONDAY, 23, 0)) == 0


def test_next_open_and_is_open():
    cal = calendar()
    assert next_open(cal, paris(*MONDAY, 10, 0)) == paris(*MONDAY, 10, 0)
    assert next_open(cal, paris(*MONDAY, 12, 40)) == paris(*MONDAY, 13, 30)
    assert next_open(cal, paris(2025, 3, 8, 10, 0)) == paris(2025, 3, 10, 9, 0)
    assert is_open(cal, paris(*MONDAY, 10, 0))
    assert not is_open(cal, paris(*MONDAY, 13, 0))


def test_a_calendar_without_hours_refuses():
    with pytest.raises(ClosedCalendarError):
        add_business_minutes(calendar(hours={}), paris(*MONDAY, 10, 0), 10)


def test_naive_datetimes_refused():
    with pytest.raises(ValueError):
        add_business_minutes(calendar(), datetime(2025, 3, 3, 10, 0), 10)
