"""Each dashboard widget's figures on hand-built data, counted by hand in the comments."""

from datetime import date, timedelta
from decimal import Decimal

from crm.extensions import db
from crm.models import Event
from crm.services import dashboards as dash
from crm.services import forecast as fc
from crm.services.reports import ReportingPeriod
from tests.dashboards_factories import at, build_sales, move
from tests.factories import (
    make_activity,
    make_contact,
    make_incident,
    make_intervention,
    make_user,
)

NOW = at(2026, 3, 20)  # a Friday
MARCH = ReportingPeriod("this_month", date(2026, 3, 1), date(2026, 4, 1))


def test_team_figures_of_the_month(ctx):
    s = build_sales(NOW)
    data = dash.team_dashboard(s.manager, MARCH, now=NOW)
    # Won in March by the team: a1 (1000) and b1 (3000); Eve's e1 is another team's.
    assert data.objective.won == {"EUR": Decimal("4000.00")}
    # Open and expected from today to the month's end: a2 (2000 at 70 %); b2 is overdue.
    assert data.objective.weighted == {"EUR": Decimal("1400.00")}
    assert data.objective.target == Decimal("8000")
    assert data.objective.forecast_percent == Decimal("67.5")
    # Closed in March: a1, b1 won, a3 lost.
    assert (data.win_rate.won, data.win_rate.lost, data.win_rate.rate) == (2, 1, Decimal("66.7"))
    # Created to won: a1 10 days, b1 4 days.
    assert (data.cycle.deals, data.cycle.average_days) == (2, Decimal("7.0"))


def test_pipeline_by_stage_counts_and_amounts_per_currency(ctx):
    s = build_sales(NOW)
    figures = dash.deal_figures(fc.Scope.of(s.manager), MARCH, date(2026, 3, 20))
    stages = {f.name: f for f in figures.pipeline}
    assert set(stages) == {"Prospection", "Proposal review"}
    assert stages["Prospection"].count == 2  # b2 in EUR, b3 in USD, never added together
    assert stages["Prospection"].amounts == {"EUR": Decimal("400.00"), "USD": Decimal("700.00")}
    assert stages["Proposal review"].count == 1
    assert stages["Proposal review"].amounts == {"EUR": Decimal("2000.00")}


def test_funnel_counts_stage_milestones_and_meetings(ctx):
    s = build_sales(NOW)
    # a1 demo -> proposal -> won; a2 proposal; b1 won; b2 a meeting logged on it.
    funnel = dash.conversion(fc.Scope.of(s.manager), MARCH, NOW)
    assert (funnel.meeting, funnel.proposal, funnel.won) == (4, 3, 2)
    assert funnel.overall_rate == Decimal("50.0")


def test_funnel_agrees_with_the_forecast_when_no_meeting_is_held(ctx):
    s = build_sales(NOW)
    db.session.query(dash.Activity).filter_by(kind="meeting").delete()
    ours = dash.conversion(fc.Scope.of(s.manager), MARCH, NOW)
    theirs = fc.conversion(fc.Scope.of(s.manager), fc.Period("month", date(2026, 3, 1)))
    assert (ours.meeting, ours.proposal, ours.won) == (theirs.meeting, theirs.proposal, theirs.won)


def test_funnel_meeting_from_the_agenda_and_reopened_wins(ctx):
    s = build_sales(NOW)
    # A meeting event about b3 held in March brings it in; one still to come does not.
    db.session.add(
        Event(
            title="Demo",
            kind="meeting",
            deal=s.deals["b3"],
            starts_at=at(2026, 3, 19),
            ends_at=at(2026, 3, 19, 13),
            organizer=s.bob,
        )
    )
    db.session.add(
        Event(
            title="Later",
            kind="meeting",
            deal=s.deals["a3"],
            starts_at=at(2026, 3, 25),
            ends_at=at(2026, 3, 25, 13),
            organizer=s.ann,
        )
    )
    # b1 reopened after its win: it no longer counts as won, and its first step goes with it.
    move(s.deals["b1"], s.stages["Prospection"], at(2026, 3, 16))
    s.deals["b1"].closed_at = None
    db.session.flush()
    funnel = dash.conversion(fc.Scope.of(s.manager), MARCH, NOW)
    # a1 (m, p, w), a2 (m, p), b2 (m), b3 (m); b1 out.
    assert (funnel.meeting, funnel.proposal, funnel.won) == (4, 2, 1)


