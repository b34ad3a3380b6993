"""Routing of synced mail by the mailbox's purpose, end to end through a real Dovecot:
support mail opens or adds to incidents, sales mail from strangers becomes leads, and
each message says why it went where it went."""

import pytest
from sqlalchemy import func, select

from crm.extensions import db
from crm.models import (
    Activity,
    Contact,
    EmailMessage,
    Incident,
    IncidentMessage,
    Notification,
    Task,
)
from crm.services import incidents as incident_service
from crm.services.mail_routing import describe, split_name
from crm.services.mail_sync import sync_mailbox
from tests import mail_servers
from tests.factories import make_contact, make_team, make_user
from tests.mail_servers import append, build_message, make_mailbox

dovecot, imap_user = mail_servers.dovecot, mail_servers.imap_user
pytestmark = pytest.mark.usefixtures("ctx")


@pytest.fixture
def support(dovecot, imap_user):
    """The support mailbox of the support team, with two agents."""
    team = make_team("Support desk")
    agents = [make_user(role="support", name=f"Agent {n}", team=team) for n in (1, 2)]
    mailbox = make_mailbox(dovecot, imap_user, purpose="support", team=team)
    db.session.commit()
    return mailbox, agents


def _deliver_and_sync(dovecot, mailbox, raw: bytes) -> EmailMessage:
    append(dovecot, mailbox.imap_username, raw)
    result = sync_mailbox(mailbox.id)
    assert result.new == 1, result
    db.session.expire_all()
    return db.session.scalars(
        select(EmailMessage)
        .where(EmailMessage.mailbox_id == mailbox.id)
        .order_by(EmailMessage.id.desc())
        .limit(1)
    ).one()


def _count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def test_mail_to_support_from_a_stranger_opens_an_incident(dovecot, support):
    mailbox, agents = support
    raw = build_message(
        sender="Alice Martin <alice@customer.test>",
        to=mailbox.address,
        subject="Printer on fire",
        body="It smells of smoke.",
    )

    message = _deliver_and_sync(dovecot, mailbox, raw)

    incident = db.session.get(Incident, message.incident_id)
    assert (incident.subject, incident.channel, incident.status) == (
        "Printer on fire",
        "email",
        "new",
    )
    assert incident.description == "It smells of smoke."
    assert incident.team_id == mailbox.team_id and incident.assignee in agents
    assert incident.assignment_reason  # round robin says why
    contact = incident.contact
    assert (contact.first_name, contact.last_name, contact.email, contact.source) == (
        "Alice",
        "Martin",
        "alice@customer.test",
        "email",
    )
    assert message.thread.incident_id == incident.id and message.contact_id == contact.id
    assert message.routing == {
        "rule": "incident_opened",
        "incident_id": incident.id,
        "contact_id": contact.id,
        "contact_created": True,
    }
    assert describe(message.routing) == (
        f"Opened incident {incident.reference} (mail to the support mailbox from an unknown thread)"
    )
    email_entry = db.session.scalars(
        select(Activity).where(Activity.email_message_id == message.id)
    ).one()
    assert (email_entry.contact_id, email_entry.incident_id) == (contact.id, incident.id)


