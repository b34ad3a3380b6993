"""The outbox against a real SMTP server (aiosmtpd) and the suite's real Redis:

- 451 then 250: queued again with a wait, then sent with the same Message-ID;
- 550: failed with a clear message, and the author notified;
- the sweeper never sends a sent message again;
- a row left "sending" by a worker that died is sent again, same Message-ID;
- attachments, threading headers and the open-tracking pixel arrive;
- the send job is enqueued after the commit, never for a rolled-back row.
"""

from datetime import timedelta

import pytest
from rq import Queue
from rq.job import Job
from sqlalchemy import select, update

from crm.extensions import db
from crm.jobs import outbox as outbox_jobs
from crm.models import Activity, EmailMessage, Mailbox, Notification
from crm.models.types import utcnow
from crm.queues import redis_connection
from crm.services import outbox
from tests.factories import make_company, make_contact, make_user
from tests.smtp_server import Recorder, smtp_server


@pytest.fixture
def author(ctx):
    return make_user(role="sales", name="Sam Sales", email="sam@example.com")


@pytest.fixture
def customer(ctx):
    return make_contact("Marie", "Curie", email="marie@radium.example", company=make_company())


def _mailbox(port: int, **fields) -> Mailbox:
    fields.setdefault("name", "Sales")
    fields.setdefault("address", "sales@crm.example")
    mailbox = Mailbox(smtp_host="127.0.0.1", smtp_port=port, smtp_security="none", **fields)
    db.session.add(mailbox)
    db.session.flush()
    return mailbox


def _queue(author, mailbox, customer, **extra) -> EmailMessage:
    extra.setdefault("subject", "Your quote")
    extra.setdefault("text", "Hello Marie,\n\nHere it is.")
    message = outbox.queue_message(
        author,
        mailbox,
        [customer.email],
        extra.pop("cc", []),
        extra.pop("subject"),
        extra.pop("text"),
        contact=customer,
        **extra,
    )
    db.session.commit()
    return message


def _row(message_id: int) -> EmailMessage:
    db.session.expire_all()
    return db.session.get(EmailMessage, message_id)


def _make_due(message_id: int, ago: timedelta = timedelta(seconds=1)) -> None:
    db.session.execute(
        update(EmailMessage)
        .where(EmailMessage.id == message_id)
        .values(next_attempt_at=utcnow() - ago)
    )
    db.session.commit()


def _job_waiting(message_id: int) -> bool:
    return outbox_jobs.job_id(message_id) in Queue("mail", connection=redis_connection()).job_ids


def test_a_temporary_refusal_is_retried_later_with_the_same_message_id(author, customer):
    recorder = Recorder(replies=["451 4.3.0 Try again later"])
    with smtp_server(recorder) as port:
        message = _queue(author, _mailbox(port), customer)
        assert message.status == "queued" and message.direction == "out"
        assert message.message_id.startswith("<out-") and message.message_id.endswith(
            "@crm.example>"
        )

        assert outbox.deliver(message.id).startswith("retry in 1 min")
        row = _row(message.id)
        assert row.status == "queued" and row.attempts == 1
        assert "451" in row.last_error
        assert timedelta(seconds=50) < row.next_attempt_at - utcnow() <= timedelta(minutes=1)
        # Not due yet: a job that comes early claims nothing.
        assert outbox.deliver(message.id) == "not claimed"

        _make_due(message.id)
        assert outbox.deliver(message.id) == "sent"
    row = _row(message.id)
    assert row.status == "sent" and row.attempts == 2 and row.delivered_at is not None
    assert row.last_error is None
    assert [m["Message-ID"] for m in recorder.refused] == [row.message_id]
    assert recorder.message_ids() == [row.message_id]
    sent = recorder.messages[0]
    assert sent["From"] == "Sales <sales@crm.example>"
    assert sent["To"] == "marie@radium.example"
    assert sent["Auto-Submitted"] is None  # written by a person: replies are welcome