def test_funnel_of_a_period_in_the_users_time_zone(ctx):
    s = build_sales(NOW)
    # Eve's deal moves to the demo at 23:30 UTC on March 31: April 1st in Paris.
    move(s.deals["e1"], s.stages["Demo"], at(2026, 3, 31, 23))
    s.deals["e1"].stage_entered_at = at(2026, 3, 31, 23) + timedelta(minutes=30)
    db.session.flush()
    admin = make_user(role="admin", timezone="Europe/Paris")
    april = ReportingPeriod("custom", date(2026, 4, 1), date(2026, 5, 1))
    # The history row says 23:00 UTC = 01:00 on April 1st in Paris (summer time).
    assert dash.conversion(fc.Scope.of(admin), april, NOW + timedelta(days=30)).meeting == 1
    utc_admin = make_user(role="admin", timezone="UTC")
    assert dash.conversion(fc.Scope.of(utc_admin), april, NOW + timedelta(days=30)).meeting == 0


def test_activities_per_rep(ctx):
    s = build_sales(NOW)
    contact = make_contact()
    for kind, author, day in [
        ("call", s.ann, 2),
        ("call", s.ann, 3),
        ("note", s.ann, 4),
        ("email", s.bob, 5),
        ("call", s.eve, 5),  # another team
        ("call", s.ann, 40),  # April: outside the period
    ]:
        make_activity(
            contact, kind, author=author, occurred_at=at(2026, 3, 1) + timedelta(days=day)
        )
    data = dash.team_dashboard(s.manager, MARCH, now=NOW)
    counts = {line.user.name: line.counts for line in data.activities}
    assert counts["Ann Able"] == {"call": 2, "meeting": 0, "note": 1, "email": 0}
    # Bob's meeting on b2 (March 18) is his, with his email.
    assert counts["Bob Baker"] == {"call": 0, "meeting": 1, "note": 0, "email": 1}
    assert "Eve Other" not in counts
    assert data.activity_totals == {"call": 2, "meeting": 1, "note": 1, "email": 1}


def test_quota_progress_and_deals_to_move_of_a_rep(ctx):
    s = build_sales(NOW)
    ann_month, ann_quarter = dash.quota_progress(s.ann, date(2026, 3, 20), NOW, "EUR")
    assert ann_month.target == Decimal("2000")
    assert ann_month.won == {"EUR": Decimal("1000.00")}  # a1
    assert ann_month.won_percent == Decimal("50.0")
    assert ann_quarter.target is None
    # a2 created March 4 without any activity: 16 days silent. a3 is lost.
    moving, count = dash.deals_to_move(s.ann, date(2026, 3, 20), NOW)
    assert count == 1 and [(m.deal.title, m.silent_days, m.overdue_days) for m in moving] == [
        ("a2", 16, None)
    ]
    # b2 expected March 1: 19 days overdue, though a meeting was logged on it two days ago.
    moving, count = dash.deals_to_move(s.bob, date(2026, 3, 20), NOW)
    assert [(m.deal.title, m.silent_days, m.overdue_days) for m in moving] == [("b2", None, 19)]
    # A manager's day is about the manager's own deals, not the team's.
    assert dash.deals_to_move(s.manager, date(2026, 3, 20), NOW) == ([], 0)


