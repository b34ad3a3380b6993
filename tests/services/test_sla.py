"""Service-level clocks of incidents over the default calendar (Paris, Monday to
Friday 09:00-12:30 and 13:30-18:00) and the default policies (normal: first
response 4 h, resolution 3 business days; urgent: 1 h / 4 h)."""

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from crm.extensions import db
from crm.models import SlaPolicy
from crm.services import sla, support_settings
from crm.services.business_time import business_minutes_between
from tests.factories import make_incident

PARIS = ZoneInfo("Europe/Paris")


def paris(*args) -> datetime:
    return datetime(*args, tzinfo=PARIS).astimezone(UTC)


@pytest.fixture
def cal(ctx):
    support_settings.ensure_calendar(today=date(2025, 1, 1))
    db.session.flush()
    support_settings.forget_cached()
    return support_settings.load_calendar()


def opened(at, priority="normal", **fields):
    incident = make_incident(priority=priority, status="new", created_at=at, **fields)
    sla.start_clock(incident)
    return incident


def move(incident, status, at):
    old, incident.status = incident.status, status
    sla.status_changed(incident, old, at)


def test_start_sets_both_due_times_and_creates_the_policies(cal):
    incident = opened(paris(2025, 3, 3, 10, 0))  # Monday
    assert incident.first_response_due_at == paris(2025, 3, 3, 15, 0)
    # 3 business days of 8 h: Thursday 10:00.
    assert incident.resolution_due_at == paris(2025, 3, 6, 10, 0)
    rows = {p.priority: p for p in db.session.scalars(select(SlaPolicy))}
    assert set(rows) == {"low", "normal", "high", "urgent"}
    assert rows["urgent"].first_response_minutes == 60


def test_start_uses_the_configured_policy(cal):
    support_settings.ensure_policies()
    db.session.scalars(
        select(SlaPolicy).filter_by(priority="urgent")
    ).one().first_response_minutes = 30
    db.session.flush()
    support_settings.forget_cached()
    incident = opened(paris(2025, 3, 3, 17, 45), priority="urgent")
    assert incident.first_response_due_at == paris(2025, 3, 4, 9, 15)


def test_opened_on_a_holiday_counts_from_the_next_working_morning(cal):
    incident = opened(paris(2025, 5, 1, 11, 0), priority="urgent")  # 1 May
    assert incident.first_response_due_at == paris(2025, 5, 2, 10, 0)


def test_waiting_pauses_and_resuming_moves_the_due_times(cal):
    incident = opened(paris(2025, 3, 3, 10, 0))
    move(incident, "waiting", paris(2025, 3, 3, 11, 0))
    assert incident.paused_at == paris(2025, 3, 3, 11, 0)
    state = sla.clock(incident, paris(2025, 3, 4, 16, 0), cal)
    # 11:00-15:00 less the lunch break: 3 h were left when the pause began.
    assert (state.status, state.target, state.minutes_left) == ("paused", "first_response", 180)
    # Back the next day at 10:00: waited 11:00-18:00 (6 h of business) + 09:00-10:00.
    move(incident, "open", paris(2025, 3, 4, 10, 0))
    assert incident.paused_at is None
    assert incident.first_response_due_at == paris(2025, 3, 4, 14, 0)
    assert incident.resolution_due_at == paris(2025, 3, 6, 18, 0)
    state = sla.clock(incident, paris(2025, 3, 4, 10, 0), cal)
    assert (state.status, state.minutes_left) == ("ok", 180)


def test_a_due_time_passed_before_the_pause_stays_passed(cal):
    incident = opened(paris(2025, 3, 3, 9, 0), priority="urgent")
    incident.first_responded_at = None
    move(incident, "waiting", paris(2025, 3, 3, 10, 30))  # first response was due 10:00
    move(incident, "open", paris(2025, 3, 3, 11, 30))
    assert incident.first_response_due_at == paris(2025, 3, 3, 10, 0)
    assert incident.resolution_due_at == paris(2025, 3, 3, 15, 0)  # 13:00 + 1 h waited


