"""Series expansion in the zone they were planned in, across daylight-saving changes."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from crm.models import Event
from crm.services.recurrence import (
    build_rule,
    expand,
    expand_all,
    iso_utc,
    local_midnight,
    normalize_rule,
    occurrence_at,
    series_end,
)

PARIS = ZoneInfo("Europe/Paris")


def _event(start, end, rule=None, zone="Europe/Paris", exdates=None, all_day=False):
    return Event(
        id=1,
        title="Weekly",
        kind="meeting",
        status="confirmed",
        starts_at=start,
        ends_at=end,
        timezone=zone,
        rrule=rule,
        exdates=exdates,
        all_day=all_day,
        overrides=[],
    )


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def test_single_event_overlaps_or_not():
    event = _event(utc(2026, 12, 1, 8), utc(2026, 12, 1, 9))
    assert len(expand(event, utc(2026, 12, 1), utc(2026, 12, 2))) == 1
    assert expand(event, utc(2026, 12, 1, 9), utc(2026, 12, 2)) == []  # ends as the range starts


def test_weekly_series_keeps_local_time_across_the_october_change():
    # Mondays 9:00 Paris from 19 October 2026; clocks go back on 25 October.
    event = _event(utc(2026, 10, 19, 7), utc(2026, 10, 19, 8), build_rule("WEEKLY"))
    found = expand(event, utc(2026, 10, 1), utc(2026, 11, 10))
    assert [o.start for o in found] == [
        utc(2026, 10, 19, 7),  # 9:00 CEST
        utc(2026, 10, 26, 8),  # 9:00 CET
        utc(2026, 11, 2, 8),
        utc(2026, 11, 9, 8),
    ]
    assert all(o.start.astimezone(PARIS).hour == 9 for o in found)
    assert all(o.end - o.start == timedelta(hours=1) for o in found)


def test_daily_series_across_the_march_change_in_new_york():
    zone = ZoneInfo("America/New_York")
    start = datetime(2026, 3, 6, 8, 30, tzinfo=zone).astimezone(UTC)
    event = _event(start, start + timedelta(minutes=30), "FREQ=DAILY;COUNT=4", zone=zone.key)
    found = expand(event, utc(2026, 3, 1), utc(2026, 3, 31))
    assert [o.start.astimezone(zone).strftime("%d %H:%M") for o in found] == [
        "06 08:30",
        "07 08:30",
        "08 08:30",  # the change happens at 2:00 that morning
        "09 08:30",
    ]
    assert found[2].start - found[1].start == timedelta(hours=23)


def test_all_day_series_starts_at_local_midnight_on_both_sides():
    start = local_midnight(date(2026, 3, 27), PARIS)
    event = _event(
        start, local_midnight(date(2026, 3, 28), PARIS), "FREQ=DAILY;COUNT=3", all_day=True
    )
    found = expand(event, utc(2026, 3, 1), utc(2026, 4, 30))
    assert [o.start.astimezone(PARIS).hour for o in found] == [0, 0, 0]
    assert found[2].start.day == 28  # 29 March in Paris, 28 March at 23:00 UTC
    assert found[2].end - found[2].start == timedelta(hours=23)  # 29 March has 23 hours


def test_until_is_inclusive_of_the_last_local_day():
    rule = build_rule("WEEKLY", weekdays=["MO", "WE"], until=date(2026, 12, 9))
    event = _event(utc(2026, 11, 30, 8), utc(2026, 11, 30, 9), rule)
    found = expand(event, utc(2026, 11, 1), utc(2027, 1, 1))
    assert [o.start.day for o in found] == [30, 2, 7, 9]
    assert series_end(event) == utc(2026, 12, 9, 9)


def test_monthly_interval_and_endless_series():
    event = _event(utc(2026, 1, 15, 9), utc(2026, 1, 15, 10), build_rule("MONTHLY", interval=2))
    found = expand(event, utc(2026, 1, 1), utc(2027, 1, 1))
    assert [o.start.month for o in found] == [1, 3, 5, 7, 9, 11]
    assert series_end(event) is None


def test_exdates_and_overrides_leave_their_occurrence_out():
    event = _event(utc(2026, 12, 1, 8), utc(2026, 12, 1, 9), "FREQ=DAILY;COUNT=5")
    event.exdates = [iso_utc(utc(2026, 12, 2, 8))]
    moved = _event(utc(2026, 12, 3, 14), utc(2026, 12, 3, 15))
    moved.recurrence_id = utc(2026, 12, 3, 8)
    event.overrides = [moved]
    found = expand(event, utc(2026, 12, 1), utc(2026, 12, 31))
    assert [o.start.day for o in found] == [1, 4, 5]
    assert occurrence_at(event, utc(2026, 12, 4, 8)).key == "1@2026-12-04T08:00:00Z"
    assert occurrence_at(event, utc(2026, 12, 2, 8)) is None


def test_an_occurrence_that_started_before_the_range_is_included():
    event = _event(utc(2026, 12, 1, 22), utc(2026, 12, 2, 2), "FREQ=DAILY")
    found = expand(event, utc(2026, 12, 5), utc(2026, 12, 6))
    assert [o.start for o in found] == [utc(2026, 12, 4, 22), utc(2026, 12, 5, 22)]


def test_expand_all_sorts_and_skips_cancelled():
    first = _event(utc(2026, 12, 1, 10), utc(2026, 12, 1, 11))
    second = _event(utc(2026, 12, 1, 8), utc(2026, 12, 1, 9))
    second.id = 2
    cancelled = _event(utc(2026, 12, 1, 7), utc(2026, 12, 1, 8))
    cancelled.status = "cancelled"
    found = expand_all([first, second, cancelled], utc(2026, 12, 1), utc(2026, 12, 2))
    assert [o.event.id for o in found] == [2, 1]


def test_normalize_rule_moves_a_utc_until_to_local_time():
    assert normalize_rule("RRULE:FREQ=WEEKLY;UNTIL=20261208T225959Z", PARIS) == (
        "FREQ=WEEKLY;UNTIL=20261208T235959"
    )
    assert normalize_rule("FREQ=DAILY;UNTIL=20261208", PARIS) == "FREQ=DAILY;UNTIL=20261208T235959"
    with pytest.raises(ValueError):
        normalize_rule("FREQ=SOMETIMES", PARIS)


def test_build_rule_refuses_unknown_values():
    with pytest.raises(ValueError):
        build_rule("HOURLY")
    with pytest.raises(ValueError):
        build_rule("WEEKLY", weekdays=["XX"])
