"""The IMAP sync against a real Dovecot: watermark, dedup, UIDVALIDITY, quarantine, \\Seen,
threading, the claim, and connection errors."""

import pytest
from flask import current_app
from sqlalchemy import func, select

from crm.extensions import db
from crm.models import (
    Activity,
    EmailAttachment,
    EmailMessage,
    EmailThread,
    Mailbox,
    QuarantinedEmail,
)
from crm.models.types import utcnow
from crm.services.mail_sync import claim, sync_mailbox
from tests import mail_servers
from tests.factories import make_contact, make_user
from tests.mail_servers import append, build_message, change_uidvalidity, make_mailbox

# The session's Dovecot and a fresh mailbox user per test (pytest fixtures).
dovecot, imap_user = mail_servers.dovecot, mail_servers.imap_user

pytestmark = pytest.mark.usefixtures("ctx")


def _count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def _messages(mailbox) -> list[EmailMessage]:
    db.session.expire_all()
    return list(
        db.session.scalars(
            select(EmailMessage)
            .where(EmailMessage.mailbox_id == mailbox.id)
            .order_by(EmailMessage.id)
        )
    )


def _mailbox(dovecot, imap_user, **fields) -> Mailbox:
    fields.setdefault("purpose", "other")
    mailbox = make_mailbox(dovecot, imap_user, **fields)
    db.session.commit()
    return mailbox


def test_sync_twice_stores_each_message_once_and_keeps_the_watermark(
    dovecot, imap_user, monkeypatch
):
    monkeypatch.setitem(current_app.config, "MAIL_SYNC_BATCH", 2)  # two fetches, claim renewed
    mailbox = _mailbox(dovecot, imap_user)
    uids = [append(dovecot, imap_user, build_message(subject=f"Hello {n}")) for n in range(3)]

    first = sync_mailbox(mailbox.id)
    second = sync_mailbox(mailbox.id)

    assert (first.new, first.duplicates, first.quarantined) == (3, 0, 0)
    assert (second.new, second.duplicates, second.quarantined) == (0, 0, 0)
    messages = _messages(mailbox)
    assert [m.subject for m in messages] == ["Hello 0", "Hello 1", "Hello 2"]
    assert [m.imap_uid for m in messages] == uids
    assert {(m.direction, m.status, m.privacy) for m in messages} == {("in", "received", "public")}
    db.session.refresh(mailbox)
    assert mailbox.last_uid == uids[-1]
    assert mailbox.uidvalidity == dovecot.uidvalidity(imap_user)
    assert mailbox.last_sync_at is not None and mailbox.sync_started_at is None
    assert mailbox.last_sync_error is None

    later = append(dovecot, imap_user, build_message(subject="Later"))
    third = sync_mailbox(mailbox.id)
    assert third.new == 1 and _messages(mailbox)[-1].imap_uid == later


def test_the_same_message_id_delivered_twice_is_one_row(dovecot, imap_user):
    mailbox = _mailbox(dovecot, imap_user)
    raw = build_message(subject="Copy", message_id="<same@customer.test>")
    append(dovecot, imap_user, raw)
    append(dovecot, imap_user, raw.replace(b"Subject: Copy", b"Subject: Copy again"))

    result = sync_mailbox(mailbox.id)

    assert (result.new, result.duplicates) == (1, 1)
    (message,) = _messages(mailbox)
    assert message.message_id_key == "same@customer.test"


def test_the_seen_flag_is_never_set_nor_needed(dovecot, imap_user):
    mailbox = _mailbox(dovecot, imap_user)
    unread = append(dovecot, imap_user, build_message(subject="Unread"))
    read = append(dovecot, imap_user, build_message(subject="Already read"), flags=[b"\\Seen"])

    assert sync_mailbox(mailbox.id).new == 2

    client = dovecot.client(imap_user)
    try:
        client.select_folder("INBOX", readonly=True)
        flags = client.get_flags([unread, read])
    finally:
        client.logout()
    assert b"\\Seen" not in flags[unread]
    assert b"\\Seen" in flags[read]


def test_a_uidvalidity_change_resyncs_without_duplicates(dovecot, imap_user):
    mailbox = _mailbox(dovecot, imap_user)
    for n in range(3):
        append(dovecot, imap_user, build_message(subject=f"Before {n}"))
    assert sync_mailbox(mailbox.id).new == 3
    old_validity = db.session.get(Mailbox, mailbox.id).uidvalidity

    new_validity = change_uidvalidity(dovecot, imap_user)
    append(dovecot, imap_user, build_message(subject="After"))
    result = sync_mailbox(mailbox.id)

    assert result.resynced
    assert (result.new, result.duplicates, result.quarantined) == (1, 3, 0)
    messages = _messages(mailbox)
    assert [m.subject for m in messages] == ["Before 0", "Before 1", "Before 2", "After"]
    assert {m.imap_uidvalidity for m in messages} == {new_validity} != {old_validity}
    assert db.session.get(Mailbox, mailbox.id).uidvalidity == new_validity


