"""Incident services: creating, changing status, the conversation on the timeline, canned
responses with their gaps, and a complaint's follow-up task and deal."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from crm.extensions import db
from crm.models import Activity, Deal, EmailTemplate, Notification, Task
from crm.services import canned_responses
from crm.services import incidents as service
from tests.factories import (
    make_company,
    make_contact,
    make_incident,
    make_pipeline,
    make_user,
)


@pytest.fixture
def agent(ctx):
    return make_user(role="support", name="Alice Agent")


@pytest.fixture
def customer(ctx):
    owner = make_user(role="sales", name="Sam Sales", timezone="Europe/Paris")
    return make_contact("Marie", "Curie", owner=owner, company=make_company("Radium SA"))


def test_creating_starts_the_clock_and_records_on_the_timeline(agent, customer):
    incident = service.create_incident(
        agent, subject="  Printer on fire ", kind="technical", priority="urgent", contact=customer
    )
    db.session.flush()
    assert incident.subject == "Printer on fire" and incident.subject_key == "printer on fire"
    assert incident.company == customer.company and incident.created_by == agent
    assert incident.status == "new"
    entry = db.session.scalars(select(Activity).where(Activity.incident_id == incident.id)).one()
    assert entry.kind == "system" and entry.data["event"] == "incident_created"
    assert entry.contact == customer and entry.company == customer.company


def test_status_changes_keep_resolved_and_closed_times(agent, customer):
    incident = make_incident(customer, status="open")
    assert service.change_status(incident, "resolved")
    assert incident.resolved_at is not None and incident.closed_at is None
    assert service.change_status(incident, "closed")
    assert incident.closed_at is not None
    assert service.change_status(incident, "open")  # reopened
    assert incident.resolved_at is None and incident.closed_at is None
    assert not service.change_status(incident, "open")
    with pytest.raises(service.IncidentRefused):
        service.change_status(incident, "lost")


def test_a_reply_opens_the_incident_and_goes_on_the_timeline_as_an_email(agent, customer):
    incident = make_incident(customer, subject="Invoice wrong")
    message = service.add_message(agent, incident, "reply", "  We are on it. ")
    db.session.flush()
    # Queued as an email to the contact (crm/services/incident_mail.py), on the timeline as such.
    assert message.kind == "reply" and message.email_status == "queued"
    assert message.body == "We are on it."
    assert incident.status == "open"
    entry = db.session.scalars(select(Activity).where(Activity.incident_id == incident.id)).one()
    assert (entry.kind, entry.subject, entry.body) == (
        "email",
        f"Re: Invoice wrong [#{incident.id}]",
        "We are on it.",
    )
    assert entry.email_message_id == message.email_message_id
    assert entry.contact == customer and entry.company == customer.company


def test_a_note_is_internal_and_goes_on_the_timeline_as_a_note(agent, customer):
    incident = make_incident(customer, status="waiting")
    message = service.add_message(agent, incident, "note", "Called the warehouse")
    db.session.flush()
    assert message.email_status is None
    assert incident.status == "waiting"  # a note does not reopen what waits on the customer
    entry = db.session.scalars(select(Activity).where(Activity.incident_id == incident.id)).one()
    assert (entry.kind, entry.subject) == ("note", None)


def test_only_the_first_reply_records_the_first_response(agent, customer, monkeypatch):
    calls = []
    monkeypatch.setattr(service.sla, "first_response", lambda incident, at=None: calls.append(at))
    incident = make_incident(customer)
    service.add_message(agent, incident, "note", "Looking")
    service.add_message(agent, incident, "reply", "First")
    db.session.flush()
    db.session.refresh(incident)
    service.add_message(agent, incident, "reply", "Second")
    assert len(calls) == 1


def test_manual_assignment_clears_the_automatic_reason(agent, customer):
    incident = make_incident(customer, assignment_reason="round robin: least recently assigned")
    assert service.assign(incident, agent)
    assert incident.assignee == agent and incident.assignment_reason is None
    assert incident.status == "open"
    assert not service.assign(incident, agent)


# ---- the queue ---------------------------------------------------------------


def test_queue_views_filters_and_search(agent, customer):
    other = make_contact("Paul", "Dirac", company=make_company("Quantum SARL"))
    mine = make_incident(customer, subject="Screen flickers", assignee=agent, priority="high")
    free = make_incident(other, subject="Password reset", kind="information")
    done = make_incident(customer, subject="Old thing", status="closed", assignee=agent)
    db.session.flush()

    def ids(**args):
        filters = service.IncidentFilters.from_args(MultiDict(args), agent)
        return {i.id for i in service.list_incidents(agent, filters).incidents}

    assert ids() == {mine.id}  # support starts from "my incidents", open ones
    assert ids(view="unassigned") == {free.id}
    assert ids(view="open") == {mine.id, free.id}
    assert ids(view="all") == {mine.id, free.id, done.id}
    assert ids(view="all", status="closed") == {done.id}
    assert ids(view="open", priority="high") == {mine.id}
    assert ids(view="open", kind="information") == {free.id}
    assert ids(view="all", q="flick") == {mine.id}
    assert ids(view="all", q="quantum") == {free.id}  # the company's name
    assert ids(view="all", q="curie") == {mine.id, done.id}  # the contact's name
    assert ids(view="all", q=f"#{free.id}") == {free.id}
    assert service.view_counts(agent) == {"mine": 1, "unassigned": 1, "open": 2}


def test_queue_sorts_the_most_urgent_first_and_pages_by_keyset(agent, customer):
    base = datetime(2030, 1, 7, 9, tzinfo=UTC)
    late = make_incident(customer, resolution_due_at=base + timedelta(hours=8))
    soon = make_incident(customer, resolution_due_at=base + timedelta(hours=1))
    answer_first = make_incident(
        customer,
        first_response_due_at=base + timedelta(minutes=30),
        resolution_due_at=base + timedelta(hours=9),
    )
    no_clock = make_incident(customer)
    db.session.flush()
    filters = service.IncidentFilters.from_args(MultiDict({"view": "open"}), agent)
    page = service.list_incidents(agent, filters, size=2)
    assert [i.id for i in page.incidents] == [answer_first.id, soon.id]
    filters.cursor = page.next_cursor
    page = service.list_incidents(agent, filters, size=2)
    assert [i.id for i in page.incidents] == [late.id, no_clock.id]
    assert page.next_cursor is None


def test_sales_see_only_their_customers_incidents(customer):
    rep = customer.owner
    theirs = make_incident(customer)
    make_incident(make_contact("Other", "Person"))
    db.session.flush()
    filters = service.IncidentFilters.from_args(MultiDict({"view": "all"}), rep)
    assert [i.id for i in service.list_incidents(rep, filters).incidents] == [theirs.id]


# ---- canned responses ------------------------------------------------------------


def test_placeholders_are_filled_from_the_incident(agent, customer):
    incident = make_incident(customer, subject="Late delivery")
    template = EmailTemplate(
        name="Ack",
        subject="About {{incident.reference}}",
        body="Dear {{ contact.first_name }} {{contact.last_name}} of {{company.name}}, "
        "{{incident.subject}} is in hand. {{user.name}}",
    )
    rendered = canned_responses.render(template, incident, agent)
    assert rendered.subject == f"About #{incident.id}"
    assert rendered.body == ("Dear Marie Curie of Radium SA, Late delivery is in hand. Alice Agent")
    assert rendered.missing == ()


def test_a_missing_value_stays_a_visible_gap(agent, ctx):
    incident = make_incident(company=make_company("NoPeople Ltd"))
    template = EmailTemplate(name="Hi", body="Hello {{contact.first_name}}, from {{company.name}}")
    rendered = canned_responses.render(template, incident, agent)
    assert rendered.body == "Hello {{contact.first_name}}, from NoPeople Ltd"
    assert rendered.missing == ("{{contact.first_name}}",)
    assert canned_responses.unfilled(rendered.body) == ["{{contact.first_name}}"]
    assert canned_responses.unknown_placeholders("{{contact.shoe_size}} {{user.name}}") == [
        "{{contact.shoe_size}}"
    ]


# ---- complaint -> commercial action -----------------------------------------------


def test_a_complaint_gives_a_task_to_the_sales_owner(agent, customer):
    incident = make_incident(customer, kind="complaint", subject="Rude driver")
    task = service.complaint_task(agent, incident)
    db.session.flush()
    owner = customer.owner
    assert task.assignee == owner and task.incident_id == incident.id
    assert task.title == "Complaint follow-up: Marie Curie"
    assert task.contact == customer and task.company == customer.company
    # Due the next working day at 09:00 on the owner's clock.
    local = task.due_at.astimezone(ZoneInfo("Europe/Paris"))
    assert (local.hour, local.minute) == (9, 0) and local.weekday() < 5
    assert local.date() > datetime.now(UTC).date() - timedelta(days=1)
    notification = db.session.scalars(
        select(Notification).where(Notification.user_id == owner.id)
    ).one()
    assert notification.url == f"/incidents/{incident.id}"
    entry = db.session.scalars(
        select(Activity).where(Activity.incident_id == incident.id, Activity.kind == "system")
    ).one()
    assert entry.data == {"event": "complaint_task", "ref": incident.reference, "owner": owner.name}
    # A second click gives back the open task rather than a duplicate.
    assert service.complaint_task(agent, incident) is task
    assert service.follow_ups(incident).tasks == [task]


def test_a_complaint_gives_a_deal_in_the_default_pipeline(agent, customer):
    pipeline = make_pipeline()
    incident = make_incident(customer, kind="complaint", subject="Broken part")
    deal = service.complaint_deal(agent, incident)
    db.session.flush()
    assert deal.owner == customer.owner and deal.incident_id == incident.id
    assert deal.title == "After complaint: Broken part"
    assert deal.pipeline == pipeline and deal.stage == pipeline.stages[0]
    assert service.complaint_deal(agent, incident) is deal
    assert db.session.scalar(select(db.func.count()).select_from(Deal)) == 1
    assert service.follow_ups(incident).deals == [deal]


def test_the_company_owner_when_the_contact_has_none(agent, ctx):
    boss = make_user(role="sales")
    company = make_company("Acme", owner=boss)
    contact = make_contact("No", "Owner", company=company, owner=None)
    incident = make_incident(contact, kind="complaint")
    assert service.complaint_task(agent, incident).assignee == boss


def test_follow_ups_are_refused_without_complaint_or_owner(agent, customer):
    with pytest.raises(service.IncidentRefused):
        service.complaint_task(agent, make_incident(customer, kind="technical"))
    orphan = make_contact("Lone", "Wolf", owner=None)
    with pytest.raises(service.IncidentRefused):
        service.complaint_task(agent, make_incident(orphan, kind="complaint"))
    assert db.session.scalar(select(db.func.count()).select_from(Task)) == 0
