"""Jobs about the worker itself."""

from datetime import UTC, datetime

from crm.queues import redis_connection

HEARTBEAT_KEY = "crm:worker:heartbeat"


def heartbeat() -> str:
    """Record in Redis that a worker ran a job, and return the time it did.

    Takes nothing and overwrites a single key with the current UTC time in ISO
    format, so running it again only moves the time forward. It proves the whole
    path: enqueue, a worker picking the job up, an app context around it, Redis.
    """
    now = datetime.now(UTC).isoformat()
    redis_connection().set(HEARTBEAT_KEY, now)
    return now