def test_a_malformed_message_is_quarantined_and_the_next_ones_still_sync(dovecot, imap_user):
    mailbox = _mailbox(dovecot, imap_user)
    append(dovecot, imap_user, build_message(subject="First"))
    garbage = b"this is not a mail: no header at all \xff\xfe"
    bad_uid = append(dovecot, imap_user, garbage)
    append(dovecot, imap_user, build_message(subject="Third"))

    result = sync_mailbox(mailbox.id)

    assert (result.new, result.quarantined) == (2, 1)
    assert [m.subject for m in _messages(mailbox)] == ["First", "Third"]
    (quarantined,) = db.session.scalars(select(QuarantinedEmail)).all()
    assert quarantined.mailbox_id == mailbox.id and quarantined.imap_uid == bad_uid
    assert quarantined.raw.rstrip(b"\r\n") == garbage
    assert "UnreadableMessage" in quarantined.error
    assert db.session.get(Mailbox, mailbox.id).last_uid == bad_uid + 1

    # Read again after a UIDVALIDITY change: still one quarantined row, no new message.
    change_uidvalidity(dovecot, imap_user)
    again = sync_mailbox(mailbox.id)
    assert (again.new, again.duplicates, again.quarantined) == (0, 2, 1)
    assert _count(QuarantinedEmail) == 1


def test_a_reply_threads_by_in_reply_to_and_references(dovecot, imap_user):
    mailbox = _mailbox(dovecot, imap_user)
    append(dovecot, imap_user, build_message(subject="Question", message_id="<q1@customer.test>"))
    append(dovecot, imap_user, build_message(subject="Unrelated", message_id="<u1@customer.test>"))
    # The reply's subject says nothing: only its headers tie it to the question.
    append(
        dovecot,
        imap_user,
        build_message(
            subject="Other words", in_reply_to="<q1@CUSTOMER.test>", message_id="<r1@x.test>"
        ),
    )
    append(
        dovecot,
        imap_user,
        build_message(
            subject="Third",
            references="<unknown@nowhere.test> <q1@customer.test> <r1@x.test>",
            message_id="<r2@x.test>",
        ),
    )

    sync_mailbox(mailbox.id)

    question, unrelated, reply, third = _messages(mailbox)
    assert question.thread_id == reply.thread_id == third.thread_id
    assert unrelated.thread_id != question.thread_id
    thread = db.session.get(EmailThread, question.thread_id)
    assert thread.subject == "Question"
    assert thread.last_message_at == max(question.sent_at, reply.sent_at, third.sent_at)


def test_messages_land_on_the_timeline_of_known_contacts(dovecot, imap_user):
    owner = make_user(role="sales")
    mailbox = _mailbox(dovecot, imap_user, purpose="personal", owner=owner)
    alice = make_contact("Alice", "Martin", email="Alice@Customer.test")
    colleague = make_contact("Carl", "Cc", email="carl@customer.test")
    erased = make_contact("Gone", "Person", email="gone@customer.test", erased_at=utcnow())
    db.session.commit()
    raw = build_message(
        sender="Alice Martin <alice@customer.test>",
        to=f"{imap_user}, gone@customer.test",
        headers={"Cc": "carl@customer.test"},
    )
    append(dovecot, imap_user, raw)

    sync_mailbox(mailbox.id)
    sync_mailbox(mailbox.id)

    (message,) = _messages(mailbox)
    assert message.contact_id == alice.id
    assert (message.privacy, message.owner_id) == ("team", owner.id)
    entries = db.session.scalars(
        select(Activity).where(Activity.email_message_id == message.id)
    ).all()
    assert sorted(a.contact_id for a in entries) == sorted([alice.id, colleague.id])
    assert erased.id not in {a.contact_id for a in entries}
    assert {a.kind for a in entries} == {"email"}
    assert entries[0].subject == "Hello" and entries[0].body == message.snippet


