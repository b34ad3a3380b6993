"""The state of the background work, read from Redis for the System page: workers,
queues, failed jobs (retry, delete) and the periodic jobs of crm/jobs/schedule.py."""

from dataclasses import dataclass
from datetime import UTC, datetime

from flask import current_app
from rq import Queue, Worker
from rq.cron import CronScheduler
from rq.cron_job_registry import get_registry_key as cron_jobs_key
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job
from rq.registry import (
    DeferredJobRegistry,
    FailedJobRegistry,
    ScheduledJobRegistry,
    StartedJobRegistry,
)

from crm.queues import QUEUE_NAMES, queue, redis_connection

FAILED_SHOWN = 50


@dataclass
class QueueCounts:
    name: str
    waiting: int
    started: int
    scheduled: int
    deferred: int
    failed: int


@dataclass
class WorkerState:
    name: str
    state: str
    queues: list[str]
    current_job: str | None
    last_heartbeat: datetime | None


@dataclass
class FailedJob:
    id: str
    queue: str
    function: str
    error: str
    ended_at: datetime | None


@dataclass
class PeriodicJobState:
    function: str
    queue: str
    every: int
    last_enqueued: datetime | None


def queue_counts() -> list[QueueCounts]:
    counts = []
    for name in QUEUE_NAMES:
        q = queue(name)
        counts.append(
            QueueCounts(
                name=name,
                waiting=q.count,
                started=StartedJobRegistry(queue=q).count,
                scheduled=ScheduledJobRegistry(queue=q).count,
                deferred=DeferredJobRegistry(queue=q).count,
                failed=FailedJobRegistry(queue=q).count,
            )
        )
    return counts


def workers() -> list[WorkerState]:
    found = []
    for worker in Worker.all(connection=redis_connection()):
        job_id = worker.get_current_job_id()
        current = None
        if job_id:
            job = Job.fetch_many([job_id], connection=worker.connection)[0]
            current = job.func_name if job else job_id
        found.append(
            WorkerState(
                name=worker.name,
                state=str(worker.get_state()),
                queues=worker.queue_names(),
                current_job=current,
                last_heartbeat=_aware(worker.last_heartbeat),
            )
        )
    return sorted(found, key=lambda w: w.name)


def failed_jobs(limit: int = FAILED_SHOWN) -> list[FailedJob]:
    """The most recent failures of every queue, newest first, with the error's last line."""
    connection = redis_connection()
    found = []
    for name in QUEUE_NAMES:
        registry = FailedJobRegistry(queue=queue(name))
        ids = registry.get_job_ids(0, limit - 1, desc=True)
        for job in Job.fetch_many(ids, connection=connection):
            if job is None:
                continue
            result = job.latest_result()
            error = result.exc_string if result is not None and result.exc_string else ""
            found.append(
                FailedJob(
                    id=job.id,
                    queue=name,
                    function=job.func_name or "?",
                    error=last_line(error),
                    ended_at=_aware(job.ended_at),
                )
            )
    found.sort(key=lambda j: j.ended_at or datetime.min.replace(tzinfo=UTC), reverse=True)
    return found[:limit]


def last_line(traceback: str) -> str:
    """The line of a traceback that says what went wrong ("ValueError: ...")."""
    lines = [line.strip() for line in traceback.strip().splitlines() if line.strip()]
    return lines[-1][:500] if lines else ""


def _failed_registry_of(job_id: str) -> tuple[FailedJobRegistry, Job] | None:
    connection = redis_connection()
    try:
        job = Job.fetch(job_id, connection=connection)
    except NoSuchJobError:
        return None
    if job.origin not in QUEUE_NAMES:
        return None
    registry = FailedJobRegistry(queue=Queue(job.origin, connection=connection))
    if connection.zscore(registry.key, job.id) is None:
        return None
    return registry, job


def retry(job_id: str) -> bool:
    """Put a failed job back on its queue (RQ's FailedJobRegistry.requeue); False if it
    is no longer a failed job (retried or deleted meanwhile)."""
    found = _failed_registry_of(job_id)
    if found is None:
        return False
    registry, job = found
    try:
        registry.requeue(job)
    except InvalidJobOperation:
        return False
    return True


def delete(job_id: str) -> bool:
    found = _failed_registry_of(job_id)
    if found is None:
        return False
    registry, job = found
    registry.remove(job, delete_job=True)
    return True


def periodic_jobs() -> list[PeriodicJobState]:
    """What `python worker.py cron` enqueues, with when it last did (RQ's cron registry)."""
    from crm.jobs.schedule import periodic_jobs as schedule

    connection = redis_connection()
    states = []
    for job in schedule(current_app.config):
        name = f"{job.function.__module__}.{job.function.__name__}"
        score = connection.zscore(cron_jobs_key(), name)
        states.append(
            PeriodicJobState(
                function=name,
                queue=job.queue,
                every=job.every,
                last_enqueued=datetime.fromtimestamp(score, UTC) if score else None,
            )
        )
    return states


def cron_running() -> bool:
    """Whether a cron scheduler (`python worker.py cron`) is alive."""
    return bool(CronScheduler.all(connection=redis_connection()))


def _aware(moment: datetime | None) -> datetime | None:
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment
