"""The worker plumbing end to end: a job enqueued on the test Redis is picked up by
the worker classes of worker.py, runs inside the application context they push
(the test holds none), writes to Redis and finishes with its return value stored.
"""

import pytest
from rq import Queue

from crm.jobs.system import HEARTBEAT_KEY, heartbeat
from worker import AppWorker, InProcessWorker, worker_connection


@pytest.mark.parametrize(
    "worker_class", [InProcessWorker, AppWorker], ids=["in-process", "forking"]
)
def test_worker_runs_heartbeat_in_an_app_context(app, worker_class):
    connection = worker_connection(app)
    queue = Queue("default", connection=connection)
    job = queue.enqueue(heartbeat)
    assert connection.get(HEARTBEAT_KEY) is None

    worked = worker_class([queue], connection=connection, app=app).work(burst=True)

    assert worked
    assert job.get_status(refresh=True) == "finished", job.latest_result()
    written = connection.get(HEARTBEAT_KEY).decode()
    assert written == job.return_value()
    assert queue.count == 0
