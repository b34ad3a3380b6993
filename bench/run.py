"""`make bench`: the app at scale on PostgreSQL, served by gunicorn, measured over loopback.

1. A database of its own (crm_bench): created, migrated (`flask db upgrade`) and seeded
   (`flask seed-scale`) unless it already holds a seed of the same sizes (--fresh
   starts again).
2. gunicorn with 2 workers and the production settings (a random SECRET_KEY, Redis on
   127.0.0.1, a database number of its own), and an RQ worker (`python worker.py`).
3. Signs in through the login form as a sales rep, a manager, a support agent and a
   technician.
4. Every page of bench/pages.py in a sequential pass (latency percentiles, SQL queries
   from X-SQL-Queries, bytes, the htmx fragment of list pages); a load pass on the
   contact list and search (wrk); the write mix; the resident memory of the processes.
5. Prints a table with the targets as pass/fail columns, writes bench-results/bench.json.

Every request goes to 127.0.0.1; the counts are fixed and a time limit stops the whole
run. `--smoke` is the same run at 1,000 contacts in a throwaway database, in seconds.
"""

import argparse
import json
import os
import platform
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import UTC, datetime
from itertools import cycle
from pathlib import Path

import psycopg

from bench import report
from bench.client import Client
from bench.load import run_load, wrk_available
from bench.pages import PAGES, ROLES, SEARCH_TERMS, WRITES, Page
from bench.servers import (
    ROOT,
    children,
    cpu_seconds,
    free_port,
    memory,
    start_web,
    start_worker,
    stop_all,
    wait_until_serving,
)
from bench.stats import summary

PG_SERVER = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432")
# A Redis database number of its own; nothing in it is flushed by the benchmark.
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
MIN_REQUESTS = 50  # per page in the sequential pass, however slow the page
WEB_WORKERS = 2  # as the issue asks; the smoke run starts one, to start and warm up faster

FULL = {
    "contacts": 100_000,
    "companies": 10_000,
    "deals": 20_000,
    "activities": 200_000,
    "users": 50,
    "agenda": 50_000,
    "incidents": 20_000,
    "interventions": 5_000,
}
SMOKE = {
    "contacts": 1_000,
    "companies": 100,
    "deals": 200,
    "activities": 3_000,
    "users": 50,
    "agenda": 2_000,
    "incidents": 400,
    "interventions": 200,
}