def test_a_reply_in_the_thread_goes_to_the_same_incident_and_reopens_it(dovecot, support):
    mailbox, _agents = support
    known = make_contact("Marie", "Curie", email="marie@customer.test")
    db.session.commit()
    first = _deliver_and_sync(
        dovecot,
        mailbox,
        build_message(
            sender="Marie <marie@customer.test>",
            subject="Broken screen",
            message_id="<m1@customer.test>",
        ),
    )
    incident = db.session.get(Incident, first.incident_id)
    assert incident.contact_id == known.id and first.routing["contact_created"] is False
    # The agent answered from the CRM (the outbox's row, in the same thread) and now waits.
    agent_reply = EmailMessage(
        mailbox_id=mailbox.id,
        thread_id=first.thread_id,
        direction="out",
        status="sent",
        message_id="<out-1@support.example.com>",
        message_id_key="out-1@support.example.com",
        subject=f"Re: Broken screen [#{incident.id}]",
        incident_id=incident.id,
    )
    db.session.add(agent_reply)
    incident_service.change_status(incident, "waiting")
    db.session.commit()
    assert incident.paused_at is not None

    # The customer's answer refers only to the agent's message.
    answer = _deliver_and_sync(
        dovecot,
        mailbox,
        build_message(
            sender="marie@customer.test",
            subject="Re: Broken screen",
            body="It works again, thanks.",
            in_reply_to="<out-1@support.example.com>",
            references="<m1@customer.test> <out-1@support.example.com>",
        ),
    )

    assert answer.thread_id == first.thread_id and answer.incident_id == incident.id
    assert _count(Incident) == 1
    incident = db.session.get(Incident, incident.id)
    assert incident.status == "open" and incident.paused_at is None  # the clock runs again
    inbound = db.session.scalars(select(IncidentMessage)).one()
    assert (inbound.incident_id, inbound.kind, inbound.email_message_id) == (
        incident.id,
        "inbound",
        answer.id,
    )
    assert inbound.body == "It works again, thanks."
    assert answer.routing == {
        "rule": "incident_reply",
        "incident_id": incident.id,
        "reopened_from": "waiting",
    }
    assert "open again" in describe(answer.routing)
    notice = db.session.scalars(select(Notification)).one()
    assert notice.user_id == incident.assignee_id and incident.reference in notice.title


def test_a_reply_to_a_closed_incident_opens_a_new_one(dovecot, support):
    mailbox, _agents = support
    first = _deliver_and_sync(
        dovecot, mailbox, build_message(subject="Old issue", message_id="<old@customer.test>")
    )
    old = db.session.get(Incident, first.incident_id)
    incident_service.change_status(old, "closed")
    db.session.commit()

    again = _deliver_and_sync(
        dovecot, mailbox, build_message(subject="Re: Old issue", in_reply_to="<old@customer.test>")
    )

    assert again.incident_id != old.id and _count(Incident) == 2
    assert again.thread.incident_id == again.incident_id
    assert again.routing["closed_incident_id"] == old.id
    assert f"#{old.id}" in describe(again.routing)


def test_the_reference_in_the_subject_finds_the_incident_for_its_own_customer_only(
    dovecot, support
):
    mailbox, _agents = support
    first = _deliver_and_sync(
        dovecot, mailbox, build_message(sender="alice@customer.test", subject="Invoice")
    )
    tag = f"[#{first.incident_id}]"

    # A client that dropped In-Reply-To and References, but kept the subject.
    same = _deliver_and_sync(
        dovecot, mailbox, build_message(sender="alice@customer.test", subject=f"Re: Invoice {tag}")
    )
    stranger = _deliver_and_sync(
        dovecot, mailbox, build_message(sender="eve@elsewhere.test", subject=f"Re: Invoice {tag}")
    )

    assert same.incident_id == first.incident_id and same.routing["rule"] == "incident_reply"
    assert stranger.incident_id != first.incident_id
    assert stranger.routing["rule"] == "incident_opened"


def test_auto_replies_and_bounces_open_nothing(dovecot, support):
    mailbox, _agents = support
    known = make_contact("Otto", "Office", email="otto@customer.test")
    db.session.commit()
    auto = _deliver_and_sync(
        dovecot,
        mailbox,
        build_message(
            sender="otto@customer.test",
            subject="Out of office",
            headers={"Auto-Submitted": "auto-replied"},
        ),
    )
    bounce = _deliver_and_sync(
        dovecot,
        mailbox,
        build_message(sender="MAILER-DAEMON@mx.customer.test", subject="Undelivered Mail"),
    )

    assert _count(Incident) == 0
    assert auto.routing == {"rule": "automatic", "purpose": "support"}
    assert bounce.routing["rule"] == "automatic"
    assert "automatic reply" in describe(auto.routing)
    # Still on the timeline of the known sender.
    assert auto.contact_id == known.id
    assert _count(Activity, Activity.email_message_id == auto.id) == 1


