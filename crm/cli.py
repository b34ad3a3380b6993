"""Flask commands: `flask seed-demo`, `flask seed-scale`, `flask create-admin`."""

import click
from flask import Flask

from crm.extensions import db


def register_commands(app: Flask) -> None:
    from crm.demo_mail import register as register_demo_mail  # flask demo-mail send|reply|inbox

    register_demo_mail(app)

    @app.cli.command("seed-demo")
    @click.option("--force", is_flag=True, help="Seed even if the database already has users.")
    def seed_demo_command(force: bool):
        """Fill an empty database with a demo company (8 users, 300 contacts, 60 companies)."""
        from crm.demo_data import DEMO_PASSWORD, DEMO_USERS, demo_exists, seed_demo

        if demo_exists() and not force:
            click.echo("Database already has users: demo not seeded again.")
            return
        counts = seed_demo()
        click.echo(
            f"Demo seeded: {counts['users']} users, {counts['companies']} companies, "
            f"{counts['contacts']} contacts. Password for all: {DEMO_PASSWORD}"
        )
        for name, email, role, _team in DEMO_USERS:
            click.echo(f"  {role:<11} {email:<26} {name}")

    @app.cli.command("seed-scale")
    @click.option("--contacts", default=100_000, show_default=True)
    @click.option("--companies", default=10_000, show_default=True)
    @click.option("--deals", default=20_000, show_default=True)
    @click.option(
        "--activities",
        default=200_000,
        show_default=True,
        help="All timeline rows, the deals' own events included.",
    )
    @click.option("--users", default=50, show_default=True)
    @click.option("--agenda", default=50_000, show_default=True, help="Events and tasks together.")
    @click.option("--incidents", default=20_000, show_default=True, help="About two messages each.")
    @click.option(
        "--interventions",
        default=5_000,
        show_default=True,
        help="With the technicians' bookings, over six months back and ahead.",
    )
    @click.option("--seed", default=7, show_default=True, help="Same seed, same data.")
    def seed_scale_command(
        contacts, companies, deals, activities, users, agenda, incidents, interventions, seed
    ):
        """Fill an empty database with a large company, for `make bench` (bulk inserts)."""
        from crm.demo_data import DEMO_PASSWORD
        from crm.scale_data import (
            MANAGER_EMAIL,
            REP_EMAIL,
            DatabaseNotEmpty,
            ScaleSizes,
            seed_scale,
        )

        sizes = ScaleSizes(
            contacts=contacts,
            companies=companies,
            deals=deals,
            activities=activities,
            users=users,
            agenda=agenda,
            incidents=incidents,
            interventions=interventions,
        )
        click.echo(f"Seeding {db.engine.url.render_as_string(hide_password=True)} ...")
        try:
            report = seed_scale(sizes, seed=seed, progress=click.echo)
        except DatabaseNotEmpty as error:
            raise click.ClickException(str(error)) from None
        counts = ", ".join(f"{count:,} {name}" for name, count in report.counts.items())
        click.echo(f"Seeded in {report.total_seconds:.1f} s: {counts}.")
        click.echo(f"Sign in as {REP_EMAIL} or {MANAGER_EMAIL}, password {DEMO_PASSWORD}.")

    @app.cli.command("create-admin")
    @click.argument("email")
    @click.argument("name")
    @click.password_option()
    def create_admin_command(email: str, name: str, password: str):
        """Create an administrator account (first install without the demo)."""
        from crm.services import users

        user = users.invite_user(email, name, "admin")
        users.set_password(user, password)
        db.session.commit()
        click.echo(f"Administrator {user.email} created.")
