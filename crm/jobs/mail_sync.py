"""Email in: sync each mailbox over IMAP (crm/services/mail_sync.py does the work).

sync_all_mailboxes() runs every MAIL_SYNC_SECONDS (crm/jobs/schedule.py) and enqueues
one sync_mailbox_job per active mailbox with an IMAP host, under the job id
"mail-sync-<id>": while that job waits, enqueueing it again adds nothing. The "Sync now"
button calls request_sync(). Nothing here trusts Redis: the job only says "look at
this mailbox"; the claim on the mailbox row keeps two syncs of one mailbox apart, and
the watermark in the database says where to start.
"""

from flask import current_app
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from sqlalchemy import select

from crm.extensions import db
from crm.models import Mailbox
from crm.queues import redis_connection
from crm.services.mail_sync import sync_mailbox

QUEUE = "mail"
# A job in one of these states will still run: another would only sync twice in a row.
_WAITING = {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED, JobStatus.CREATED}


def job_id(mailbox_id: int) -> str:
    return f"mail-sync-{mailbox_id}"


def _pending_job(connection, mailbox_id: int) -> Job | None:
    """The mailbox's job if it is waiting or running; a finished or failed one is removed."""
    try:
        job = Job.fetch(job_id(mailbox_id), connection=connection)
    except NoSuchJobError:
        return None
    status = job.get_status(refresh=True)
    if status in _WAITING or status == JobStatus.STARTED:
        return job
    job.delete()
    return None


def enqueue_sync(mailbox_id: int, connection=None) -> Job:
    """The sync job of this mailbox: the one waiting or running, else a new one. (A sync
    that is running will be followed by the next periodic one for mail that came since.)"""
    connection = connection or redis_connection()
    pending = _pending_job(connection, mailbox_id)
    if pending is not None:
        return pending
    claim_seconds = int(current_app.config.get("MAIL_SYNC_CLAIM_SECONDS", 600))
    return Queue(QUEUE, connection=connection).enqueue(
        sync_mailbox_job,
        mailbox_id,
        job_id=job_id(mailbox_id),
        # RQ stops the job before its claim on the mailbox counts as abandoned.
        job_timeout=max(30, claim_seconds - 30),
        result_ttl=600,
        failure_ttl=24 * 3600,
    )


def request_sync(mailbox: Mailbox) -> Job:
    """The "Sync now" button: the mailbox's sync, queued at once (or the pending one)."""
    return enqueue_sync(mailbox.id)


def sync_all_mailboxes() -> int:
    """Enqueue a sync of every active mailbox with an IMAP host; return how many."""
    ids = list(
        db.session.scalars(
            select(Mailbox.id)
            .where(Mailbox.active.is_(True), Mailbox.imap_host.isnot(None), Mailbox.imap_host != "")
            .order_by(Mailbox.id)
        )
    )
    db.session.commit()
    connection = redis_connection()
    for mailbox_id in ids:
        enqueue_sync(mailbox_id, connection)
    return len(ids)


def sync_mailbox_job(mailbox_id: int) -> dict:
    """Sync one mailbox (the job); returns what happened, for the job's result."""
    return sync_mailbox(mailbox_id).as_dict()
