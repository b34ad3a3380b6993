"""The benchmark, small: `flask seed-scale` stores what the app would, and `make bench`
runs end to end at 1,000 contacts (`python -m bench --smoke`, about 15 seconds)."""

import json
import os
import subprocess
import sys
from datetime import datetime
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from bench.pages import PAGES, WRITES
from crm.config import ROOT
from crm.extensions import db
from crm.models import (
    Activity,
    Company,
    Contact,
    Deal,
    DealStageHistory,
    Event,
    Incident,
    IncidentMessage,
    Intervention,
    Task,
    TechnicianBooking,
    User,
)
from crm.models.search_keys import fold
from crm.models.support import BOOKED_STATUSES
from crm.models.types import utcnow
from crm.services import business_time as bt
from crm.services import support_settings
from tests.backends import detect

SIZES = [
    "--contacts=300",
    "--companies=40",
    "--deals=60",
    "--activities=1500",
    "--users=20",
    "--agenda=500",
    "--incidents=300",
    "--interventions=150",
]


def _seed(app, *options: str):
    return app.test_cli_runner().invoke(args=["seed-scale", *SIZES, *options])


def test_seed_scale_stores_the_keys_and_histories_the_app_would(app, ctx):
    result = _seed(app)
    assert result.exit_code == 0, result.output
    assert "Seeded in" in result.output
    assert db.session.scalar(select(func.count(Contact.id))) == 300
    assert db.session.scalar(select(func.count(Activity.id))) == 1500
    assert db.session.scalar(select(func.count(Event.id))) == 300
    assert db.session.scalar(select(func.count(Task.id))) == 200

    for contact in db.session.scalars(select(Contact)):
        stored = (contact.sort_name, contact.email_key, contact.phone_key, contact.search_text)
        contact.refresh_keys()
        assert (
            contact.sort_name,
            contact.email_key,
            contact.phone_key,
            contact.search_text,
        ) == stored
        touches = [
            a.occurred_at
            for a in db.session.scalars(select(Activity).where(Activity.contact_id == contact.id))
            if a.kind != "system"
        ]
        assert contact.last_activity_at == max([contact.created_at, *touches])
    db.session.rollback()

    for company in db.session.scalars(select(Company)):
        assert company.name_key == fold(company.name)
    for deal in db.session.scalars(select(Deal)):
        history = list(
            db.session.scalars(
                select(DealStageHistory)
                .where(DealStageHistory.deal_id == deal.id)
                .order_by(DealStageHistory.changed_at, DealStageHistory.id)
            )
        )
        assert deal.title_key == fold(deal.title)
        assert history[0].from_stage_id is None and history[-1].to_stage_id == deal.stage_id
        assert deal.stage_entered_at == history[-1].changed_at
        assert (deal.closed_at is not None) == deal.stage.is_closed
        assert (deal.lost_reason is not None) == (deal.stage.kind == "lost")
        assert deal.amount == sum((line.total for line in deal.lines), Decimal("0"))


def test_seed_scale_incidents_keep_their_service_levels_and_bookings_never_overlap(app, ctx):
    assert _seed(app).exit_code == 0
    users = list(db.session.scalars(select(User)))
    assert sum(u.role == "technician" for u in users) == 3  # 16 % of 20 (8 of 50)
    assert sum(u.role == "support" for u in users) == 3
    incidents = list(db.session.scalars(select(Incident)))
    assert len(incidents) == 300
    running = [i for i in incidents if i.status in ("new", "open", "waiting")]
    assert 0.04 < len(running) / len(incidents) < 0.2
    messages = db.session.scalar(select(func.count(IncidentMessage.id)))
    assert 1.5 < messages / len(incidents) < 2.6
    calendar = support_settings.default_calendar()
    now = utcnow()
    for incident in incidents:
        policy = support_settings.DEFAULT_POLICIES[incident.priority]
        # The due times sla.start_clock would set (within the last year's holidays).
        if incident.created_at.year == now.year:
            expected = bt.add_business_minutes(
                calendar, incident.created_at, policy.resolution_minutes
            )
            assert incident.resolution_due_at == expected, incident.id
        assert incident.first_response_due_at <= incident.resolution_due_at
        assert (incident.resolved_at is not None) == (incident.status in ("resolved", "closed"))
        assert (incident.closed_at is not None) == (incident.status == "closed")
        assert (incident.paused_at is not None) == (incident.status == "waiting")
        if incident.first_responded_at is not None:
            late = incident.first_responded_at > incident.first_response_due_at
            assert incident.first_response_breached == late
            replies = [m for m in incident.messages if m.kind == "reply"]
            assert replies and replies[0].created_at == incident.first_responded_at
        if incident.resolved_at is not None:
            late = incident.resolved_at > incident.resolution_due_at
            assert incident.resolution_breached == late
        assert all(m.created_at <= now for m in incident.messages)

    interventions = list(db.session.scalars(select(Intervention)))
    assert len(interventions) == 150
    assert any(i.status == "unscheduled" for i in interventions)
    bookings = list(db.session.scalars(select(TechnicianBooking)))
    for booking in bookings:
        visit = booking.intervention
        assert (booking.starts_at, booking.ends_at) == (visit.starts_at, visit.ends_at)
        assert booking.active == (visit.status in BOOKED_STATUSES)
        assert booking.technician.role == "technician"
    by_technician = {}
    for booking in sorted(bookings, key=lambda b: b.starts_at):
        by_technician.setdefault(booking.technician_id, []).append(booking)
    for rows in by_technician.values():  # none overlaps, active or not
        assert all(a.ends_at <= b.starts_at for a, b in zip(rows, rows[1:], strict=False))


def test_seed_scale_leaves_the_ids_to_the_database_afterwards(app, ctx):
    assert _seed(app).exit_code == 0
    contact = Contact(first_name="After", last_name="Seed", email="after@example.com")
    db.session.add(contact)
    db.session.commit()
    assert contact.id == 301


def test_seed_scale_refuses_a_database_with_users(app, ctx):
    assert _seed(app).exit_code == 0
    again = _seed(app)
    assert again.exit_code != 0
    assert "empty" in again.output


def _servers_answer() -> bool:
    backends = detect()
    return backends.postgres and backends.redis_server


@pytest.mark.skipif(not _servers_answer(), reason="the benchmark needs PostgreSQL and Redis")
def test_the_benchmark_runs_end_to_end(tmp_path):
    output = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    started = datetime.now()
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--output", str(output)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    results = json.loads(output.read_text())

    assert [page["name"] for page in results["pages"]] == [page.name for page in PAGES]
    for page, measured in zip(PAGES, results["pages"], strict=True):
        assert set(measured["statuses"]) == {"200"}, measured
        assert measured["sql_queries"] > 0, "X-SQL-Queries is missing"
        if page.fragment_target:
            assert measured["fragment"]["is_fragment"], page.name
            assert measured["fragment"]["bytes"] < measured["bytes"], page.name
        if page.load:
            assert measured["load"]["requests"] > 0 and measured["load"]["errors"] == 0
    assert [write["name"] for write in results["writes"]] == [write.name for write in WRITES]
    assert all(set(write["statuses"]) == {"200"} for write in results["writes"])
    assert all(worker["rss_bytes"] > 0 for worker in results["memory"]["web_workers"])
    assert results["errors"] == 0
    assert "contact list" in run.stdout and "p95" in run.stdout
    # It cleans up after itself: its database is gone.
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres") as conn:
        query = "SELECT 1 FROM pg_database WHERE datname = %s"
        assert conn.execute(query, (results["database"],)).fetchone() is None
    assert (datetime.now() - started).total_seconds() < 120
