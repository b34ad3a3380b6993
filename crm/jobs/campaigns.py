"""Campaign sends in the worker: one run a minute per campaign, and a sweeper for lost chains.

run_campaign() sends one batch (crm.services.campaigns.send_batch: at most the campaign's
rate per minute, each recipient claimed pending -> queued) and, while anyone is pending,
schedules the next run RATE_WINDOW later with RQ's scheduler (enqueue_in). The id of the
job that carries the chain on is kept in Redis under chain_key(): a run that is not the
chain's (a second one started by the sweeper) does not schedule a second chain.

sweep_campaigns() (every minute, crm/jobs/schedule.py) copies deliveries and opens onto
the recipient rows and restarts the chain of a campaign still sending whose next run is
gone (Redis flushed, worker killed). It can only ever send the rows still pending: nobody
is mailed twice, whatever Redis forgot.
"""

import logging
import uuid
from datetime import timedelta

from rq import Queue, get_current_job
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from crm.extensions import db
from crm.models.types import utcnow
from crm.queues import redis_connection
from crm.services import campaigns

log = logging.getLogger(__name__)

QUEUE = "mail"
_WAITING = {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED, JobStatus.CREATED}
# A run longer than this is a run whose worker died.
_STARTED_FOR_TOO_LONG = timedelta(minutes=5)
_JOB_TIMEOUT = 240


def chain_key(campaign_id: int) -> str:
    return f"crm:campaign-chain:{campaign_id}"


def _new_job_id(campaign_id: int) -> str:
    return f"campaign-{campaign_id}-{uuid.uuid4().hex[:12]}"


def _alive(connection, job_id: str | None) -> bool:
    """Whether that job will still run, or is running in a live worker."""
    if not job_id:
        return False
    try:
        job = Job.fetch(job_id, connection=connection)
        status = job.get_status(refresh=True)
    except NoSuchJobError:
        return False
    if status in _WAITING:
        return True
    if status == JobStatus.STARTED:
        started = job.started_at
        if started is None:
            return True
        if started.tzinfo is None:
            from datetime import UTC

            started = started.replace(tzinfo=UTC)
        return utcnow() - started < _STARTED_FOR_TOO_LONG
    return False


def _current_chain(connection, campaign_id: int) -> str | None:
    value = connection.get(chain_key(campaign_id))
    return value.decode() if isinstance(value, bytes) else value


def _enqueue(connection, campaign_id: int, delay: timedelta | None) -> Job:
    queue = Queue(QUEUE, connection=connection)
    options = {
        "job_id": _new_job_id(campaign_id),
        "job_timeout": _JOB_TIMEOUT,
        "result_ttl": 600,
        "failure_ttl": 24 * 3600,
    }
    if delay is None:
        job = queue.enqueue(run_campaign, campaign_id, **options)
    else:
        job = queue.enqueue_in(delay, run_campaign, campaign_id, **options)
    connection.set(chain_key(campaign_id), job.id, ex=24 * 3600)
    return job


def ensure_chain(campaign_id: int, connection=None) -> Job | None:
    """Start the campaign's runs unless a live chain has them in hand; the new job or None."""
    connection = connection or redis_connection()
    if _alive(connection, _current_chain(connection, campaign_id)):
        return None
    return _enqueue(connection, campaign_id, None)


def run_campaign(campaign_id: int) -> str:
    """The job: send one batch; schedule the next while someone is pending."""
    result = campaigns.send_batch(campaign_id)
    if result.more:
        connection = redis_connection()
        current = get_current_job()
        chain = _current_chain(connection, campaign_id)
        mine = current is not None and chain == current.id
        if mine or not _alive(connection, chain):
            _enqueue(connection, campaign_id, campaigns.RATE_WINDOW)
    return (
        f"{result.status}: {result.queued} queued, {result.skipped} skipped, {result.pending} left"
    )


def sweep_campaigns() -> int:
    """Bring recipients up to date and restart lost chains; returns how many restarted."""
    watched = campaigns.campaigns_to_watch()
    restarted = 0
    connection = redis_connection()
    for campaign_id, status in watched:
        campaigns.sync_recipients(campaign_id)
        db.session.commit()
        if status == "sending" and ensure_chain(campaign_id, connection) is not None:
            log.warning("Campaign %s had no run planned: restarted", campaign_id)
            restarted += 1
    return restarted
