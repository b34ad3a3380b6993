"""Reminders delivered once in effect, against the suite's real Redis, real worker
processes (`python worker.py`, as in production) and a real SMTP server (aiosmtpd).

- two workers at once, every job enqueued twice: one notification and one email
  per reminder;
- a worker killed with SIGKILL while the SMTP server holds its DATA command: the
  sweeper finds the row abandoned in "sending", a new worker delivers it; the
  email sent again carries the same Message-ID, the notification is not doubled;
- Redis flushed with reminders enqueued: the sweeper enqueues them again from
  the rows, a worker delivers each once.

Events are awaited by polling the database against a deadline, never by sleeping
a fixed time. The figures are printed (run with -s to see them).
"""

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from email import message_from_bytes
from pathlib import Path

import pytest
from rq import Queue
from rq.job import Job, JobStatus
from rq.registry import ScheduledJobRegistry, StartedJobRegistry
from sqlalchemy import func, select, update

from crm.extensions import db
from crm.jobs import reminders as reminder_jobs
from crm.mail import MailError, send_message
from crm.models import Event
from crm.models.agenda import Notification, Reminder
from crm.queues import redis_connection
from crm.services import reminders
from tests.conftest import BACKENDS
from tests.factories import make_event, make_user
from tests.smtp_server import Recorder, free_port, smtp_server

ROOT = Path(__file__).resolve().parents[2]
DEADLINE_SECONDS = 60


class Workers:
    """`python worker.py` processes with the test's database, Redis and SMTP server."""

    def __init__(self, tmp_path: Path, smtp_port: int, claim_timeout: int = 300):
        self.env = dict(
            os.environ,
            SMTP_HOST="127.0.0.1",
            SMTP_PORT=str(smtp_port),
            SMTP_STARTTLS="0",
            REMINDER_CLAIM_TIMEOUT_SECONDS=str(claim_timeout),
            PYTHONUNBUFFERED="1",
        )
        self.tmp_path = tmp_path
        self.processes = []

    def start(self) -> subprocess.Popen:
        log = open(self.tmp_path / f"worker-{len(self.processes)}.log", "wb")  # noqa: SIM115
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "worker.py")],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the worker and its work horse
        )
        self.processes.append(process)
        return process

    @staticmethod
    def kill(process, signum=signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signum)

    def stop_all(self) -> None:
        for process in self.processes:
            self.kill(process, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill(process)
                process.wait(5)

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.tmp_path.glob("worker-*.log"))


@pytest.fixture
def workers_for(tmp_path):
    started = []

    def _make(smtp_port: int, claim_timeout: int = 300) -> Workers:
        workers = Workers(tmp_path, smtp_port, claim_timeout)
        started.append(workers)
        return workers

    yield _make
    for workers in started:
        workers.stop_all()


def wait_until(condition, what: str, workers: Workers | None = None, timeout=DEADLINE_SECONDS):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db.session.rollback()  # a fresh snapshot of the rows each time
        if condition():
            return
        time.sleep(0.05)
    logs = workers.logs()[-4000:] if workers else ""
    pytest.fail(f"timed out waiting for {what}: {status_counts()}\n{logs}")


def status_counts() -> Counter:
    return Counter(
        dict(
            db.session.execute(
                select(Reminder.status, func.count()).group_by(Reminder.status)
            ).all()
        )
    )


def queues_idle() -> bool:
    connection = redis_connection()
    for name in ("default", "mail"):
        if (
            Queue(name, connection=connection).count
            or StartedJobRegistry(name, connection=connection).count
        ):
            return False
    return True


def due_reminders(events: int, users_per_event: int) -> list[Reminder]:
    """Events starting in 10 minutes: their 15-minute reminders are due now."""
    start = reminders.now().replace(microsecond=0) + timedelta(minutes=10)
    for n in range(events):
        people = [make_user(email_reminders=True) for _ in range(users_per_event)]
        event = make_event(people[0], start + timedelta(seconds=n), attendees=people[1:])
        reminders.schedule_event(event)
    db.session.commit()
    return list(db.session.scalars(select(Reminder)))