class TimeLimit(Exception):
    pass


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="1,000 contacts in a throwaway database, a few requests per page",
    )
    parser.add_argument("--fresh", action="store_true", help="drop and seed the database again")
    parser.add_argument("--database", help="PostgreSQL database name (crm_bench)")
    for name in FULL:
        parser.add_argument(f"--{name}", type=int, help=f"seed size (default {FULL[name]:,})")
    parser.add_argument("--requests", type=int, help="sequential requests per page (200)")
    parser.add_argument(
        "--page-seconds",
        type=float,
        default=30.0,
        help=f"at most this long per page, once {MIN_REQUESTS} requests are done (30)",
    )
    parser.add_argument("--warmup", type=int, help="unmeasured requests per page first (10)")
    parser.add_argument("--load-seconds", type=float, help="length of each load pass (15)")
    parser.add_argument("--connections", type=int, default=8, help="concurrent connections (8)")
    parser.add_argument("--writes", type=int, help="requests of each kind in the write mix (50)")
    parser.add_argument("--no-wrk", action="store_true", help="use the Python load generator")
    parser.add_argument("--time-limit", type=int, help="stop everything after this many seconds")
    parser.add_argument("--output", type=Path, help="the JSON file (bench-results/bench.json)")
    args = parser.parse_args(argv)
    smoke = args.smoke
    defaults = {
        "database": f"crm_bench_smoke_{os.getpid()}" if smoke else "crm_bench",
        "requests": 1 if smoke else 200,
        "warmup": 0 if smoke else 10,
        "load_seconds": 0.3 if smoke else 15.0,
        "writes": 3 if smoke else 50,
        "time_limit": 120 if smoke else 1800,
        "output": ROOT / "bench-results" / ("bench-smoke.json" if smoke else "bench.json"),
    }
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    sizes = SMOKE if smoke else FULL
    args.sizes = {name: getattr(args, name) or sizes[name] for name in FULL}
    args.web_workers = 1 if smoke else WEB_WORKERS
    if smoke:
        args.no_wrk = True
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def out_of_time(signum, frame):
        raise TimeLimit(f"the benchmark took longer than {args.time_limit} s")

    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(args.time_limit)
    started = time.perf_counter()
    log_dir = args.output.parent / ("logs-smoke" if args.smoke else "logs")
    instance = tempfile.mkdtemp(prefix="crm-bench-")
    database_url = f"{PG_SERVER}/{args.database}"
    env = app_environment(database_url, instance, args.smoke)
    processes = []
    try:
        machine = describe_machine(database_url)
        # The servers start while the database is prepared: they touch it at the first request.
        port = free_port()
        web = start_web(env, port, args.web_workers, log_dir)
        processes.append(web)
        # The smoke run leaves the RQ worker out: starting it costs seconds, and
        # tests/jobs covers it.
        worker = None if args.smoke else start_worker(env, log_dir)
        processes += [worker] if worker else []
        seeding = prepare_database(args, instance)
        records = find_records(database_url)
        wait_until_serving(web, port, args.web_workers)
        say(f"Serving with gunicorn ({args.web_workers} workers) on 127.0.0.1:{port}.")
        clients = sign_in(port, records)
        results = {
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "smoke": args.smoke,
            "database": args.database,
            "machine": machine,
            "sizes": args.sizes,
            "seeding": seeding,
            "settings": {
                "requests": args.requests,
                "warmup": args.warmup,
                "load_seconds": args.load_seconds,
                "connections": args.connections,
                "writes": args.writes,
                "web_workers": args.web_workers,
                "load_tool": "wrk" if wrk_available() and not args.no_wrk else "python threads",
            },
            "targets": targets_as_dict(),
        }
        cpu = ServerCPU(web, args.database)
        results["pages"] = [measure_page(clients, page, records, args, port, cpu) for page in PAGES]
        results["writes"] = write_mix(clients, records, args.writes, database_url, port)
        results["memory"] = measure_memory(web, worker)
        results["machine"]["load_average_end"] = load_average()
        results["errors"] = count_errors(results)
        results["missed_targets"] = report.failed_targets(results)
        results["seconds"] = round(time.perf_counter() - started, 1)
    except TimeLimit as error:
        say(f"Stopped: {error}")
        return 2
    finally:
        signal.alarm(0)
        stop_all(processes)
        if args.smoke:
            drop_database(args.database)
        say("Stopped the servers.")
    report.write_json(results, args.output)
    print()
    print(report.table(results))
    print()
    if results["missed_targets"]:
        print("Targets missed: " + "; ".join(results["missed_targets"]))
    print(f"Results in {args.output} ({results['seconds']:.0f} s in all).")
    if results["errors"]:
        print(f"{results['errors']} requests failed: see the statuses in the JSON and {log_dir}.")
        return 1
    return 0


_STARTED = time.perf_counter()


def say(message: str) -> None:
    print(f"[{time.perf_counter() - _STARTED:6.1f} s] {message}", flush=True)


# ---- environment and database -------------------------------------------------


# The smoke run hashes passwords at the tests' cost: signing in then takes milliseconds.
SMOKE_ARGON2 = {"ARGON2_TIME_COST": 1, "ARGON2_MEMORY_COST": 1024}


def app_environment(database_url: str, instance: str, smoke: bool = False) -> dict:
    """The production settings, on this machine's PostgreSQL and Redis."""
    ours = ("CRM_", "FLASK_", "GUNICORN", "ARGON2_", "LOGIN_LIMIT_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    for name in ("PORT", "HOST", "SESSION_COOKIE_SECURE", "WEB_CONCURRENCY"):
        env.pop(name, None)
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=REDIS_URL,
        CRM_ENV="production",
        SECRET_KEY=secrets.token_urlsafe(48),
        CRM_SQL_COUNTING="1",
        CRM_INSTANCE_PATH=instance,
        FLASK_APP="app",
        PYTHONUNBUFFERED="1",
    )
    if smoke:
        env.update({name: str(value) for name, value in SMOKE_ARGON2.items()})
    return env


