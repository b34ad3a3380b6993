"""Flask commands: `flask seed-demo`, `flask create-admin`."""

import click
from flask import Flask

from crm.extensions import db


def register_commands(app: Flask) -> None:
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
