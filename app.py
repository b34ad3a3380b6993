"""Entry point: `flask --app app run`, `gunicorn app:app`."""

import gc

from crm import create_app

app = create_app()

# What is alive now (modules, models, templates, the app) lives as long as the process: a
# full garbage collection need not walk it again on every request. Without this, a full
# collection in a request walks some hundred thousand such objects (p95 of the team agenda
# 150 ms of CPU, 41 ms with it).
gc.freeze()