def expected_message_ids(rows) -> set[str]:
    return {f"<reminder-{r.id}@localhost>" for r in rows if r.channel == "email"}


def assert_delivered_once(rows, recorder: Recorder):
    in_app = {r.id for r in rows if r.channel == "in_app"}
    notified = Counter(db.session.scalars(select(Notification.reminder_id)))
    assert set(notified) == in_app
    assert set(notified.values()) == {1}
    assert set(recorder.message_ids()) == expected_message_ids(rows)
    assert status_counts() == Counter({"sent": len(rows)})


def test_two_workers_at_once_deliver_each_reminder_once(ctx, workers_for):
    rows = due_reminders(events=10, users_per_event=2)  # 20 people: 20 notifications, 20 emails
    recorder = Recorder()
    with smtp_server(recorder) as port:
        workers = workers_for(port)
        started = time.monotonic()
        reminder_jobs.sweep_reminders()
        # A second job for every row, as a second sweeper racing the first would make:
        # both workers then hold jobs for the same rows at the same time.
        connection = redis_connection()
        for row in rows:
            Queue(reminder_jobs.queue_for(row.channel), connection=connection).enqueue(
                reminder_jobs.deliver_reminder, row.id, job_id=f"second-{row.id}"
            )
        first, second = workers.start(), workers.start()
        wait_until(lambda: status_counts() == Counter({"sent": len(rows)}), "all sent", workers)
        delivered = time.monotonic() - started
        wait_until(queues_idle, "the duplicate jobs to run", workers)
        assert first.poll() is None and second.poll() is None

        assert len(rows) == 40 and len(recorder.messages) == 20
        assert_delivered_once(rows, recorder)
        claims = Counter(db.session.scalars(select(Reminder.attempts)))
        assert claims == Counter({1: len(rows)})  # the second job of each row found it taken
    print(
        f"\n[two workers] {len(rows)} reminders ({len(rows) * 2} jobs) delivered in {delivered:.2f} s"
    )


def test_worker_killed_mid_send_then_swept_and_delivered_once(
    ctx, data_app, workers_for, monkeypatch
):
    claim_timeout = 3
    monkeypatch.setitem(data_app.config, "REMINDER_CLAIM_TIMEOUT_SECONDS", claim_timeout)
    rows = due_reminders(events=1, users_per_event=1)  # one notification, one email
    email = next(r for r in rows if r.channel == "email")
    recorder = Recorder(hold_first=True)
    with smtp_server(recorder) as port:
        workers = workers_for(port, claim_timeout=claim_timeout)
        victim = workers.start()
        reminder_jobs.sweep_reminders()
        assert recorder.arrived.wait(DEADLINE_SECONDS), workers.logs()
        db.session.rollback()
        assert db.session.get(Reminder, email.id).status == "sending"

        workers.kill(victim)  # SIGKILL to the worker and its work horse, mid-DATA
        victim.wait(10)
        killed_at = time.monotonic()
        # Until the claim is stale the sweeper must leave the row alone (its worker may be alive).
        assert reminder_jobs.sweep_reminders()["repaired"] == 0
        wait_until(lambda: reminder_jobs.sweep_reminders()["repaired"] == 1, "the sweeper's repair")
        repaired = time.monotonic() - killed_at
        workers.start()
        wait_until(lambda: status_counts() == Counter({"sent": 2}), "the resend", workers)
        recovered = time.monotonic() - killed_at
        wait_until(queues_idle, "the queues to empty", workers)

        ids = recorder.message_ids()
        assert len(ids) == 2  # the one cut off by the kill, and the resend
        assert set(ids) == {f"<reminder-{email.id}@localhost>"}  # one message to mail clients
        assert_delivered_once(rows, recorder)
        db.session.refresh(email)
        assert email.attempts == 2
    print(
        f"\n[kill -9] claim timeout {claim_timeout} s: repaired {repaired:.2f} s after the kill, "
        f"sent {recovered:.2f} s after it"
    )


