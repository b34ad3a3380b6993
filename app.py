"""Entry point: `flask --app app run`, `gunicorn app:app`."""

from crm import create_app

app = create_app()
