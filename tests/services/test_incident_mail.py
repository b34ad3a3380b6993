"""Replying to an incident sends an email from the support mailbox, in the incident's
thread, answering the customer's last message; through a real SMTP server (aiosmtpd)."""

import pytest
from sqlalchemy import func, select

from crm.extensions import db
from crm.models import Activity, EmailMessage, EmailThread, IncidentMessage, Mailbox
from crm.services import incidents, outbox
from crm.services.email_parsing import normalize_message_id
from tests.factories import make_company, make_contact, make_incident, make_user
from tests.smtp_server import Recorder, smtp_server


@pytest.fixture
def agent(ctx):
    return make_user(role="support", name="Alice Agent")


def _inbound(thread: EmailThread, message_id: str, **fields) -> EmailMessage:
    message = EmailMessage(
        direction="in",
        status="received",
        message_id=message_id,
        message_id_key=normalize_message_id(message_id),
        thread=thread,
        subject="Printer jammed",
        from_address="marie@radium.example",
        **fields,
    )
    db.session.add(message)
    db.session.flush()
    return message


def test_a_reply_goes_out_from_support_in_the_incident_thread(agent, as_role):
    recorder = Recorder()
    with smtp_server(recorder) as port:
        support = Mailbox(
            name="Support",
            address="support@crm.example",
            purpose="support",
            smtp_host="127.0.0.1",
            smtp_port=port,
            smtp_security="none",
        )
        db.session.add(support)
        contact = make_contact(
            "Marie", "Curie", email="marie@radium.example", company=make_company()
        )
        incident = make_incident(contact, subject="Printer jammed")
        thread = EmailThread(subject="Printer jammed", incident_id=incident.id)
        db.session.add(thread)
        first = _inbound(thread, "<c1@radium.example>")
        last = _inbound(
            thread,
            "<c2@radium.example>",
            in_reply_to="<c1@radium.example>",
            references="<c1@radium.example>",
        )
        db.session.commit()

        reply = incidents.add_message(agent, incident, "reply", "We are on it.")
        db.session.commit()
        mail = reply.email
        assert reply.email_status == "queued" and mail.status == "queued"
        assert mail.thread_id == thread.id and mail.incident_id == incident.id
        assert mail.subject == f"Re: Printer jammed [#{incident.id}]"
        assert mail.mailbox_id == support.id and mail.author_id == agent.id
        assert mail.in_reply_to == last.message_id
        assert mail.references == f"{first.message_id} {last.message_id}"
        assert outbox.deliver(mail.id) == "sent"

        # The incident page shows the reply's delivery.
        client, _ = as_role("support")
        page = client.get(f"/incidents/{incident.id}").text
        assert "message-reply" in page and ">sent</span>" in page
        assert f'href="/email/messages/{mail.id}"' in page

    sent = recorder.messages[0]
    assert sent["From"] == "Support <support@crm.example>"
    assert sent["To"] == "marie@radium.example"
    assert sent["Subject"] == f"Re: Printer jammed [#{incident.id}]"
    assert sent["Message-ID"] == mail.message_id
    assert sent["In-Reply-To"] == "<c2@radium.example>"
    assert sent["References"] == "<c1@radium.example> <c2@radium.example>"
    # One timeline entry for the reply: the email's.
    entries = db.session.scalars(
        select(Activity).where(Activity.incident_id == incident.id, Activity.kind == "email")
    ).all()
    assert [e.email_message_id for e in entries] == [mail.id]


def test_without_a_thread_one_is_made_for_the_incident(agent):
    contact = make_contact("Marie", "Curie", email="marie@radium.example")
    incident = make_incident(contact, subject="Phone call")
    reply = incidents.add_message(agent, incident, "reply", "As discussed.")
    db.session.commit()
    thread = db.session.get(EmailThread, reply.email.thread_id)
    assert thread.incident_id == incident.id and reply.email.in_reply_to is None
    assert reply.email.mailbox_id is None  # no support mailbox: the default sender
    again = incidents.add_message(agent, incident, "reply", "And one more thing.")
    db.session.commit()
    assert again.email.thread_id == thread.id
    assert db.session.scalar(select(func.count()).select_from(EmailThread)) == 1


def test_a_contact_without_address_keeps_the_reply_marked_not_sent(agent, as_role):
    contact = make_contact("Marie", "Curie", email=None)
    incident = make_incident(contact, subject="No mail")
    reply = incidents.add_message(agent, incident, "reply", "Called instead.")
    db.session.commit()
    assert reply.email_status == "no_address" and reply.email_message_id is None
    assert db.session.scalar(select(func.count()).select_from(EmailMessage)) == 0
    assert db.session.scalars(select(IncidentMessage)).one().body == "Called instead."
    client, _ = as_role("support")
    assert "not sent: no email address" in client.get(f"/incidents/{incident.id}").text