def test_attachments_are_stored_with_the_message(dovecot, imap_user):
    from email.message import EmailMessage as Mime
    from email.policy import SMTP

    mailbox = _mailbox(dovecot, imap_user)
    mime = Mime()
    mime["From"] = "a@customer.test"
    mime["Subject"] = "Invoice"
    mime.set_content("Attached.")
    mime.add_attachment(
        b"%PDF-1.4 invoice", maintype="application", subtype="pdf", filename="invoice.pdf"
    )
    append(dovecot, imap_user, mime.as_bytes(policy=SMTP))

    sync_mailbox(mailbox.id)

    (attachment,) = db.session.scalars(select(EmailAttachment)).all()
    assert (attachment.filename, attachment.content_type, attachment.size) == (
        "invoice.pdf",
        "application/pdf",
        16,
    )
    assert attachment.content == b"%PDF-1.4 invoice"


def test_a_mailbox_being_synced_is_not_synced_by_a_second_worker(dovecot, imap_user, monkeypatch):
    mailbox = _mailbox(dovecot, imap_user)
    append(dovecot, imap_user, build_message())
    assert claim(mailbox.id) is not None  # another worker holds it

    assert sync_mailbox(mailbox.id).skipped == "busy"
    assert _count(EmailMessage) == 0

    # Past MAIL_SYNC_CLAIM_SECONDS the holder counts as dead and the mailbox is taken over.
    monkeypatch.setitem(current_app.config, "MAIL_SYNC_CLAIM_SECONDS", 0)
    assert sync_mailbox(mailbox.id).new == 1


def test_connection_and_login_errors_are_recorded_on_the_mailbox(dovecot, imap_user):
    from crm.services import secrets_box

    mailbox = _mailbox(dovecot, imap_user)
    mailbox.imap_password = secrets_box.encrypt("mail", "wrong password")
    db.session.commit()

    result = sync_mailbox(mailbox.id)

    db.session.refresh(mailbox)
    assert result.error and "IMAP error" in result.error
    assert mailbox.last_sync_error == result.error and mailbox.last_sync_error_at is not None
    assert mailbox.sync_started_at is None and mailbox.last_sync_at is None

    mailbox.imap_password = secrets_box.encrypt("mail", dovecot.password)
    db.session.commit()
    assert sync_mailbox(mailbox.id).error is None
    db.session.refresh(mailbox)
    assert mailbox.last_sync_error is None and mailbox.last_sync_error_at is None
    assert mailbox.last_sync_at is not None

    from crm.devmail import free_port

    mailbox.imap_port = free_port()  # nobody listens there
    db.session.commit()
    refused = sync_mailbox(mailbox.id)
    assert refused.error.startswith("Cannot connect")


def test_inactive_and_unconfigured_mailboxes_are_left_alone(dovecot, imap_user):
    mailbox = _mailbox(dovecot, imap_user, active=False)
    append(dovecot, imap_user, build_message())
    assert sync_mailbox(mailbox.id).skipped == "inactive"
    other = Mailbox(name="No IMAP", address="noimap@example.com")
    db.session.add(other)
    db.session.commit()
    assert sync_mailbox(other.id).skipped == "not configured"
    assert _count(EmailMessage) == 0


def test_timeline_links_are_idempotent_and_reach_companies_by_their_own_address():
    from crm.services.email_threading import attach_to_thread
    from crm.services.email_timeline import link_known_records
    from tests.factories import make_company

    author = make_user(role="sales")
    acme = make_company("Acme", email="Contact@Acme.test")
    buyer = make_contact("Bea", "Buyer", email="bea@acme.test", company=acme)
    other = make_company("Other", email="hello@other.test")
    db.session.add(Mailbox(name="Sales", address="sales@ourcompany.test"))
    message = EmailMessage(
        direction="out",
        status="queued",
        message_id="<out-7@ourcompany.test>",
        message_id_key="out-7@ourcompany.test",
        subject="Our offer",
        snippet="Please find our offer",
        from_address="sales@ourcompany.test",
        to_addresses=["Bea <BEA@acme.test>", "contact@acme.test"],
        cc_addresses=["hello@other.test", "sales@ourcompany.test"],
        author=author,
    )
    db.session.add(message)
    attach_to_thread(message)

    added = link_known_records(message)
    again = link_known_records(message)

    assert again == []
    assert message.contact == buyer and message.company == acme
    assert message.thread.contact_id == buyer.id
    # Bea (with Acme: Acme needs no entry of its own), and Other by its own address.
    assert [(a.contact_id, a.company_id) for a in added] == [(buyer.id, acme.id), (None, other.id)]
    assert {(a.kind, a.author_id, a.subject, a.body) for a in added} == {
        ("email", author.id, "Our offer", "Please find our offer")
    }
