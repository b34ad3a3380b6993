import subprocess
import sys

import pytest
from sqlalchemy import create_engine, text

import crm  # noqa: F401  (installs the SQLite connection pragmas)
from crm.config import DEV_SECRET_KEY, Config


def test_production_refuses_the_development_secret():
    class Production(Config):
        ENV_NAME = "production"
        SECRET_KEY = DEV_SECRET_KEY

    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        Production.check()


def test_postgres_urls_get_the_psycopg_driver():
    code = "from crm.config import Config; print(Config.SQLALCHEMY_DATABASE_URI)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={"DATABASE_URL": "postgres://u@h/db", "PATH": ""},
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "postgresql+psycopg://u@h/db"


def test_sqlite_connections_use_wal_foreign_keys_and_a_busy_timeout(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 5000


def test_make_run_points_the_links_of_mail_to_its_own_port():
    from crm.devserver import children_environment

    env = children_environment("http://127.0.0.1:5101/", {"PATH": "/bin"})
    assert env["BASE_URL"] == "http://127.0.0.1:5101"
    given = {"BASE_URL": "https://crm.example.com"}
    assert children_environment("http://127.0.0.1:5101/", given)["BASE_URL"] == (
        "https://crm.example.com"
    )