def test_sla_compliance_of_the_period(ctx):
    agent = make_user(role="support", timezone="Europe/Paris")
    due = at(2026, 3, 10)
    # First response: met, met late (breached), missed (unanswered and overdue), pending
    # (due in the period, not yet), paused before its due time (pending), and one due in
    # February (another period).
    make_incident(first_response_due_at=due, first_responded_at=due - timedelta(hours=1))
    make_incident(
        first_response_due_at=due,
        first_responded_at=due + timedelta(hours=1),
        first_response_breached=True,
    )
    make_incident(first_response_due_at=due)
    make_incident(first_response_due_at=at(2026, 3, 28))
    make_incident(status="waiting", first_response_due_at=due, paused_at=due - timedelta(hours=2))
    make_incident(first_response_due_at=at(2026, 2, 10), first_responded_at=at(2026, 2, 9))
    # Resolution: met, breached, and resolved before the first answer was due (met, none).
    make_incident(status="resolved", resolution_due_at=due, resolved_at=due - timedelta(days=1))
    make_incident(
        status="resolved",
        resolution_due_at=due,
        resolved_at=due + timedelta(days=1),
        resolution_breached=True,
    )
    make_incident(
        status="resolved",
        first_response_due_at=due,
        resolved_at=due - timedelta(days=2),
        resolution_due_at=at(2026, 4, 5),
    )
    figures = dash.incident_figures(agent, MARCH, NOW)
    first, resolution = figures.first_response, figures.resolution
    assert (first.met, first.missed, first.pending) == (2, 2, 2)
    assert first.rate == Decimal("50.0")
    assert (resolution.met, resolution.missed, resolution.pending) == (1, 1, 0)


def test_backlog_by_age_and_open_incidents(ctx):
    agent = make_user(role="support")
    for days, status, priority in [
        (0.5, "new", "high"),
        (2, "open", "normal"),
        (5, "waiting", "normal"),
        (10, "open", "urgent"),
        (45, "new", "low"),
        (50, "resolved", "low"),
        (3, "closed", "high"),
    ]:
        make_incident(status=status, priority=priority, created_at=NOW - timedelta(days=days))
    figures = dash.incident_figures(agent, MARCH, NOW)
    assert figures.backlog == {
        "lt1": 1,
        "1to3": 1,
        "3to7": 1,
        "7to30": 1,
        "gt30": 1,
    }
    assert figures.open_by_status == {
        ("new", "high"): 1,
        ("open", "normal"): 1,
        ("waiting", "normal"): 1,
        ("open", "urgent"): 1,
        ("new", "low"): 1,
    }


def test_interventions_this_week_per_day_and_technician(ctx):
    agent = make_user(role="support", timezone="Europe/Paris")
    tom = make_user(role="technician", name="Tom Tech")
    ida = make_user(role="technician", name="Ida Install")
    monday = at(2026, 3, 16, 8)
    make_intervention(technicians=[tom], start=monday)
    make_intervention(technicians=[tom, ida], start=monday + timedelta(days=2))
    # Sunday 23:30 Paris time is still this week; Monday 00:30 Paris the next one.
    make_intervention(technicians=[ida], start=at(2026, 3, 22, 22) + timedelta(minutes=30))
    make_intervention(technicians=[ida], start=at(2026, 3, 22, 23) + timedelta(minutes=30))
    make_intervention(technicians=[tom], start=monday + timedelta(days=1), status="cancelled")
    grid = dash.interventions_week(agent, date(2026, 3, 20))
    assert grid.days[0] == date(2026, 3, 16)
    rows = {person.name: counts for person, counts, _total in grid.rows}
    assert rows == {"Ida Install": [0, 0, 1, 0, 0, 0, 1], "Tom Tech": [1, 0, 1, 0, 0, 0, 0]}
    assert grid.total == 4 and grid.day_totals == [1, 0, 2, 0, 0, 0, 1]
    # A technician sees their own only.
    mine = dash.interventions_week(tom, date(2026, 3, 20), technician=tom)
    assert [(p.name, total) for p, _c, total in mine.rows] == [("Tom Tech", 2)]


def test_tabs_per_role(ctx):
    assert dash.tabs_for(make_user(role="sales")) == ("day",)
    assert dash.tabs_for(make_user(role="technician")) == ("day",)
    assert dash.tabs_for(make_user(role="support")) == ("day", "support")
    assert dash.tabs_for(make_user(role="manager")) == ("day", "team", "support")
