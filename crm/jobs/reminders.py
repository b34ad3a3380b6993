"""Reminder jobs: the sweeper, every minute, and one delivery job per reminder row.

sweep_reminders() (enqueued by the cron process of worker.py) is the repair
loop of DESIGN.md §6. It
1. plans the series again, so their horizon moves forward;
2. enqueues a delivery job for every due pending row, under the job id
   "reminder-<id>", unless that job is already waiting in Redis, and schedules
   the rows falling due before the next sweep at their own time;
3. re-enqueues what was lost: rows left in "sending" by a worker that died
   (kill -9) longer than REMINDER_CLAIM_TIMEOUT_SECONDS, and due rows whose job
   is gone (Redis flushed) or dead.
Nothing here trusts Redis: a job is only a hint to look at a row, and
deliver_reminder() claims the row with a compare-and-set before doing anything,
so a row enqueued twice, or picked by two workers at once, is delivered once.
"""

import contextlib
import logging
from datetime import datetime, timedelta
from functools import partial

from flask import current_app
from rq import Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from crm.extensions import db
from crm.mail import MailError, message_id, send_message
from crm.models.agenda import Reminder
from crm.queues import redis_connection
from crm.services import notifications, reminders

log = logging.getLogger(__name__)

# A job in one of these states will still run: enqueueing it again would only add noise.
_WAITING = {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED, JobStatus.CREATED}


class TemporaryDeliveryError(Exception):
    """Raised to have RQ retry the job after its Retry interval."""


def job_id(reminder_id: int) -> str:
    return f"reminder-{reminder_id}"


def queue_for(channel: str) -> str:
    return "mail" if channel == "email" else "default"


def _delivery_timeout() -> int:
    # Shorter than the claim timeout, so that a row still "sending" after it is abandoned.
    return max(2, int(current_app.config["REMINDER_CLAIM_TIMEOUT_SECONDS"] * 0.8))


def enqueue_delivery(
    reminder_id: int, channel: str, connection=None, at: datetime | None = None
) -> Job:
    """Queue the delivery now, or at `at` through RQ's scheduler (same job id either way)."""
    connection = connection or redis_connection()
    queue = Queue(queue_for(channel), connection=connection)
    enqueue = queue.enqueue if at is None else partial(queue.enqueue_at, at)
    return enqueue(
        deliver_reminder,
        reminder_id,
        job_id=job_id(reminder_id),
        job_timeout=_delivery_timeout(),
        retry=Retry(max=len(reminders.RETRY_INTERVALS), interval=list(reminders.RETRY_INTERVALS)),
        result_ttl=600,
        failure_ttl=24 * 3600,
    )


def _job_will_run(connection, reminder_id: int, row_status: str, at: datetime) -> bool:
    """Whether Redis holds a job for this row that will still run."""
    try:
        job = Job.fetch(job_id(reminder_id), connection=connection)
        status = job.get_status(refresh=True)
    except NoSuchJobError:
        return False
    if status in _WAITING:
        return True
    if status == JobStatus.STARTED and row_status == "pending":
        # Picked up but not claimed yet, unless its worker died before claiming.
        started = job.started_at
        if started is not None and started.tzinfo is None:
            started = started.replace(tzinfo=at.tzinfo)
        return started is not None and at - started < reminders.claim_timeout()
    return False


def sweep_reminders() -> dict:
    """Plan the series' horizon, enqueue the due reminders, repair lost ones."""
    at = reminders.now()
    series = reminders.series_to_plan(at)
    for event in series:
        reminders.schedule_event(event, at)
    db.session.commit()

    connection = redis_connection()
    enqueued = repaired = scheduled = 0
    for reminder_id, channel, status in reminders.due_reminders(at):
        if _job_will_run(connection, reminder_id, status, at):
            continue
        with contextlib.suppress(NoSuchJobError):
            Job.fetch(job_id(reminder_id), connection=connection).delete()
        enqueue_delivery(reminder_id, channel, connection)
        if status == "sending":
            repaired += 1
            log.warning("Reminder %s was abandoned while sending: enqueued again", reminder_id)
        else:
            enqueued += 1
    # What falls due before the next sweep is handed to RQ's scheduler for its exact
    # time, so a reminder is on time rather than up to a sweep period late. The row
    # stays the truth: a job that runs for a row moved meanwhile claims nothing, and
    # the sweep after the row's new time enqueues it again.
    next_sweep = at + timedelta(seconds=current_app.config["REMINDER_SWEEP_SECONDS"])
    for reminder_id, channel, remind_at in reminders.upcoming_reminders(at, next_sweep):
        if not _job_will_run(connection, reminder_id, "pending", at):
            enqueue_delivery(reminder_id, channel, connection, at=remind_at)
            scheduled += 1
    return {
        "series": len(series),
        "enqueued": enqueued,
        "repaired": repaired,
        "scheduled": scheduled,
    }


def deliver_reminder(reminder_id: int) -> str:
    """Deliver one reminder once; returns what happened (for the job's result)."""
    if not reminders.claim(reminder_id):
        return "not claimed"  # delivered, cancelled, not due, or another worker has it
    reminder = db.session.get(Reminder, reminder_id)
    reason = reminders.still_relevant(reminder)
    if reason:
        reminders.mark_cancelled(reminder_id, reason)
        db.session.commit()
        return f"cancelled: {reason}"
    base_url = current_app.config["BASE_URL"]
    # url_for needs a request: one on the public address, for the links we write.
    with current_app.test_request_context("/", base_url=base_url):
        text = notifications.reminder_text(reminder)
        if reminder.channel == "in_app":
            notifications.notify_reminder(reminder, text)
            reminders.mark_sent(reminder_id)
            db.session.commit()
            return "notified"
        return _send_email(reminder, text)


def _send_email(reminder: Reminder, text) -> str:
    subject, body = notifications.reminder_email(reminder, text)
    reminder_id, to = reminder.id, reminder.user.email
    # No transaction stays open (and no row locked) while SMTP takes its time.
    db.session.commit()
    try:
        send_message(to, subject, body, message_id=message_id("reminder", reminder_id))
    except MailError as error:
        retry = reminders.mark_failure(reminder_id, str(error), error.temporary)
        db.session.commit()
        if retry:
            raise TemporaryDeliveryError(str(error)) from error
        return f"failed: {error}"
    reminders.mark_sent(reminder_id)
    db.session.commit()
    return "emailed"
