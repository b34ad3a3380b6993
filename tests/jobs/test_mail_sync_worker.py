"""The sync jobs on a real Redis and Dovecot: one job per mailbox, run by the worker
classes of worker.py; and a sync process killed with SIGKILL in the middle of a
message's transaction loses nothing and duplicates nothing when the sync runs again."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest
from flask import current_app
from rq import Queue
from sqlalchemy import func, select

from crm.extensions import db
from crm.jobs.mail_sync import job_id, request_sync, sync_all_mailboxes
from crm.models import EmailMessage, Mailbox
from crm.queues import redis_connection
from crm.services.mail_sync import sync_mailbox
from tests import mail_servers
from tests.mail_servers import append, build_message, make_mailbox
from worker import AppWorker, InProcessWorker, worker_connection

dovecot, imap_user = mail_servers.dovecot, mail_servers.imap_user
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _stored(mailbox_id: int) -> list[tuple[str, int]]:
    db.session.expire_all()
    rows = db.session.execute(
        select(EmailMessage.subject, EmailMessage.imap_uid)
        .where(EmailMessage.mailbox_id == mailbox_id)
        .order_by(EmailMessage.imap_uid)
    )
    return [tuple(row) for row in rows]


def test_sync_all_enqueues_one_job_per_active_mailbox_once(ctx, dovecot, imap_user):
    synced = make_mailbox(dovecot, imap_user, purpose="other")
    make_mailbox(dovecot, "off@example.com", active=False)
    db.session.add(Mailbox(name="Send only", address="sendonly@example.com"))
    db.session.commit()

    assert sync_all_mailboxes() == 1
    assert sync_all_mailboxes() == 1  # the job still waits: not enqueued twice
    queue = Queue("mail", connection=redis_connection())
    assert queue.job_ids == [job_id(synced.id)]
    assert request_sync(synced).id == job_id(synced.id) and queue.count == 1


@pytest.mark.parametrize(
    "worker_class", [InProcessWorker, AppWorker], ids=["in-process", "forking"]
)
def test_the_worker_runs_the_sync_job(app, ctx, dovecot, imap_user, worker_class):
    mailbox = make_mailbox(dovecot, imap_user, purpose="other")
    db.session.commit()
    for n in range(2):
        append(dovecot, imap_user, build_message(subject=f"Via worker {n}"))
    job = request_sync(mailbox)

    connection = worker_connection(app)
    worked = worker_class(
        [Queue("mail", connection=connection)], connection=connection, app=app
    ).work(burst=True)

    assert worked
    assert job.get_status(refresh=True) == "finished", job.latest_result()
    assert job.return_value()["new"] == 2
    assert [subject for subject, _uid in _stored(mailbox.id)] == ["Via worker 0", "Via worker 1"]
    # Finished: the next request is a new job, which finds nothing new.
    assert request_sync(mailbox).get_status() == "queued"


# The sync in a process of its own, made to stop inside the transaction of message number
# STOP_AT (stored and flushed, the watermark moved, not committed) until it is killed.
_SYNC_PROCESS = textwrap.dedent(
    """
    import os, signal, sys
    from sqlalchemy import event
    from sqlalchemy.orm import Session
    from crm import create_app
    from crm.config import TestConfig
    from crm.models import EmailMessage
    from crm.services.mail_sync import sync_mailbox

    stop_at = int(sys.argv[2])
    flushed = []

    @event.listens_for(Session, "after_flush")
    def count(session, context):
        flushed.extend(o for o in session.new if isinstance(o, EmailMessage))

    @event.listens_for(Session, "before_commit")
    def stop(session):
        if len(flushed) == stop_at:
            print("stopped", flush=True)
            signal.pause()  # until SIGKILL

    with create_app(TestConfig).app_context():
        print(sync_mailbox(int(sys.argv[1])), flush=True)
    """
)


def test_a_sync_killed_mid_message_loses_nothing_and_duplicates_nothing(
    ctx, dovecot, imap_user, monkeypatch
):
    mailbox = make_mailbox(dovecot, imap_user, purpose="support")
    db.session.commit()
    uids = [append(dovecot, imap_user, build_message(subject=f"Mail {n}")) for n in range(6)]

    process = subprocess.Popen(
        [sys.executable, "-c", _SYNC_PROCESS, str(mailbox.id), "4"],
        cwd=ROOT,
        env=os.environ.copy(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()  # waits for the process to reach its stop
        assert line.strip() == "stopped", process.stderr.read()
        # Three messages committed; the fourth is written but not committed.
        assert _stored(mailbox.id) == [(f"Mail {n}", uids[n]) for n in range(3)]
        assert db.session.get(Mailbox, mailbox.id).last_uid == uids[2]
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        process.stdout.close()
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL

    # The dead process still holds the mailbox until its claim is stale.
    assert sync_mailbox(mailbox.id).skipped == "busy"
    monkeypatch.setitem(current_app.config, "MAIL_SYNC_CLAIM_SECONDS", 0)
    rerun = sync_mailbox(mailbox.id)

    assert (rerun.new, rerun.duplicates, rerun.quarantined) == (3, 0, 0)
    assert _stored(mailbox.id) == [(f"Mail {n}", uids[n]) for n in range(6)]
    assert db.session.scalar(select(func.count()).select_from(EmailMessage)) == 6
    mailbox = db.session.get(Mailbox, mailbox.id)
    assert mailbox.last_uid == uids[-1] and mailbox.sync_started_at is None
