"""The service-level watch, run in-process against the suite's real Redis and
database: a warning then a breach, each announced once per target to the
assignee and the team's manager; breach emails through the mail queue with a
fixed Message-ID; paused and met clocks left alone; two watchers at once
announce each thing once; the cron of worker.py runs it every minute."""

import threading
from datetime import UTC, datetime
from email import message_from_bytes
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from rq import Queue
from sqlalchemy import select

from crm.extensions import db
from crm.jobs import sla as sla_jobs
from crm.models import Incident
from crm.models.agenda import Notification
from crm.queues import redis_connection
from crm.services import sla
from tests.factories import make_incident, make_team, make_user
from worker import InProcessWorker, cron_scheduler, worker_connection

PARIS = ZoneInfo("Europe/Paris")


def paris(*args) -> datetime:
    return datetime(*args, tzinfo=PARIS).astimezone(UTC)


@pytest.fixture
def people(ctx):
    team = make_team("Support")
    agent = make_user(role="support", team=team, name="Agent Smith", password=None)
    manager = make_user(role="manager", team=team, name="Maria Manager", password=None)
    make_user(role="admin", name="Admin", password=None)  # not told: the team has a manager
    make_user(role="manager", name="Other manager", team=make_team(), password=None)
    return team, agent, manager


def urgent_incident(team, agent, at=None, **fields):
    """Urgent, opened Monday 3 March 2025 10:00: reply by 11:00, resolve by 15:00."""
    incident = make_incident(
        priority="urgent",
        status="open",
        team=team,
        assignee=agent,
        created_at=at or paris(2025, 3, 3, 10, 0),
        **fields,
    )
    sla.start_clock(incident)
    db.session.commit()
    return incident


def notices(kind=None):
    query = select(Notification.user_id, Notification.kind, Notification.title).order_by(
        Notification.id
    )
    if kind:
        query = query.where(Notification.kind == kind)
    return list(db.session.execute(query))


def run_watch(app, at):
    with app.app_context():
        result = sla_jobs.watch_sla(at)
        db.session.remove()
    return result


def test_warning_then_breach_each_once_to_assignee_and_manager(app, people):
    team, agent, manager = people
    incident = urgent_incident(team, agent)

    run_watch(app, paris(2025, 3, 3, 10, 30))  # 30 min left, warning at 15
    assert notices() == []

    run_watch(app, paris(2025, 3, 3, 10, 50))
    warnings = notices("sla_warning")
    assert sorted(user for user, _k, _t in warnings) == sorted([agent.id, manager.id])
    assert all(
        t.startswith(f"First response due soon: {incident.reference}") for _u, _k, t in warnings
    )
    run_watch(app, paris(2025, 3, 3, 10, 55))
    assert len(notices()) == 2

    result = run_watch(app, paris(2025, 3, 3, 11, 1))
    breaches = notices("sla_breach")
    assert sorted(user for user, _k, _t in breaches) == sorted([agent.id, manager.id])
    assert result["emails"] == 2
    db.session.expire_all()
    incident = db.session.get(Incident, incident.id)
    assert incident.first_response_breached and not incident.resolution_breached
    assert incident.sla_notified == {"first_response": ["warning", "breach"]}

    run_watch(app, paris(2025, 3, 3, 11, 30))
    assert len(notices()) == 4

    # The resolution (due 15:00, urgent: warned 15 min before) has its own notices.
    run_watch(app, paris(2025, 3, 3, 14, 10))
    assert len(notices()) == 4
    run_watch(app, paris(2025, 3, 3, 14, 50))
    run_watch(app, paris(2025, 3, 3, 15, 5))
    run_watch(app, paris(2025, 3, 3, 15, 6))
    kinds = [(k, t.split(":")[0]) for _u, k, t in notices()[4:]]
    assert (
        kinds
        == [("sla_warning", "Resolution due soon")] * 2 + [("sla_breach", "Resolution overdue")] * 2
    )