def admin_connection():
    return psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True)


def drop_database(name: str) -> None:
    with admin_connection() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def prepare_database(args, instance: str) -> dict:
    """Reuse a database seeded with the same sizes; else create, migrate and seed it.

    The migrations and the seed run in this process, as `flask db upgrade` and
    `flask seed-scale` would (each `flask` command would first spend seconds starting up).
    """
    marker = json.dumps({"seed-scale": args.sizes}, sort_keys=True)
    with admin_connection() as conn:
        row = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            (args.database,),
        ).fetchone()
    reuse = row is not None and row[0] == marker and not args.fresh
    if not reuse:
        say(f"Creating the database {args.database} ...")
        drop_database(args.database)
        with admin_connection() as conn:
            conn.execute(f'CREATE DATABASE "{args.database}"')
    app = bench_app(f"{PG_SERVER}/{args.database}", instance, args.smoke)
    from crm.extensions import db
    from crm.scale_data import ScaleSizes, seed_scale
    from crm.schema import upgrade_database

    try:
        with app.app_context():
            upgrade_database()
            if reuse:
                say(f"Reusing {args.database}: {sizes_text(args.sizes)} (--fresh seeds it again).")
                return {"reused": True}
            say(f"Seeding {sizes_text(args.sizes)} ...")
            seeded = seed_scale(ScaleSizes(**args.sizes), progress=say)
            db.session.remove()
    finally:
        with app.app_context():
            db.engine.dispose()
    with admin_connection() as conn:
        conn.execute(f"COMMENT ON DATABASE \"{args.database}\" IS '{marker}'")
    say(f"Seeded in {seeded.total_seconds:.1f} s.")
    return {
        "reused": False,
        "seconds": round(seeded.total_seconds, 1),
        "steps": seeded.seconds,
        "counts": seeded.counts,
    }


def bench_app(database_url: str, instance: str, smoke: bool = False):
    """The app in this process, on the benchmark's database, for migrating and seeding."""
    from crm import create_app
    from crm.config import Config

    app = create_app(
        Config,
        SQLALCHEMY_DATABASE_URI=database_url.replace("postgresql://", "postgresql+psycopg://", 1),
        REDIS_URL=REDIS_URL,
        INSTANCE_PATH=instance,
        SQL_QUERY_COUNTING=False,
        **(SMOKE_ARGON2 if smoke else {}),
    )
    return app


def sizes_text(sizes: dict) -> str:
    return ", ".join(f"{value:,} {name}" for name, value in sizes.items())


