"""Imports in the worker (queue "imports"): run one, undo one. crm/services/imports/runner.py
does the work; these wrappers give it the importing user's request-like context (their
language for the reasons written on rejected rows, their name in the audit log).

Both jobs are idempotent and resumable: the rows of the database say how far an import
got. A job whose worker died is run again by RQ (Retry), and "Resume" enqueues it again.
"""

import logging
from contextlib import contextmanager

from flask import current_app
from rq import Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from crm.models import DataImport
from crm.queues import queue, redis_connection
from crm.services.imports import runner

log = logging.getLogger(__name__)

_ALIVE = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED}


def job_id(import_id: int, action: str = "run") -> str:
    return f"import-{action}-{import_id}"


@contextmanager
def _as_request():
    # No client address: the audit log shows none rather than the loopback.
    with current_app.test_request_context("/", environ_base={"REMOTE_ADDR": ""}):
        yield


def run_import(import_id: int) -> dict:
    """Import what is left of the file; an unexpected error fails the import, with its message.

    The result says how much memory the work horse needed at its peak (VmHWM), to size
    workers by: it stays flat whatever the number of rows."""
    with _as_request():
        try:
            result = runner.run(import_id)
        except Exception as error:
            log.exception("Import %s failed", import_id)
            result = runner.fail(import_id, f"{type(error).__name__}: {error}")
    result["peak_memory_kb"] = peak_memory_kb()
    log.info("Import %s: %s", import_id, result)
    return result


def peak_memory_kb() -> int | None:
    """This process's peak resident memory, from Linux's /proc (None elsewhere)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def undo_import(import_id: int, actor_id: int | None = None) -> dict:
    with _as_request():
        return runner.undo(import_id, actor_id)


def _enqueue(function, import_id: int, action: str, *args):
    return queue("imports").enqueue(
        function,
        import_id,
        *args,
        job_id=job_id(import_id, action),
        job_timeout=current_app.config["IMPORT_JOB_TIMEOUT_SECONDS"],
        # A worker killed mid-way: RQ runs the job again, which goes on where it stopped.
        retry=Retry(max=3, interval=[5, 30, 120]),
        result_ttl=24 * 3600,
        failure_ttl=7 * 24 * 3600,
    )


def enqueue_run(import_id: int) -> Job:
    return _enqueue(run_import, import_id, "run")


def enqueue_undo(import_id: int, actor_id: int) -> Job:
    return _enqueue(undo_import, import_id, "undo", actor_id)


def job_alive(data_import: DataImport) -> bool:
    """Whether a job for this import is waiting or running in Redis."""
    action = "undo" if data_import.status == "undoing" else "run"
    try:
        job = Job.fetch(job_id(data_import.id, action), connection=redis_connection())
        return job.get_status(refresh=True) in _ALIVE
    except NoSuchJobError:
        return False
