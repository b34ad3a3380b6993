"""Round robin among the available support agents of a team: fairness over many
assignments, agents away or at their load limit skipped, the reason in words,
the fallbacks when the team has nobody, and fairness under concurrent assigners."""

import threading
from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from crm.extensions import db
from crm.models import Incident
from crm.services import assignment
from tests.conftest import BACKENDS
from tests.factories import make_incident, make_team, make_user


def agents(team, count, **fields):
    return [
        make_user(role="support", team=team, name=f"Agent {chr(65 + i)}", password=None, **fields)
        for i in range(count)
    ]


def test_fairness_over_a_thousand_assignments_with_one_agent_away_for_a_while(ctx):
    team = make_team("Support")
    a, b, c, away = agents(team, 4)
    make_user(role="support", name="Other team", password=None)  # never chosen
    make_user(role="sales", team=team, password=None)  # not an agent
    today = datetime.now(UTC).date()
    away.away_until = today + timedelta(days=3)
    counts = Counter()
    for n in range(1000):
        if n == 400:
            away.away_until = today - timedelta(days=1)  # back from holidays
        incident = make_incident(team=team, status="closed")  # closed: no load
        chosen = assignment.assign_round_robin(incident)
        assert incident.assignee is chosen
        counts[chosen.name] += 1
    always = [counts[u.name] for u in (a, b, c)]
    assert max(always) - min(always) <= 1
    assert counts["Agent D"] == 1000 - sum(always)
    assert sum(counts.values()) == 1000
    # While away, D got nothing; once back, D's turns come in the same rotation.
    assert 0 < counts["Agent D"] <= 600 / 4 + 1


def test_away_and_overloaded_agents_are_skipped_and_named_in_the_reason(ctx):
    team = make_team("Support")
    lucas = make_user(role="support", team=team, name="Lucas Moreau", password=None)
    nadia = make_user(role="support", team=team, name="Nadia Roux", password=None)
    free = make_user(role="support", team=team, name="Léa Petit", password=None)
    lucas.away_until = date(2099, 11, 30)
    nadia.max_open_incidents = 2
    for _ in range(2):
        make_incident(assignee=nadia, status="waiting")
    make_incident(assignee=nadia, status="resolved")  # not open: does not count
    incident = make_incident(team=team)
    assert assignment.assign_round_robin(incident) is free
    assert incident.assignment_reason == (
        "Round robin in Support: least recently assigned of 1 available "
        "(skipped: Lucas Moreau, away until 30 Nov; Nadia Roux, 2 open)"
    )
    assert free.last_assigned_at is not None


def test_load_limit_respected_with_the_configured_default(ctx, data_app):
    team = make_team()
    only = make_user(role="support", team=team, password=None)
    data_app.config["SUPPORT_MAX_OPEN_INCIDENTS"] = 3
    try:
        chosen = [assignment.assign_round_robin(make_incident(team=team)) for _ in range(5)]
    finally:
        data_app.config.pop("SUPPORT_MAX_OPEN_INCIDENTS")
    assert chosen == [only, only, only, None, None]
    assert (
        db.session.scalar(
            select(db.func.count()).select_from(Incident).where(Incident.assignee_id == only.id)
        )
        == 3
    )


def test_nobody_available_leaves_the_incident_alone(ctx):
    team = make_team("Support")
    (agent,) = agents(team, 1)
    agent.away_until = date(2099, 1, 1)
    boss = make_user(role="support", password=None)
    incident = make_incident(team=team, assignee=boss, assignment_reason=None)
    outcome = assignment.round_robin(incident)
    assert outcome.chosen is None
    assert incident.assignee is boss and incident.assignment_reason is None
    assert outcome.reason.startswith("Round robin in Support: nobody available (skipped: Agent A")


def test_candidates_without_a_team_are_all_support_agents(ctx):
    lonely_team = make_team("Sales people")
    make_user(role="sales", team=lonely_team, password=None)
    x = make_user(role="support", password=None)
    y = make_user(role="support", team=make_team(), password=None)
    make_user(role="support", password=None, active=False)
    chosen = {assignment.assign_round_robin(make_incident(), team=lonely_team) for _ in range(4)}
    assert chosen == {x, y}
    incident = make_incident()
    assignment.assign_round_robin(incident)
    assert "all support agents" in incident.assignment_reason


def test_the_incident_team_then_the_signed_in_users_team(data_app, ctx):
    first, second = make_team("First"), make_team("Second")
    (a,) = agents(first, 1)
    (b,) = agents(second, 1)
    manager = make_user(role="manager", team=second, password=None)
    db.session.commit()
    assert assignment.assign_round_robin(make_incident(team=first)) == a
    from flask_login import login_user

    from crm.services import sessions

    with data_app.test_request_context("/"):
        sessions.start(manager)  # a signed-in session of its own, as the login route opens
        login_user(manager)
        assert assignment.assign_round_robin(make_incident()) == b


@pytest.mark.skipif(not BACKENDS.postgres, reason="row locks: PostgreSQL")
def test_concurrent_assigners_stay_fair(data_app, ctx):
    team = make_team("Support")
    people = agents(team, 4)
    team_id = team.id
    db.session.commit()
    barrier = threading.Barrier(6)
    errors = []

    def assign_many():
        try:
            with data_app.app_context():
                barrier.wait()
                for _ in range(20):
                    incident = Incident(subject="Concurrent", team_id=team_id, status="closed")
                    db.session.add(incident)
                    db.session.flush()
                    assignment.assign_round_robin(incident)
                    db.session.commit()
                db.session.remove()
        except Exception as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=assign_many) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    db.session.expire_all()
    counts = Counter(
        db.session.scalars(select(Incident.assignee_id).where(Incident.subject == "Concurrent"))
    )
    assert sum(counts.values()) == 120
    assert set(counts) == {p.id for p in people}
    assert max(counts.values()) - min(counts.values()) <= 1