def test_redis_flushed_with_reminders_enqueued_then_swept_and_delivered_once(ctx, workers_for):
    rows = due_reminders(events=5, users_per_event=2)
    recorder = Recorder()
    with smtp_server(recorder) as port:
        workers = workers_for(port)
        assert reminder_jobs.sweep_reminders()["enqueued"] == len(rows)
        connection = redis_connection()
        assert Queue("default", connection=connection).count == len(rows) // 2
        if BACKENDS.redis_server:
            # FLUSHALL on this shared server would also wipe other test runs' databases:
            # the app uses one database only, so flushing it is the same loss for it.
            connection.flushdb()
        else:
            connection.flushall()
        assert Queue("default", connection=connection).count == 0

        started = time.monotonic()
        assert reminder_jobs.sweep_reminders()["enqueued"] == len(rows)
        workers.start()
        wait_until(lambda: status_counts() == Counter({"sent": len(rows)}), "all sent", workers)
        delivered = time.monotonic() - started
        wait_until(queues_idle, "the queues to empty", workers)
        assert reminder_jobs.sweep_reminders() == {
            "series": 0,
            "enqueued": 0,
            "repaired": 0,
            "scheduled": 0,
        }
        assert_delivered_once(rows, recorder)
    print(f"\n[flush] {len(rows)} reminders re-enqueued and delivered in {delivered:.2f} s")


# ---- one delivery, in process: failures and the mail drop -----------------------------------


def _deliver_in_app_context(data_app, reminder_id):
    with data_app.app_context():
        try:
            return reminder_jobs.deliver_reminder(reminder_id)
        finally:
            db.session.remove()


def test_in_app_delivery_is_idempotent_even_after_a_crash_between_insert_and_mark(ctx, data_app):
    user = make_user(email_reminders=False)
    make_event(user, reminders.now() + timedelta(minutes=5))
    reminders.schedule_event(db.session.scalars(select(Event)).one())
    db.session.commit()
    row = db.session.scalars(select(Reminder)).one()

    assert _deliver_in_app_context(data_app, row.id) == "notified"
    assert _deliver_in_app_context(data_app, row.id) == "not claimed"
    # A worker that died after its notification but before marking the row sent.
    db.session.rollback()
    db.session.execute(
        update(Reminder)
        .where(Reminder.id == row.id)
        .values(status="sending", claimed_at=reminders.now() - timedelta(hours=1))
    )
    db.session.commit()
    assert _deliver_in_app_context(data_app, row.id) == "notified"
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Notification)) == 1
    notification = db.session.scalars(select(Notification)).one()
    assert notification.user_id == user.id and notification.url.startswith("/agenda")
    assert db.session.get(Reminder, row.id).status == "sent"


def test_cancelled_event_is_not_delivered(ctx, data_app):
    user = make_user(email_reminders=False)
    event = make_event(user, reminders.now() + timedelta(minutes=5))
    reminders.schedule_event(event)
    db.session.commit()
    row = db.session.scalars(select(Reminder)).one()
    reminders.claim(row.id)  # a worker has it in hand when the event is cancelled
    event.status = "cancelled"
    db.session.commit()
    db.session.execute(
        update(Reminder)
        .where(Reminder.id == row.id)
        .values(claimed_at=reminders.now() - timedelta(hours=1))
    )
    db.session.commit()
    assert _deliver_in_app_context(data_app, row.id) == "cancelled: event cancelled"
    assert db.session.scalar(select(func.count()).select_from(Notification)) == 0