def test_first_response_met_or_breached(cal):
    on_time = opened(paris(2025, 3, 3, 10, 0))
    sla.first_response(on_time, paris(2025, 3, 3, 14, 0))
    assert on_time.first_responded_at == paris(2025, 3, 3, 14, 0)
    assert not on_time.first_response_breached
    sla.first_response(on_time, paris(2025, 3, 3, 16, 0))  # a second reply changes nothing
    assert on_time.first_responded_at == paris(2025, 3, 3, 14, 0)
    state = sla.clock(on_time, paris(2025, 3, 3, 14, 0), cal)
    assert state.target == "resolution"

    late = opened(paris(2025, 3, 3, 10, 0))
    sla.first_response(late, paris(2025, 3, 3, 15, 1))
    assert late.first_response_breached


def test_reply_while_waiting_discounts_the_pause(cal):
    incident = opened(paris(2025, 3, 3, 10, 0))  # first response due 15:00
    move(incident, "waiting", paris(2025, 3, 3, 11, 0))
    sla.first_response(incident, paris(2025, 3, 3, 16, 0))
    assert not incident.first_response_breached


def test_resolution_stops_the_clock_and_reopening_restarts_from_what_was_left(cal):
    incident = opened(paris(2025, 3, 3, 10, 0))  # resolution due Thursday 10:00
    sla.first_response(incident, paris(2025, 3, 3, 11, 0))
    move(incident, "resolved", paris(2025, 3, 4, 10, 0))  # 16 business hours left
    assert incident.resolved_at == paris(2025, 3, 4, 10, 0)
    assert sla.clock(incident, paris(2025, 3, 20, 10, 0), cal).status == "met"
    move(incident, "closed", paris(2025, 3, 5, 10, 0))
    assert incident.closed_at == paris(2025, 3, 5, 10, 0)
    # Reopened a week later: 16 business hours from Wednesday 12 March 10:00.
    move(incident, "open", paris(2025, 3, 12, 10, 0))
    assert incident.resolved_at is None and incident.closed_at is None
    assert incident.resolution_due_at == paris(2025, 3, 14, 10, 0)
    left = business_minutes_between(cal, paris(2025, 3, 12, 10, 0), incident.resolution_due_at)
    assert left == 16 * 60


def test_resolved_late_is_flagged_and_shown_as_breached(cal):
    incident = opened(paris(2025, 3, 3, 10, 0), priority="urgent")  # resolution due 15:00
    sla.first_response(incident, paris(2025, 3, 3, 10, 30))
    move(incident, "resolved", paris(2025, 3, 3, 16, 0))
    assert incident.resolution_breached
    state = sla.clock(incident, paris(2025, 3, 10, 9, 0), cal)
    assert (state.status, state.overdue_minutes) == ("breached", 60)


def test_resolving_while_waiting_does_not_count_the_wait(cal):
    incident = opened(paris(2025, 3, 3, 10, 0), priority="urgent")  # resolution due 15:00
    sla.first_response(incident, paris(2025, 3, 3, 10, 10))
    move(incident, "waiting", paris(2025, 3, 3, 11, 0))
    move(incident, "resolved", paris(2025, 3, 4, 11, 0))
    assert not incident.resolution_breached
    assert incident.resolution_due_at == paris(2025, 3, 4, 15, 0)


def test_priority_change_keeps_the_elapsed_time(cal):
    incident = opened(paris(2025, 3, 3, 10, 0))  # normal: 4 h / 24 h
    incident.priority = "urgent"  # 1 h / 4 h: 3 h and 20 h earlier
    sla.priority_changed(incident, paris(2025, 3, 3, 10, 30))
    assert incident.first_response_due_at == paris(2025, 3, 3, 11, 0)
    assert incident.resolution_due_at == paris(2025, 3, 3, 15, 0)
    # And back, explicitly: the due times return where they were.
    incident.priority = "normal"
    sla.priority_changed(incident, paris(2025, 3, 3, 10, 40), old_priority="urgent")
    assert incident.first_response_due_at == paris(2025, 3, 3, 15, 0)
    assert incident.resolution_due_at == paris(2025, 3, 6, 10, 0)