def find_records(database_url: str) -> dict:
    """The ids the pages and writes need, chosen for the heaviest realistic case."""
    from crm.scale_data import MANAGER_EMAIL, REP_EMAIL, SUPPORT_EMAIL

    with psycopg.connect(database_url) as conn:

        def one(sql: str, *params):
            row = conn.execute(sql, params).fetchone()
            if row is None:
                raise RuntimeError(f"the seeded database has no row for: {sql}")
            return row[0]

        rep = one('SELECT id FROM "user" WHERE email = %s', REP_EMAIL)
        records = {
            "rep_email": REP_EMAIL,
            "manager_email": MANAGER_EMAIL,
            "support_email": SUPPORT_EMAIL,
            "contact": one(
                "SELECT contact_id FROM activity WHERE contact_id IS NOT NULL "
                "GROUP BY contact_id ORDER BY count(*) DESC, contact_id LIMIT 1"
            ),
            "company": one(
                "SELECT company_id FROM contact WHERE company_id IS NOT NULL "
                "GROUP BY company_id ORDER BY count(*) DESC, company_id LIMIT 1"
            ),
            "deal": one(
                "SELECT d.id FROM deal d JOIN deal_line l ON l.deal_id = d.id "
                "WHERE d.owner_id = %s GROUP BY d.id ORDER BY count(*) DESC, d.id LIMIT 1",
                rep,
            ),
            "call_contact": one(
                "SELECT id FROM contact WHERE owner_id = %s ORDER BY id LIMIT 1", rep
            ),
            "feed_token": one(
                "SELECT token FROM calendar_feed WHERE user_id = %s AND revoked_at IS NULL", rep
            ),
        }
        pipeline = one("SELECT id FROM pipeline ORDER BY is_default DESC, position, id LIMIT 1")
        records["open_stages"] = [
            row[0]
            for row in conn.execute(
                "SELECT id FROM stage WHERE pipeline_id = %s AND kind = 'open' ORDER BY position",
                (pipeline,),
            )
        ]
        records["move_deals"] = [
            row[0]
            for row in conn.execute(
                "SELECT d.id FROM deal d JOIN stage s ON s.id = d.stage_id WHERE d.owner_id = %s "
                "AND d.pipeline_id = %s AND s.kind = 'open' ORDER BY d.id LIMIT 50",
                (rep, pipeline),
            )
        ]
        records["company_names"] = [
            row[0] for row in conn.execute("SELECT name FROM company ORDER BY id LIMIT 20")
        ]
        # Support: the longest conversation; open incidents to reply to, the agent's first.
        records["incident"] = one(
            "SELECT incident_id FROM incident_message GROUP BY incident_id "
            "ORDER BY count(*) DESC, incident_id LIMIT 1"
        )
        records["reply_incidents"] = [
            row[0]
            for row in conn.execute(
                'SELECT i.id FROM incident i LEFT JOIN "user" u ON u.id = i.assignee_id '
                "WHERE i.status IN ('open', 'waiting') "
                "ORDER BY u.email = %s DESC NULLS LAST, i.id LIMIT 50",
                (SUPPORT_EMAIL,),
            )
        ]
        # The technician with the most visits on the first working day from today on (Paris).
        technician, day = conn.execute(
            "SELECT u.email, (b.starts_at AT TIME ZONE 'UTC' AT TIME ZONE 'Europe/Paris')::date "
            'AS day FROM technician_booking b JOIN "user" u ON u.id = b.technician_id '
            "WHERE b.starts_at >= date_trunc('day', now() AT TIME ZONE 'UTC') "
            "GROUP BY u.email, day ORDER BY day, count(*) DESC, u.email LIMIT 1"
        ).fetchone() or (None, None)
        if technician is None:
            raise RuntimeError("the seeded database has no technician's visit to come")
        records["technician_email"] = technician
        records["tech_day"] = day.isoformat()
    if len(records["open_stages"]) < 2 or not records["move_deals"]:
        raise RuntimeError("the seeded database has no open deal of the rep to move")
    if not records["reply_incidents"]:
        raise RuntimeError("the seeded database has no open incident to reply to")
    return records


def describe_machine(database_url: str) -> dict:
    meminfo = Path("/proc/meminfo").read_text()
    total_kb = int(meminfo.split("MemTotal:")[1].split()[0])
    cpu_model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu_model = line.split(":", 1)[1].strip()
            break
    with admin_connection() as conn:
        pg_version = conn.execute("SHOW server_version").fetchone()[0]
    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_bytes": total_kb * 1024,
        "python": platform.python_version(),
        "postgresql": pg_version,
        "commit": commit or None,
        "load_average_start": load_average(),
    }


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def targets_as_dict() -> dict:
    from bench import pages

    names = (
        "P95_MS",
        "REQUESTS_PER_SECOND",
        "SQL_QUERIES",
        "LIST_PAGE_BYTES",
        "FRAGMENT_BYTES",
        "RSS_BYTES",
    )
    return {name.lower(): getattr(pages, name) for name in names}


# ---- signing in and measuring ----------------------------------------------------


class ServerCPU:
    """CPU time spent by the web workers and by their PostgreSQL backends.

    Per request, it tells what a page costs whatever else the machine runs; the two
    cores divided by it is the most requests per second this machine could serve.
    """

    def __init__(self, web, database: str):
        self.web = web
        self.database = database

    def seconds(self) -> dict:
        with admin_connection() as conn:
            backends = [
                row[0]
                for row in conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = %s "
                    "AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
                    (self.database,),
                )
            ]
        return {
            "web": sum(cpu_seconds(pid) for pid in children(self.web.pid)),
            "database": sum(cpu_seconds(pid) for pid in backends),
        }

    @staticmethod
    def per_request(before: dict, after: dict, requests: int) -> dict:
        if not requests:
            return {}
        return {
            f"{name}_cpu_ms": round((after[name] - before[name]) * 1000 / requests, 2)
            for name in before
        }