def test_the_waits_grow_and_the_last_try_fails(author, customer, data_app, monkeypatch):
    monkeypatch.setitem(data_app.config, "OUTBOX_MAX_ATTEMPTS", 3)
    recorder = Recorder(replies=["421 4.7.0 Busy"] * 3)
    with smtp_server(recorder) as port:
        message = _queue(author, _mailbox(port), customer)
        waits = []
        for _attempt in range(3):
            _make_due(message.id)
            waits.append(outbox.deliver(message.id))
    assert waits[0].startswith("retry in 1 min") and waits[1].startswith("retry in 5 min")
    row = _row(message.id)
    assert row.status == "failed" and row.attempts == 3
    assert row.last_error.startswith("No server took the message after 3 tries")
    assert recorder.messages == []


def test_a_permanent_refusal_fails_with_a_clear_message_and_notifies_the_author(author, customer):
    recorder = Recorder(replies=["550 5.1.1 No such user here"])
    with smtp_server(recorder) as port:
        message = _queue(author, _mailbox(port), customer)
        assert outbox.deliver(message.id).startswith("failed")
        row = _row(message.id)
        assert row.status == "failed" and row.attempts == 1
        assert row.last_error == "The server refused the message: 550 5.1.1 No such user here"
        notice = db.session.scalars(select(Notification)).one()
        assert notice.user_id == author.id and notice.kind == "email_failed"
        assert notice.title == "Your email could not be sent: Your quote"
        assert notice.url == f"/email/messages/{message.id}"
        # Failed is final: neither a job nor the sweeper sends it.
        assert outbox.deliver(message.id) == "not claimed"
        assert outbox_jobs.sweep_outbox() == 0
    assert recorder.messages == []


def test_the_sweeper_never_sends_a_sent_message_again(author, customer):
    recorder = Recorder()
    with smtp_server(recorder) as port:
        message = _queue(author, _mailbox(port), customer)
        assert _job_waiting(message.id)  # enqueued by the commit
        assert outbox_jobs.send_email(message.id) == "sent"
        # Even with its next try long past and its job gone, a sent row stays sent.
        _make_due(message.id, timedelta(hours=1))
        Queue("mail", connection=redis_connection()).empty()
        assert outbox_jobs.sweep_outbox() == 0
        assert not _job_waiting(message.id)
        assert outbox_jobs.send_email(message.id) == "not claimed"
    assert len(recorder.messages) == 1


def test_a_message_left_sending_by_a_dead_worker_goes_again_with_the_same_message_id(
    author, customer
):
    recorder = Recorder()
    with smtp_server(recorder) as port:
        message = _queue(author, _mailbox(port), customer)
        # A worker claimed it and died (kill -9) before recording anything.
        assert outbox.claim(message.id) == 1
        Queue("mail", connection=redis_connection()).empty()
        assert outbox_jobs.sweep_outbox() == 0  # a live worker may still be at it
        assert outbox.deliver(message.id) == "not claimed"

        _make_due(message.id, timedelta(minutes=11))
        assert outbox_jobs.sweep_outbox() == 1
        job = Job.fetch(outbox_jobs.job_id(message.id), connection=redis_connection())
        assert job.perform() == "sent"
    row = _row(message.id)
    assert row.status == "sent" and row.attempts == 2
    assert recorder.message_ids() == [row.message_id]


