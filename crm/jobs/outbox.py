"""Email out: the send job of one message, and the sweeper that repairs what was lost.

The rows are the truth (DESIGN.md §6): a job is only a hint to look at a row, and
crm/services/outbox.deliver() claims the row with a compare-and-set before sending, so
a message enqueued twice, or picked by two workers, goes out once. The sweeper
re-enqueues queued messages whose next try is due (retries after a temporary refusal,
jobs lost with a flushed Redis) and messages left "sending" by a worker that died.
A sent message is never claimed again, so never sent twice.
"""

import contextlib
import logging

from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from crm.extensions import db
from crm.queues import redis_connection
from crm.services import outbox

log = logging.getLogger(__name__)

_WAITING = {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED, JobStatus.CREATED}


def job_id(message_id: int) -> str:
    return f"email-out-{message_id}"


def enqueue_send(message_id: int, connection=None) -> Job | None:
    """Queue the send of one message on "mail", unless a job for it is already waiting."""
    connection = connection or redis_connection()
    try:
        job = Job.fetch(job_id(message_id), connection=connection)
        if job.get_status(refresh=True) in _WAITING:
            return None
        job.delete()
    except NoSuchJobError:
        pass
    return Queue("mail", connection=connection).enqueue(
        send_email,
        message_id,
        job_id=job_id(message_id),
        result_ttl=600,
        failure_ttl=24 * 3600,
    )


def send_email(message_id: int) -> str:
    """The job: send one outgoing message if it is still due (idempotent)."""
    return outbox.deliver(message_id)


def sweep_outbox() -> int:
    """Enqueue the due queued messages and those a dead worker left sending; return how many."""
    due = outbox.due_messages()
    db.session.commit()
    connection = redis_connection()
    count = 0
    for message_id, status in due:
        if status == "sending":
            log.warning("Email %s was abandoned while sending: sent again", message_id)
            with contextlib.suppress(NoSuchJobError):
                Job.fetch(job_id(message_id), connection=connection).delete()
        if enqueue_send(message_id, connection) is not None:
            count += 1
    return count