def test_raising_the_priority_late_makes_it_overdue_at_once(cal):
    incident = opened(paris(2025, 3, 3, 10, 0))
    now = paris(2025, 3, 3, 14, 0)
    incident.priority = "urgent"
    sla.priority_changed(incident, now, old_priority="normal")
    state = sla.clock(incident, now, cal)
    # Due at 11:00 under the new policy: 11:00-12:30 and 13:30-14:00 overdue.
    assert (state.status, state.target, state.overdue_minutes) == (
        "breached",
        "first_response",
        120,
    )


def test_lowering_the_priority_clears_a_breach(cal):
    incident = opened(paris(2025, 3, 3, 10, 0), priority="urgent")
    incident.first_response_breached = True
    incident.sla_notified = {"first_response": ["warning", "breach"]}
    incident.priority = "low"
    sla.priority_changed(incident, paris(2025, 3, 3, 11, 30), old_priority="urgent")
    assert not incident.first_response_breached
    assert incident.sla_notified is None
    assert incident.first_response_due_at == paris(2025, 3, 4, 10, 0)


def test_clock_states(cal):
    incident = opened(paris(2025, 3, 3, 10, 0))  # first response due 15:00
    assert sla.clock(incident, paris(2025, 3, 3, 10, 0), cal).status == "ok"
    warning = sla.clock(incident, paris(2025, 3, 3, 14, 15), cal, support_settings.load_policies())
    assert (warning.status, warning.minutes_left) == ("warning", 45)
    breached = sla.clock(incident, paris(2025, 3, 3, 15, 40), cal)
    assert (breached.status, breached.overdue_minutes) == ("breached", 40)
    # Overdue counts business time only: Tuesday 09:10 is 3 h 10 overdue.
    assert sla.clock(incident, paris(2025, 3, 4, 9, 10), cal).overdue_minutes == 190
    assert sla.clock(make_incident(), paris(2025, 3, 3, 10, 0), cal).status == "none"


def test_long_pauses_over_weeks_and_holidays(cal):
    incident = opened(paris(2025, 4, 14, 10, 0), priority="low")  # resolution: 5 business days
    before = incident.resolution_due_at
    move(incident, "waiting", paris(2025, 4, 15, 10, 0))
    move(incident, "open", paris(2025, 5, 15, 10, 0))
    waited = business_minutes_between(cal, paris(2025, 4, 15, 10, 0), paris(2025, 5, 15, 10, 0))
    assert business_minutes_between(cal, before, incident.resolution_due_at) == pytest.approx(
        waited
    )
    assert waited == (22 - 3) * 8 * 60  # 22 weekdays less Easter Monday, 1 and 8 May
    assert (before, incident.resolution_due_at) == (
        paris(2025, 4, 22, 10, 0),
        paris(2025, 5, 21, 10, 0),
    )


def test_callers_that_set_the_timestamps_themselves(cal):
    """The incident service sets resolved_at before telling the clock, and clears it
    before reopening: the clock still flags a late resolution and restarts from
    the time that was left."""
    incident = opened(paris(2025, 3, 3, 10, 0), priority="urgent")  # resolution due 15:00
    sla.first_response(incident, paris(2025, 3, 3, 10, 5))
    db.session.flush()
    incident.status, incident.resolved_at = "resolved", paris(2025, 3, 3, 14, 0)
    sla.status_changed(incident, "open", paris(2025, 3, 3, 14, 0))
    assert not incident.resolution_breached
    db.session.flush()
    incident.status, incident.resolved_at = "open", None
    sla.status_changed(incident, "resolved", paris(2025, 3, 5, 10, 0))
    assert incident.resolution_due_at == paris(2025, 3, 5, 11, 0)  # the hour left

    late = opened(paris(2025, 3, 3, 10, 0), priority="urgent")
    late.status, late.resolved_at = "closed", paris(2025, 3, 3, 16, 0)
    late.closed_at = late.resolved_at
    sla.status_changed(late, "open", paris(2025, 3, 3, 16, 0))
    assert late.resolution_breached and late.first_response_breached