ROLE_EMAILS = {
    "sales": "rep_email",
    "manager": "manager_email",
    "support": "support_email",
    "technician": "technician_email",
}


def sign_in(port: int, records: dict) -> dict[str, Client]:
    from crm.demo_data import DEMO_PASSWORD

    clients = {}
    for role in ROLES:
        client = Client(port)
        client.login(records[ROLE_EMAILS[role]], DEMO_PASSWORD)
        clients[role] = client
    say("Signed in as a sales rep, a manager, a support agent and a technician.")
    return clients


def page_paths(page: Page, records: dict) -> list[str]:
    values = {key: value for key, value in records.items() if isinstance(value, int | str)}
    if "{term}" not in page.path:
        return [page.path.format(**values)]
    return [page.path.format(term=term, **values) for term in SEARCH_TERMS]


def fragment_headers(page: Page, path: str, port: int) -> dict:
    return {
        "HX-Request": "true",
        "HX-Request-Type": "partial",
        "HX-Target": page.fragment_target,
        "HX-Current-URL": f"http://127.0.0.1:{port}{path}",
    }


def measure_page(clients: dict, page: Page, records: dict, args, port: int, cpu) -> dict:
    client = clients[page.role]
    paths = page_paths(page, records)
    for _, path in zip(range(args.warmup), cycle(paths), strict=False):
        client.get(path)
    seconds, statuses, sql, sizes = [], {}, [], []
    cpu_before = cpu.seconds()
    deadline = time.monotonic() + args.page_seconds
    for _, path in zip(range(args.requests), cycle(paths), strict=False):
        if time.monotonic() > deadline and len(seconds) >= MIN_REQUESTS:
            break  # a slow page: fewer requests, and the count says so
        answer = client.get(path)
        seconds.append(answer.seconds)
        statuses[str(answer.status)] = statuses.get(str(answer.status), 0) + 1
        sql.append(answer.sql_queries or 0)
        sizes.append(len(answer.body))
    cpu_used = cpu.per_request(cpu_before, cpu.seconds(), len(seconds))
    result = {
        "name": page.name,
        "role": page.role,
        "path": page.path,
        **summary(seconds),
        **cpu_used,
        "sql_queries": max(sql),
        "bytes": max(sizes),
        "statuses": statuses,
    }
    if page.fragment_target:
        fragments = [
            client.get(path, fragment_headers(page, path, port)) for path in paths[: args.requests]
        ]
        result["fragment"] = {
            "target": page.fragment_target,
            "bytes": max(len(f.body) for f in fragments),
            "sql_queries": max(f.sql_queries or 0 for f in fragments),
            "statuses": sorted({f.status for f in fragments}),
            "is_fragment": all(b"<html" not in f.body for f in fragments),
        }
    if page.load:
        say(f"  load on {page.name} for {args.load_seconds:.0f} s ...")
        cpu_before = cpu.seconds()
        load = run_load(
            port,
            paths,
            client.cookie_header,
            args.load_seconds,
            args.connections,
            use_wrk=not args.no_wrk,
        )
        used = cpu.per_request(cpu_before, cpu.seconds(), load.requests)
        result["load"] = {**asdict(load), **used}
    result["checks"] = report.check_page(result, page.is_list)
    say(
        f"  {page.name:<24} p95 {result['p95_ms']:>7.1f} ms  {result['sql_queries']:>3} SQL  "
        f"{result['bytes'] / 1024:>6.1f} KB"
    )
    return result


# ---- the write mix -----------------------------------------------------------------


