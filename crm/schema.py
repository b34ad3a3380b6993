"""Schema migrations (Alembic, through Flask-Migrate): for the `flask db` commands, and for
the code that upgrades a database itself (`make run`, the tests, the benchmark).

Flask-Migrate brings Alembic and Mako, 12 MB in each process that imports them. Web and
worker processes never migrate, so they do not load it: the app registers it only under
the `flask` command, and upgrade_database() registers it when called.
"""

import click
from flask import Flask, current_app

from crm.config import ROOT
from crm.extensions import db


def migrated_object(obj, name, type_, reflected, compare_to) -> bool:
    """Indexes only PostgreSQL has (trigram search) live in migrations, not in the models."""
    return not (type_ == "index" and name and name.startswith("ix_trgm_"))


def register(app: Flask) -> None:
    from flask_migrate import Migrate

    if "migrate" not in app.extensions:
        Migrate(
            app,
            db,
            directory=str(ROOT / "migrations"),
            compare_type=True,
            include_object=migrated_object,
        )


def register_for_commands(app: Flask) -> None:
    """Under the `flask` command (a click context), `flask db ...` may be what runs."""
    if click.get_current_context(silent=True) is not None:
        register(app)


def upgrade_database() -> None:
    """Migrate the current app's database to the newest revision."""
    from flask_migrate import upgrade

    register(current_app._get_current_object())
    upgrade()