@pytest.mark.parametrize(
    ("reply", "status", "raises"),
    [("451 4.3.0 Try again later", "pending", True), ("550 5.7.1 No such user", "failed", False)],
    ids=["temporary", "permanent"],
)
def test_smtp_refusals_retry_or_fail(ctx, data_app, monkeypatch, reply, status, raises):
    user = make_user(email_reminders=True)
    make_event(user, reminders.now() + timedelta(minutes=5))
    reminders.schedule_event(db.session.scalars(select(Event)).one())
    db.session.commit()
    row = db.session.scalars(select(Reminder).where(Reminder.channel == "email")).one()
    recorder = Recorder(replies=[reply])
    with smtp_server(recorder) as port:
        monkeypatch.setitem(data_app.config, "SMTP_HOST", "127.0.0.1")
        monkeypatch.setitem(data_app.config, "SMTP_PORT", port)
        monkeypatch.setitem(data_app.config, "SMTP_STARTTLS", False)
        if raises:
            with pytest.raises(reminder_jobs.TemporaryDeliveryError):
                _deliver_in_app_context(data_app, row.id)
        else:
            assert _deliver_in_app_context(data_app, row.id).startswith("failed: 550")
        db.session.rollback()
        stored = db.session.get(Reminder, row.id)
        assert (stored.status, stored.attempts) == (status, 1)
        assert stored.last_error.startswith(reply[:3])
        if raises:  # the retry goes through
            assert _deliver_in_app_context(data_app, row.id) == "emailed"
            assert recorder.message_ids() == [f"<reminder-{row.id}@localhost>"]


def test_mail_drop_without_smtp_host(ctx, data_app, monkeypatch, tmp_path):
    monkeypatch.setitem(data_app.config, "SMTP_HOST", None)
    monkeypatch.setitem(data_app.config, "INSTANCE_PATH", str(tmp_path))
    sent_id = send_message("ann@example.com", "Hello", "Body", message_id="<x-1@localhost>")
    again = send_message("ann@example.com", "Hello", "Body", message_id="<x-1@localhost>")
    files = list((tmp_path / "outbox").glob("*.eml"))
    assert sent_id == again == "<x-1@localhost>"
    assert len(files) == 1  # a resend overwrites its file
    message = message_from_bytes(files[0].read_bytes())
    assert (message["To"], message["Subject"], message["Message-ID"]) == (
        "ann@example.com",
        "Hello",
        "<x-1@localhost>",
    )


def test_smtp_unreachable_is_temporary(ctx, data_app, monkeypatch):
    monkeypatch.setitem(data_app.config, "SMTP_HOST", "127.0.0.1")
    monkeypatch.setitem(data_app.config, "SMTP_PORT", free_port())  # nobody listens
    monkeypatch.setitem(data_app.config, "SMTP_STARTTLS", False)
    with pytest.raises(MailError) as raised:
        send_message("ann@example.com", "Hello", "Body")
    assert raised.value.temporary


# ---- on time: the sweeper hands what falls due before its next run to RQ's scheduler ----


def test_a_reminder_due_before_the_next_sweep_is_delivered_at_its_own_time(ctx, workers_for):
    user = make_user(email_reminders=False)
    start = reminders.now().replace(microsecond=0) + timedelta(minutes=15, seconds=3)
    reminders.schedule_event(make_event(user, start))
    db.session.commit()
    row = db.session.scalars(select(Reminder)).one()  # in-app only: due in 3 seconds

    summary = reminder_jobs.sweep_reminders()
    assert (summary["enqueued"], summary["scheduled"]) == (0, 1)
    job = Job.fetch(reminder_jobs.job_id(row.id), connection=redis_connection())
    assert job.get_status() == JobStatus.SCHEDULED
    scheduled_at = ScheduledJobRegistry(
        "default", connection=redis_connection()
    ).get_scheduled_time(job)
    assert scheduled_at == row.remind_at.replace(microsecond=0)
    assert reminder_jobs.sweep_reminders()["scheduled"] == 0  # already waiting in Redis

    workers = workers_for(free_port())
    workers.start()  # RQ's scheduler runs in the worker and moves the job on time
    wait_until(lambda: status_counts() == Counter({"sent": 1}), "the reminder sent", workers)
    db.session.refresh(row)
    assert row.remind_at <= row.sent_at < row.remind_at + timedelta(seconds=5)
    assert db.session.scalar(select(func.count()).select_from(Notification)) == 1