def write_mix(clients: dict, records: dict, count: int, database_url: str, port: int) -> list[dict]:
    """Log a call, move a deal, create a contact, reply to an incident: `count` of each,
    one after the other, each as its role."""
    stamp = int(time.time())
    timings = {write.kind: [] for write in WRITES}
    statuses = {write.kind: {} for write in WRITES}
    sql = {write.kind: [] for write in WRITES}
    sizes = {write.kind: [] for write in WRITES}
    with psycopg.connect(database_url, autocommit=True) as conn:
        for index in range(count):
            for write in WRITES:
                path, form, headers = _write_request(write.kind, index, records, conn, stamp, port)
                answer = clients[write.role].post(path, form, headers)
                timings[write.kind].append(answer.seconds)
                key = str(answer.status)
                statuses[write.kind][key] = statuses[write.kind].get(key, 0) + 1
                sql[write.kind].append(answer.sql_queries or 0)
                sizes[write.kind].append(len(answer.body))
    results = []
    for write in WRITES:
        result = {
            "name": write.name,
            "role": write.role,
            **summary(timings[write.kind]),
            "sql_queries": max(sql[write.kind], default=0),
            "bytes": max(sizes[write.kind], default=0),
            "statuses": statuses[write.kind],
        }
        result["checks"] = report.check_write(result)
        results.append(result)
        say(
            f"  write: {write.name:<17} p95 {result['p95_ms'] or 0:>7.1f} ms  "
            f"{result['sql_queries']:>3} SQL"
        )
    return results


def _htmx(target: str, port: int, page: str) -> dict:
    return {
        "HX-Request": "true",
        "HX-Request-Type": "partial",
        "HX-Target": target,
        "HX-Current-URL": f"http://127.0.0.1:{port}{page}",
    }


def _write_request(kind: str, index: int, records: dict, conn, stamp: int, port: int):
    if kind == "log_call":
        contact = records["call_contact"]
        return (
            f"/contacts/{contact}/activities",
            {"kind": "call", "outcome": "reached", "body": f"Benchmark call {index + 1}"},
            _htmx("form#composer", port, f"/contacts/{contact}"),
        )
    if kind == "move_deal":
        deal = records["move_deals"][index % len(records["move_deals"])]
        stage, version = conn.execute(
            "SELECT stage_id, version_id FROM deal WHERE id = %s", (deal,)
        ).fetchone()
        stages = records["open_stages"]
        following = (
            stages[(stages.index(stage) + 1) % len(stages)] if stage in stages else stages[0]
        )
        return (
            f"/deals/{deal}/move",
            {"stage_id": following, "version": version},
            _htmx(f"article#deal-{deal}", port, "/deals"),
        )
    if kind == "create_contact":
        company = records["company_names"][index % len(records["company_names"])]
        return (
            "/contacts",
            {
                "first_name": "Bench",
                "last_name": f"Run {stamp} {index + 1}",
                "email": f"bench.{stamp}.{index + 1}@bench.example",
                "company": company,
            },
            _htmx("form#quick-add", port, "/contacts"),
        )
    if kind == "reply":
        incident = records["reply_incidents"][index % len(records["reply_incidents"])]
        return (
            f"/incidents/{incident}/messages",
            {"kind": "reply", "body": f"Benchmark reply {stamp} {index + 1}: we are on it."},
            _htmx("form#composer", port, f"/incidents/{incident}"),
        )
    raise ValueError(kind)


# ---- memory and errors -----------------------------------------------------------------


def measure_memory(web, worker) -> dict:
    """RSS of every gunicorn worker and of the RQ worker, after it ran a job."""
    result = {
        "web_master": memory(web.pid),
        "web_workers": [memory(pid) for pid in children(web.pid)],
    }
    if worker is not None:
        result["rq_job"] = run_one_job()
        result["rq_worker"] = memory(worker.pid)
    result["checks"] = report.memory_checks(result)
    return result


def run_one_job(timeout: float = 20.0) -> str:
    """Have the RQ worker run a job, so that its memory is that of a worker that worked."""
    import redis
    from rq import Queue

    connection = redis.Redis.from_url(REDIS_URL)
    job = Queue("default", connection=connection).enqueue("crm.jobs.system.heartbeat")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = job.get_status(refresh=True)
        if status in ("finished", "failed"):
            return str(status)
        time.sleep(0.2)
    return "not run"


def count_errors(results: dict) -> int:
    errors = 0
    for entry in results["pages"] + results["writes"]:
        errors += sum(n for status, n in entry["statuses"].items() if status != "200")
        fragment = entry.get("fragment")
        if fragment and (fragment["statuses"] != [200] or not fragment["is_fragment"]):
            errors += 1
        if entry.get("load"):
            errors += entry["load"]["errors"]
    return errors


if __name__ == "__main__":
    sys.exit(main())
