"""Fixtures for the whole suite.

The schema is built once per run by the real Alembic migrations, on PostgreSQL
or SQLite (tests/backends.py decides). Each test then starts from empty tables
and an empty Redis database: rows are deleted after every test rather than
rolled back, because browser tests drive a live server in another thread that
must see what the test committed.
"""

import os
import shutil
import tempfile
import uuid

import pytest

from tests.backends import detect

BACKENDS = detect()
_RUN_ID = uuid.uuid4().hex[:8]
# Unix socket paths are short-lived and must stay under 107 bytes: not pytest's tmp_path.
_TMP = tempfile.mkdtemp(prefix="crm-")
os.environ["CRM_INSTANCE_PATH"] = _TMP
if BACKENDS.postgres:
    PG_DATABASE = f"crm_test_{_RUN_ID}"
    os.environ["DATABASE_URL"] = f"postgresql+psycopg://postgres@127.0.0.1:5432/{PG_DATABASE}"
else:
    os.environ["DATABASE_URL"] = f"sqlite:///{_TMP}/test.db"
if BACKENDS.redis_server:
    # A database of its own, so that two runs on one machine do not flush each other:
    # claimed in database 0 for the length of a run (an hour at most if the run dies).
    os.environ["REDIS_URL"] = f"redis://127.0.0.1:6379/{BACKENDS.claim_redis_database(_RUN_ID)}"
else:
    os.environ.pop("REDIS_URL", None)

from crm import create_app  # noqa: E402  (the environment above must come first)
from crm.config import TestConfig  # noqa: E402
from crm.extensions import db  # noqa: E402


def pytest_report_header(config):
    return BACKENDS.describe()


def _create_pg_database():
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{PG_DATABASE}"')


def _drop_pg_database():
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')


@pytest.fixture(scope="session")
def app():
    """The app under test, CSRF off so route tests can post plain forms.

    CSRF itself is tested with `csrf_app` and in the browser tests.
    """
    if BACKENDS.postgres:
        _create_pg_database()
    application = create_app(TestConfig, WTF_CSRF_ENABLED=False)
    application.config_baseline = dict(application.config)
    with application.app_context():
        from crm.schema import upgrade_database

        upgrade_database()
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()
        if not BACKENDS.redis_server:
            from crm.queues import redis_connection

            # Stop the embedded server now: its files go with the folder below.
            redis_connection().shutdown(nosave=True)
    if BACKENDS.postgres:
        _drop_pg_database()
    shutil.rmtree(_TMP, ignore_errors=True)


@pytest.fixture(scope="session")
def csrf_app(app):
    """The same database, with CSRF protection on as in production."""
    application = create_app(TestConfig)
    application.config_baseline = dict(application.config)
    return application


def _restore_config(application) -> None:
    """Undo what a test set in a session-wide app's config (a page size, a limit)."""
    baseline = application.config_baseline
    for key in [key for key in application.config if key not in baseline]:
        del application.config[key]
    for key, value in baseline.items():
        if application.config.get(key) is not value:
            application.config[key] = value


@pytest.fixture(autouse=True)
def _clean_state(request):
    """Empty tables and Redis, and put the config back, after each test that used the app."""
    yield
    if "app" not in request.fixturenames:
        return
    application = request.getfixturevalue("app")
    _restore_config(application)
    if "csrf_app" in request.fixturenames:
        _restore_config(request.getfixturevalue("csrf_app"))
    with application.app_context():
        db.session.remove()
        _empty_tables()
        from crm.queues import redis_connection

        redis_connection().flushdb()


def _empty_tables():
    # DELETE rather than TRUNCATE: on a few rows it is ten times faster on PostgreSQL.
    # The audit log refuses DELETE (triggers of migration 0005): its triggers are switched
    # off for this one transaction on PostgreSQL (ALTER TABLE is transactional, so no other
    # connection ever sees them off), dropped and created again on SQLite, which cannot
    # disable a trigger. The application never does either.
    with db.engine.begin() as conn:
        postgres = conn.dialect.name == "postgresql"
        if postgres:
            conn.exec_driver_sql("ALTER TABLE audit_log DISABLE TRIGGER USER")
        else:
            triggers = conn.exec_driver_sql(
                "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_log'"
            ).all()
            for name, _sql in triggers:
                conn.exec_driver_sql(f"DROP TRIGGER {name}")
        for table in reversed(db.metadata.sorted_tables):
            conn.execute(table.delete())
        if postgres:
            conn.exec_driver_sql("ALTER TABLE audit_log ENABLE TRIGGER USER")
        else:
            for _name, sql in triggers:
                conn.exec_driver_sql(sql)


@pytest.fixture(scope="session")
def data_app(app):
    """A twin of the app for the test's own database work.

    Flask reuses an application context that is already pushed for the same
    app, so a test holding `app`'s context would share `g` (and the signed-in
    user Flask-Login caches there) across all its requests. Test-side work
    happens in this twin's context instead; requests get a fresh one each.
    """
    return create_app(TestConfig, WTF_CSRF_ENABLED=False)


@pytest.fixture
def ctx(data_app):
    """An application context for tests that use models and services directly."""
    with data_app.app_context():
        yield
        db.session.remove()


@pytest.fixture
def client(app, ctx):
    return app.test_client()


@pytest.fixture
def login(app, ctx):
    """login(client, user): sign `user` in on `client` without going through the form.

    Each call opens a session of its own (a row of user_session), as a sign-in does.
    """
    from tests.factories import start_session

    def _login(test_client, user):
        token = start_session(user)
        db.session.commit()
        with test_client.session_transaction() as session:
            session["_user_id"] = token
            session["_fresh"] = True
        return test_client

    return _login


@pytest.fixture
def as_role(app, ctx, login):
    """as_role("sales") -> (client signed in as a new user of that role, the user)."""
    from tests.factories import make_user

    def _as(role: str, **fields):
        user = make_user(role=role, **fields)
        db.session.commit()
        return login(app.test_client(), user), user

    return _as


HTMX = {"HX-Request": "true", "HX-Request-Type": "partial"}


def htmx_headers(target: str | None = None) -> dict:
    """Headers htmx 4 sends for a request that swaps into `target` (e.g. "tbody#contact-rows")."""
    headers = dict(HTMX)
    if target:
        headers["HX-Target"] = target
    return headers
