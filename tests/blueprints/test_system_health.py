"""The System page: workers, queue counts, failed jobs with Retry (RQ's FailedJobRegistry
requeue) and Delete, the periodic jobs, and each mailbox's last sync."""

import json

import pytest
from rq import Queue
from rq.registry import FailedJobRegistry

from crm.extensions import db
from crm.models import Mailbox
from crm.models.types import utcnow
from crm.queues import redis_connection
from tests.conftest import htmx_headers
from worker import InProcessWorker, worker_connection

FIXED_KEY = "crm:test:printer-fixed"


def print_invoice(number: int) -> str:
    """A job that fails until the printer is fixed (a key in Redis), as a real job would
    fail on a server that is down, then works when retried."""
    from crm.queues import redis_connection

    if not redis_connection().get(FIXED_KEY):
        raise ConnectionError(f"printer offline while printing invoice {number}")
    return f"printed {number}"


def run_jobs(app, name: str = "default") -> None:
    connection = worker_connection(app)
    InProcessWorker([Queue(name, connection=connection)], connection=connection, app=app).work(
        burst=True
    )


@pytest.mark.parametrize(
    ("role", "status"),
    [("admin", 200), ("manager", 403), ("sales", 403), ("support", 403), ("technician", 403)],
)
def test_only_admins_see_the_system_page(as_role, role, status):
    client, _user = as_role(role)
    assert client.get("/admin/system").status_code == status
    assert client.post("/admin/system/jobs/x/retry").status_code == (404 if status == 200 else 403)


def test_a_failed_job_appears_and_retry_requeues_it(app, as_role):
    client, _user = as_role("admin")
    connection = worker_connection(app)
    job = Queue("default", connection=connection).enqueue(print_invoice, 42)
    run_jobs(app)
    assert job.get_status(refresh=True) == "failed"

    page = client.get("/admin/system").text
    assert "tests.blueprints.test_system_health.print_invoice" in page
    # The last line of the traceback, not the whole of it.
    assert "ConnectionError: printer offline while printing invoice 42" in page
    assert "Traceback" not in page
    assert 'id="queue-default"' in page

    connection.set(FIXED_KEY, "1")
    answer = client.post(
        f"/admin/system/jobs/{job.id}/retry", headers=htmx_headers("section#failed-jobs")
    )
    assert answer.status_code == 200
    assert json.loads(answer.headers["HX-Trigger"])["crm:toast"]["message"] == (
        "The job is queued again."
    )
    assert "print_invoice" not in answer.text  # no longer failed
    assert 'hx-target="#system-counts"' in answer.text  # the counts refreshed beside it
    assert job.get_status(refresh=True) == "queued"
    assert FailedJobRegistry("default", connection=connection).count == 0

    run_jobs(app)
    assert job.get_status(refresh=True) == "finished"
    assert job.return_value() == "printed 42"
    # Retrying again: it is no longer a failed job.
    again = client.post(f"/admin/system/jobs/{job.id}/retry", headers=htmx_headers())
    assert again.status_code == 404


def test_delete_removes_a_failed_job(app, as_role):
    client, _user = as_role("admin")
    connection = worker_connection(app)
    job = Queue("default", connection=connection).enqueue(print_invoice, 7)
    run_jobs(app)
    answer = client.post(f"/admin/system/jobs/{job.id}/delete")
    assert answer.status_code == 303
    assert FailedJobRegistry("default", connection=connection).count == 0
    assert connection.exists(job.key) == 0
    assert "print_invoice" not in client.get("/admin/system").text


def test_counts_poll_as_a_fragment(app, as_role):
    client, _user = as_role("admin")
    connection = worker_connection(app)
    Queue("mail", connection=connection).enqueue(print_invoice, 1)
    answer = client.get("/admin/system", headers=htmx_headers("section#system-counts"))
    assert answer.status_code == 200
    assert "<html" not in answer.text and 'hx-trigger="every 5s"' in answer.text
    row = answer.text.split('id="queue-mail"')[1].split("</tr>")[0]
    assert '<td class="num">1</td>' in row


def test_periodic_jobs_and_mailbox_sync_states(app, as_role):
    client, _user = as_role("admin")
    db.session.add_all(
        [
            Mailbox(
                name="Sales",
                address="sales@example.com",
                purpose="sales",
                imap_host="imap.example.com",
                last_sync_error="LOGIN failed",
                last_sync_error_at=utcnow(),
            ),
            Mailbox(
                name="Support",
                address="support@example.com",
                purpose="support",
                imap_host="imap.example.com",
                last_sync_at=utcnow(),
            ),
        ]
    )
    db.session.commit()
    page = client.get("/admin/system").text
    assert "crm.jobs.mail_sync.sync_all_mailboxes" in page
    assert "crm.jobs.reminders.sweep_reminders" in page
    assert "sales@example.com" in page and "LOGIN failed" in page
    assert "No worker is running" in page  # none in this test
    support = db.session.scalars(db.select(Mailbox).filter_by(purpose="support")).one()
    answer = client.post(f"/admin/system/mailboxes/{support.id}/sync", headers=htmx_headers())
    assert answer.status_code == 204
    assert [job.args for job in Queue("mail", connection=redis_connection()).jobs] == [
        (support.id,)
    ]