def test_attachments_thread_headers_and_the_pixel_arrive(author, customer, data_app):
    recorder = Recorder()
    with smtp_server(recorder) as port:
        mailbox = _mailbox(port)
        first = _queue(author, mailbox, customer, subject="Quote")
        pdf = b"%PDF-1.4 quote" * 100
        reply = _queue(
            author,
            mailbox,
            customer,
            subject="Re: Quote",
            text="And the terms.",
            cc=["boss@radium.example"],
            attachments=[outbox.Attachment("terms.pdf", "application/pdf", pdf)],
            in_reply_to=first,
            track_opens=True,
        )
        assert reply.thread_id == first.thread_id
        assert outbox.deliver(reply.id) == "sent"
    sent = recorder.messages[0]
    assert sent["In-Reply-To"] == first.message_id
    assert sent["References"] == first.message_id
    assert sent["Cc"] == "boss@radium.example"
    assert set(recorder.envelopes[0].rcpt_tos) == {"marie@radium.example", "boss@radium.example"}
    parts = {part.get_content_type(): part for part in sent.walk()}
    assert parts["application/pdf"].get_filename() == "terms.pdf"
    assert parts["application/pdf"].get_payload(decode=True) == pdf
    html = parts["text/html"].get_payload(decode=True).decode()
    base = data_app.config["BASE_URL"].rstrip("/")
    assert f'<img src="{base}/email/t/{reply.tracking_token}.gif"' in html
    assert "And the terms." in parts["text/plain"].get_payload(decode=True).decode()


def test_without_a_mailbox_the_default_sender_is_used(author, customer, data_app, monkeypatch):
    recorder = Recorder()
    with smtp_server(recorder) as port:
        monkeypatch.setitem(data_app.config, "SMTP_HOST", "127.0.0.1")
        monkeypatch.setitem(data_app.config, "SMTP_PORT", port)
        monkeypatch.setitem(data_app.config, "SMTP_STARTTLS", False)
        monkeypatch.setitem(data_app.config, "MAIL_FROM", "CRM <crm@example.org>")
        message = _queue(author, None, customer)
        assert message.privacy == "public"
        assert outbox.deliver(message.id) == "sent"
    assert recorder.messages[0]["From"] == "Sam Sales <crm@example.org>"
    assert recorder.message_ids() == [message.message_id]


def test_the_job_is_enqueued_after_the_commit_and_never_for_a_rollback(author, customer):
    mailbox = _mailbox(25)
    message = outbox.queue_message(author, mailbox, [customer.email], [], "Hi", "Hello")
    message_id = message.id
    assert not _job_waiting(message_id)
    db.session.rollback()
    assert not _job_waiting(message_id)
    message = outbox.queue_message(author, mailbox, [customer.email], [], "Hi", "Hello")
    assert not _job_waiting(message.id)
    db.session.commit()
    assert _job_waiting(message.id)


def test_gaps_and_missing_recipients_are_refused(author, customer, data_app):
    with (
        data_app.test_request_context(),
        pytest.raises(outbox.OutboxRefused, match="contact.first_name"),
    ):
        outbox.queue_message(
            author, None, [customer.email], [], "Hi", "Hello {{contact.first_name}}"
        )
    with pytest.raises(outbox.OutboxRefused):
        outbox.queue_message(author, None, [" "], [], "Hi", "Hello")


def test_privacy_follows_the_mailbox_and_the_timeline_gets_an_entry(author, customer):
    own = Mailbox(name="Sam", address="sam@crm.example", owner=author)
    db.session.add(own)
    message = _queue(author, own, customer)
    assert message.privacy == "team" and message.owner_id == author.id
    entry = db.session.scalars(
        select(Activity).where(Activity.email_message_id == message.id)
    ).one()
    assert entry.kind == "email" and entry.contact_id == customer.id
    assert entry.subject == "Your quote"


def test_the_pixel_counts_opens_of_tracked_messages_only(author, customer):
    tracked = _queue(author, None, customer, track_opens=True)
    untracked = _queue(author, None, customer)
    assert untracked.tracking_token is None
    assert outbox.record_open(tracked.tracking_token)
    assert outbox.record_open(tracked.tracking_token)
    assert not outbox.record_open("unknown")
    db.session.commit()
    row = _row(tracked.id)
    assert row.open_count == 2 and row.first_opened_at <= row.last_opened_at
