"""Schema migrations (Alembic, through Flask-Migrate): for the `flask db` commands, and for
the code that upgrades a database itself (`make run`, the tests, the benchmark).

Flask-Migrate brings Alembic and Mako, 12 MB in each process that imports them. Web and
worker processes never migrate, so they do not load it: `flask db ...` loads it when it
runs, and upgrade_database() when called.
"""

import click
from flask import Flask, current_app

from crm.config import ROOT
from crm.extensions import db


def migrated_object(obj, name, type_, reflected, compare_to) -> bool:
    """Indexes only PostgreSQL has (trigram search) and expression indexes, which SQLite
    cannot reflect back, live in migrations, not in the models."""
    return not (type_ == "index" and name and name.startswith(("ix_trgm_", "ix_expr_")))


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


@click.command(
    "db",
    context_settings={
        "ignore_unknown_options": True,
        "allow_extra_args": True,
        "help_option_names": [],  # `flask db --help` is Flask-Migrate's
    },
    help="Perform database migrations (Alembic).",
)
@click.pass_context
def migration_commands(ctx: click.Context) -> None:
    """`flask db ...`: Flask-Migrate's command group, loaded when it is asked for, is given
    the rest of the command line."""
    from flask.cli import ScriptInfo
    from flask_migrate.cli import db as commands

    register(ctx.ensure_object(ScriptInfo).load_app())
    commands.main(args=ctx.args, prog_name=ctx.command_path, obj=ctx.obj)


def upgrade_database() -> None:
    """Migrate the current app's database to the newest revision."""
    from flask_migrate import upgrade

    register(current_app._get_current_object())
    upgrade()