def test_mail_from_one_of_our_own_addresses_is_never_a_customer(dovecot, support, imap_user):
    mailbox, _agents = support
    make_mailbox(dovecot, "sales@ourcompany.test", purpose="sales")
    db.session.commit()

    message = _deliver_and_sync(
        dovecot, mailbox, build_message(sender="Sales <sales@ourcompany.test>", subject="Fwd: lead")
    )

    assert message.routing == {"rule": "own_address", "purpose": "support"}
    assert _count(Incident) == 0 and _count(Contact) == 0


def test_mail_to_sales_from_a_stranger_becomes_a_routed_lead_with_a_task(dovecot, imap_user):
    seller = make_user(role="sales", name="Sam Seller")
    mailbox = make_mailbox(dovecot, imap_user, purpose="sales")
    db.session.commit()

    message = _deliver_and_sync(
        dovecot,
        mailbox,
        build_message(
            sender="Bruno Lead <bruno@prospect.test>", subject="Quote please", body="100 chairs?"
        ),
    )

    lead = db.session.get(Contact, message.contact_id)
    assert (lead.first_name, lead.last_name, lead.email) == ("Bruno", "Lead", "bruno@prospect.test")
    assert (lead.stage, lead.source) == ("lead", "email")
    assert message.routing == {"rule": "new_lead", "purpose": "sales", "contact_id": lead.id}
    assert "New lead" in describe(message.routing)
    assert lead.owner_id == seller.id and lead.routing_reason
    assert db.session.scalars(select(Task).where(Task.assignee_id == seller.id)).first()
    note = db.session.scalars(
        select(Activity).where(Activity.contact_id == lead.id, Activity.kind == "note")
    ).one()
    assert note.body == "100 chairs?"
    assert _count(Activity, Activity.email_message_id == message.id) == 1


def test_mail_to_sales_from_a_known_contact_tells_its_owner(dovecot, imap_user):
    owner = make_user(role="sales", name="Olga Owner")
    customer = make_contact("Known", "Buyer", email="buyer@customer.test", owner=owner)
    mailbox = make_mailbox(dovecot, imap_user, purpose="sales")
    db.session.commit()

    message = _deliver_and_sync(
        dovecot, mailbox, build_message(sender="buyer@customer.test", subject="Another order")
    )

    assert message.contact_id == customer.id and _count(Contact) == 1
    assert message.routing == {
        "rule": "known_sender",
        "purpose": "sales",
        "contact_id": customer.id,
        "owner_notified": True,
    }
    notice = db.session.scalars(select(Notification)).one()
    assert notice.user_id == owner.id and "Another order" in notice.title
    assert "owner was notified" in describe(message.routing)


def test_personal_mailboxes_only_put_mail_on_the_timeline(dovecot, imap_user):
    owner = make_user(role="sales")
    known = make_contact("Paul", "Perso", email="paul@customer.test")
    mailbox = make_mailbox(dovecot, imap_user, purpose="personal", owner=owner)
    db.session.commit()

    message = _deliver_and_sync(dovecot, mailbox, build_message(sender="paul@customer.test"))

    assert message.routing == {"rule": "timeline_only", "purpose": "personal"}
    assert describe(message.routing) == "Kept on the timeline only (mail to a personal mailbox)"
    assert message.contact_id == known.id and _count(Incident) == 0 and _count(Contact) == 1


def test_names_are_split_from_the_from_header():
    assert split_name("Alice Martin") == ("Alice", "Martin")
    assert split_name("Martin, Alice") == ("Alice", "Martin")
    assert split_name("Jean Paul Sartre") == ("Jean", "Paul Sartre")
    assert split_name("alice@customer.test") == ("", "")
    assert split_name(None) == ("", "")
    assert describe(None) == ""