def test_breach_emails_have_a_fixed_message_id(app, people, tmp_path):
    team, agent, manager = people
    incident = urgent_incident(team, agent)
    run_watch(app, paris(2025, 3, 3, 11, 1))
    connection = worker_connection(app)
    mail = Queue("mail", connection=connection)
    assert mail.count == 2
    InProcessWorker([mail], connection=connection, app=app).work(burst=True)
    outbox = Path(app.config["INSTANCE_PATH"]) / "outbox"
    sent = {}
    for path in outbox.glob(f"sla-{incident.id}-first_response-breach-*.eml"):
        message = message_from_bytes(path.read_bytes())
        sent[message["To"]] = message
    assert set(sent) == {agent.email, manager.email}
    message = sent[agent.email]
    assert message["Message-ID"].startswith(f"<sla-{incident.id}-first_response-breach-{agent.id}@")
    assert message["Subject"].startswith("First response overdue")
    assert f"/incidents/{incident.id}" in message.get_payload(decode=True).decode()
    # Enqueued again (a second watcher), it is the same job: not sent twice.
    sla_jobs.enqueue_breach_email(incident.id, "first_response", agent.id)
    assert Queue("mail", connection=redis_connection()).count <= 1


def test_paused_resolved_and_answered_clocks_are_left_alone(app, people):
    team, agent, _manager = people
    waiting = urgent_incident(team, agent)
    waiting.status = "waiting"
    sla.status_changed(waiting, "open", paris(2025, 3, 3, 10, 30))
    answered = urgent_incident(team, agent)
    sla.first_response(answered, paris(2025, 3, 3, 10, 20))
    resolved = urgent_incident(team, agent)
    resolved.status = "resolved"
    sla.status_changed(resolved, "open", paris(2025, 3, 3, 10, 40))
    db.session.commit()
    run_watch(app, paris(2025, 3, 3, 11, 30))
    assert notices() == []  # answered: resolution due 15:00 is far; others stopped


def test_admins_hear_of_it_when_the_team_has_no_manager(app, ctx):
    agent = make_user(role="support", password=None)
    admin = make_user(role="admin", password=None)
    make_user(role="admin", password=None, active=False)
    urgent_incident(None, agent)
    run_watch(app, paris(2025, 3, 3, 11, 1))
    assert sorted(u for u, _k, _t in notices("sla_breach")) == sorted([agent.id, admin.id])


def test_a_weekend_does_not_hide_monday_mornings_due_time(app, people):
    team, agent, manager = people
    # Opened Friday 17:50: reply due Monday 09:50 (one business hour later).
    urgent_incident(team, agent, at=paris(2025, 3, 7, 17, 50))
    run_watch(app, paris(2025, 3, 8, 12, 0))  # Saturday: 60 business min left, window 15
    assert notices() == []
    run_watch(app, paris(2025, 3, 10, 9, 40))
    assert len(notices("sla_warning")) == 2


def test_two_watchers_at_once_announce_each_thing_once(app, data_app, people):
    team, agent, manager = people
    for _ in range(6):
        urgent_incident(team, agent)
    at = paris(2025, 3, 3, 11, 1)
    barrier = threading.Barrier(2)
    errors = []

    def watch():
        try:
            with data_app.app_context():
                barrier.wait()
                sla_jobs.watch_sla(at)
                db.session.remove()
        except Exception as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=watch) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    # Six incidents, two people each, one breach notice each (no warning after the fact).
    assert len(notices("sla_breach")) == 12
    assert notices("sla_warning") == []
    assert Queue("mail", connection=redis_connection()).count == 12


def test_the_cron_runs_the_watch_every_minute(app):
    cron = cron_scheduler(app, worker_connection(app))
    jobs = {job.func_name: job for job in cron.get_jobs()}
    watch = jobs["crm.jobs.sla.watch_sla"]
    assert watch.queue_name == "default"
    assert watch.interval == 60
