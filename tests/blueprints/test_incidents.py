"""Incident routes: the queue, creating (422 saves nothing), the header's one-click changes,
reply vs note, canned responses, complaint follow-ups, and who may do what."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.engine import Engine

from crm.extensions import db
from crm.models import Activity, Deal, EmailTemplate, Incident, IncidentMessage, Task
from tests.conftest import htmx_headers
from tests.factories import (
    make_company,
    make_contact,
    make_incident,
    make_intervention,
    make_pipeline,
    make_user,
    start_session,
)


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def fresh(incident: Incident) -> Incident:
    db.session.expire_all()
    return db.session.get(Incident, incident.id)


@pytest.fixture
def customer(ctx):
    owner = make_user(role="sales", name="Sam Sales")
    contact = make_contact("Marie", "Curie", owner=owner, company=make_company("Radium SA"))
    db.session.commit()
    return contact


# ---- the queue -----------------------------------------------------------------


def test_the_queue_shows_my_incidents_first_for_support(as_role, customer):
    client, agent = as_role("support")
    make_incident(customer, subject="Mine to do", assignee=agent)
    make_incident(customer, subject="Nobody's yet")
    db.session.commit()
    page = client.get("/incidents")
    assert page.status_code == 200
    assert "Mine to do" in page.text and "Nobody&#39;s yet" not in page.text
    unassigned = client.get("/incidents?view=unassigned")
    assert "Nobody&#39;s yet" in unassigned.text and "Mine to do" not in unassigned.text


def test_active_search_answers_rows_only(as_role, customer):
    client, _agent = as_role("support")
    make_incident(customer, subject="Screen flickers")
    make_incident(make_contact("Paul", "Dirac"), subject="Password reset")
    db.session.commit()
    rows = client.get("/incidents?view=open&q=curie", headers=htmx_headers("tbody#incident-rows"))
    assert rows.status_code == 200
    assert "<table" not in rows.text and "Screen flickers" in rows.text
    assert "Password reset" not in rows.text


def test_the_queue_runs_a_bounded_number_of_queries(app, as_role, customer):
    client, agent = as_role("support")

    def queries_for(url: str) -> int:
        seen = []

        def record(*_args):
            seen.append(1)

        # On the Engine class: the request runs on the app's own engine, not on the test's.
        event.listen(Engine, "before_cursor_execute", record)
        try:
            assert client.get(url).status_code == 200
        finally:
            event.remove(Engine, "before_cursor_execute", record)
        return len(seen)

    make_incident(customer, assignee=agent)
    db.session.commit()
    few = queries_for("/incidents?view=open")
    assert 0 < few <= 15, few
    for n in range(30):
        other = make_contact("C", f"N{n}", owner=make_user(), company=make_company())
        make_incident(other, assignee=make_user(role="support"))
    db.session.commit()
    assert queries_for("/incidents?view=open") == few


def _queries_for(client, url: str) -> int:
    seen = []

    def record(*_args):
        seen.append(1)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        assert client.get(url).status_code == 200
    finally:
        event.remove(Engine, "before_cursor_execute", record)
    return len(seen)


def test_the_incident_page_runs_the_same_queries_however_long_the_conversation(as_role, customer):
    from tests.factories import make_intervention

    client, agent = as_role("support")
    incident = make_incident(customer, assignee=agent)
    db.session.add(IncidentMessage(incident=incident, kind="note", body="First", author=agent))
    db.session.commit()
    few = _queries_for(client, f"/incidents/{incident.id}")
    for n in range(10):
        author = make_user(role="support")
        db.session.add(
            IncidentMessage(incident=incident, kind="reply", body=f"R{n}", author=author)
        )
        make_intervention(incident, title=f"Visit {n}")
    db.session.commit()
    many = _queries_for(client, f"/incidents/{incident.id}")
    print(f"incident page: {few} queries, {many} with 11 messages and 10 interventions")
    assert many == few and few <= 15, (few, many)


# ---- creating --------------------------------------------------------------------


def test_quick_add_puts_the_new_row_on_top(as_role, customer):
    client, _agent = as_role("support")
    response = client.post(
        "/incidents",
        data={
            "form": "quick",
            "subject": "Toner empty",
            "customer": f"contact:{customer.id}",
            "kind": "information",
            "priority": "low",
        },
        headers=htmx_headers("form#incident-quick-add"),
    )
    assert response.status_code == 200
    assert 'hx-target="#incident-rows"' in response.text and "Toner empty" in response.text
    incident = db.session.scalars(select(Incident)).one()
    assert (incident.kind, incident.priority, incident.status, incident.channel) == (
        "information",
        "low",
        "new",
        "phone",
    )
    assert incident.contact_id == customer.id and incident.company_id == customer.company_id


def test_the_full_form_creates_and_goes_to_the_incident(as_role, customer):
    client, agent = as_role("support")
    form = client.get(f"/incidents/new?contact_id={customer.id}")
    assert form.status_code == 200 and "Marie Curie" in form.text
    response = client.post(
        "/incidents",
        data={
            "subject": "Machine down",
            "customer": f"company:{customer.company_id}",
            "kind": "technical",
            "priority": "urgent",
            "status": "open",
            "channel": "visit",
            "assignee": str(agent.id),
            "description": "Since this morning",
        },
    )
    assert response.status_code == 303
    incident = db.session.scalars(select(Incident)).one()
    assert response.headers["Location"].endswith(f"/incidents/{incident.id}")
    assert incident.assignee_id == agent.id and incident.company_id == customer.company_id
    assert incident.contact_id is None and incident.channel == "visit"


@pytest.mark.parametrize(
    "data",
    [
        {"subject": "", "customer": "contact:{id}"},
        {"subject": "No customer", "customer": ""},
        {"subject": "Ghost customer", "customer": "contact:999999"},
        {"subject": "Bad kind", "customer": "contact:{id}", "kind": "rant"},
        {"subject": "Bad priority", "customer": "contact:{id}", "priority": "asap"},
    ],
)
def test_bad_input_answers_422_and_saves_nothing(as_role, customer, data):
    client, _agent = as_role("support")
    data = {k: v.format(id=customer.id) for k, v in data.items()}
    response = client.post("/incidents", data=data)
    assert response.status_code == 422
    assert 'class="error"' in response.text
    assert count(Incident) == 0 and count(Activity) == 0


# ---- one incident ------------------------------------------------------------------


def test_the_header_changes_status_priority_and_assignee_in_one_click(as_role, customer):
    client, agent = as_role("support")
    incident = make_incident(customer)
    db.session.commit()
    url = f"/incidents/{incident.id}/fields"
    header = htmx_headers("div#incident-header")
    response = client.post(f"{url}/assignee", data={"value": "me"}, headers=header)
    assert response.status_code == 200 and 'id="incident-header"' in response.text
    assert fresh(incident).assignee_id == agent.id and fresh(incident).status == "open"
    client.post(f"{url}/priority", data={"value": "urgent"}, headers=header)
    assert fresh(incident).priority == "urgent"
    client.post(f"{url}/status", data={"value": "waiting"}, headers=header)
    assert fresh(incident).status == "waiting"
    client.post(f"{url}/status", data={"value": "resolved"}, headers=header)
    assert fresh(incident).resolved_at is not None
    assert client.post(f"{url}/status", data={"value": "lost"}, headers=header).status_code == 422
    assert client.post(f"{url}/owner", data={"value": "x"}).status_code == 404


def test_round_robin_from_the_header_and_the_form_says_why(as_role, customer):
    client, _me = as_role("support", name="Nadia Roux", max_open_incidents=0)
    rita = make_user(role="support", name="Rita Lopez")
    away = datetime.now(UTC).date() + timedelta(days=1)  # still away in any zone
    make_user(role="support", name="Leo Blanc", away_until=away)
    incident = make_incident(customer)
    db.session.commit()
    header = htmx_headers("div#incident-header")
    answer = client.post(
        f"/incidents/{incident.id}/fields/assignee", data={"value": "round_robin"}, headers=header
    )
    assert answer.status_code == 200
    assert (fresh(incident).assignee_id, fresh(incident).status) == (rita.id, "open")
    reason = fresh(incident).assignment_reason
    assert reason.startswith("Round robin in all support agents: least recently assigned of 1")
    assert "Nadia Roux, 0 open" in reason and "Leo Blanc, away until" in reason
    # Visible on the incident's page, to whoever opens it.
    assert "Why: Round robin in all support agents" in client.get(f"/incidents/{incident.id}").text

    # Chosen in the creation form: Rita now had her turn and her load, so nobody is left.
    created = client.post(
        "/incidents",
        data={
            "subject": "Second one",
            "customer": f"contact:{customer.id}",
            "kind": "technical",
            "priority": "normal",
            "status": "new",
            "channel": "phone",
            "assignee": "round_robin",
        },
    )
    second = db.session.scalars(select(Incident).where(Incident.subject == "Second one")).one()
    assert created.status_code == 303 and created.location.endswith(f"/incidents/{second.id}")
    assert second.assignee_id == rita.id  # the only one available: load 1, no limit
    rita.max_open_incidents = 2
    db.session.commit()
    third = make_incident(customer)
    db.session.commit()
    refused = client.post(
        f"/incidents/{third.id}/fields/assignee", data={"value": "round_robin"}, headers=header
    )
    assert refused.status_code == 422 and "No support agent is available" in refused.text
    assert fresh(third).assignee_id is None


def test_reply_and_note_are_told_apart_and_land_on_the_timeline(as_role, customer):
    client, agent = as_role("support")
    incident = make_incident(customer, subject="Wrong invoice")
    db.session.commit()
    url = f"/incidents/{incident.id}/messages"
    reply = client.post(
        url,
        data={"kind": "reply", "body": "We fix it today."},
        headers=htmx_headers("form#composer"),
    )
    assert reply.status_code == 200
    assert 'hx-target="#conversation"' in reply.text and "message-reply" in reply.text
    client.post(
        url,
        data={"kind": "note", "body": "Check with accounting"},
        headers=htmx_headers("form#composer"),
    )
    messages = db.session.scalars(select(IncidentMessage).order_by(IncidentMessage.id)).all()
    assert [(m.kind, m.email_status) for m in messages] == [("reply", "queued"), ("note", None)]
    entries = db.session.scalars(
        select(Activity).where(Activity.incident_id == incident.id).order_by(Activity.id)
    ).all()
    assert [(a.kind, a.subject) for a in entries] == [
        ("email", f"Re: Wrong invoice [#{incident.id}]"),
        ("note", None),
    ]
    contact_page = client.get(f"/contacts/{customer.id}")
    assert (
        f"/incidents/{incident.id}" in contact_page.text and "We fix it today." in contact_page.text
    )
    assert client.post(url, data={"kind": "reply", "body": "  "}).status_code == 422
    assert client.post(url, data={"kind": "shout", "body": "x"}).status_code == 400


def test_a_canned_response_fills_the_composer_and_shows_its_gaps(as_role, ctx):
    client, agent = as_role("support", name="Alice Agent")
    incident = make_incident(company=make_company("NoPeople Ltd"), subject="Late")
    template = EmailTemplate(
        name="Ack",
        usage="support",
        body="Hello {{contact.first_name}}, {{incident.subject}}. {{user.name}}",
    )
    sales_only = EmailTemplate(name="Offer", usage="sales", body="Buy")
    db.session.add_all([template, sales_only])
    db.session.commit()
    page = client.get(f"/incidents/{incident.id}")
    assert ">Ack<" in page.text and ">Offer<" not in page.text
    filled = client.get(
        f"/incidents/{incident.id}/canned?template={template.id}",
        headers=htmx_headers("form#composer"),
    )
    assert filled.status_code == 200
    assert "Hello {{contact.first_name}}, Late. Alice Agent" in filled.text
    assert '<mark class="gap">{{contact.first_name}}</mark>' in filled.text
    # Sent with the gap still in: refused, nothing saved.
    refused = client.post(
        f"/incidents/{incident.id}/messages",
        data={"kind": "reply", "body": "Hello {{contact.first_name}}, Late."},
    )
    assert refused.status_code == 422 and "Fill in the gaps" in refused.text
    assert count(IncidentMessage) == 0


def test_canned_responses_are_managed_by_managers(as_role):
    client, _manager = as_role("manager")
    assert client.get("/incidents/templates").status_code == 200
    created = client.post(
        "/incidents/templates",
        data={"name": "Thanks", "usage": "support", "body": "Thanks {{contact.first_name}}"},
    )
    assert created.status_code == 303
    template = db.session.scalars(select(EmailTemplate)).one()
    bad = client.post(
        f"/incidents/templates/{template.id}",
        data={"name": "Thanks", "usage": "support", "body": "{{contact.shoe}}"},
    )
    assert bad.status_code == 422 and "Unknown placeholder" in bad.text
    assert (
        client.post("/incidents/templates", data={"name": "thanks", "body": "x"}).status_code == 422
    )
    assert client.post(f"/incidents/templates/{template.id}/delete").status_code == 303
    assert count(EmailTemplate) == 0
    support, _agent = as_role("support")
    assert support.get("/incidents/templates").status_code == 403


# ---- complaint -> commercial action --------------------------------------------------


def test_a_complaint_gets_a_task_and_a_deal_linked_both_ways(as_role, customer):
    make_pipeline()
    client, agent = as_role("support")
    incident = make_incident(customer, kind="complaint", subject="Rude driver")
    db.session.commit()
    target = htmx_headers("section#follow-ups")
    assert (
        client.post(f"/incidents/{incident.id}/follow-up/task", headers=target).status_code == 200
    )
    deal_answer = client.post(f"/incidents/{incident.id}/follow-up/deal", headers=target)
    assert deal_answer.status_code == 200
    task = db.session.scalars(select(Task)).one()
    deal = db.session.scalars(select(Deal)).one()
    assert task.incident_id == deal.incident_id == incident.id
    assert task.assignee_id == deal.owner_id == customer.owner_id
    # Support sees the deal on the incident, without its amount or a link to it.
    assert "After complaint: Rude driver" in deal_answer.text
    assert f"/deals/{deal.id}" not in deal_answer.text and "€" not in deal_answer.text
    # The owner sees the way back from the task and from the deal.
    rep_client = client.application.test_client()
    token = start_session(customer.owner)
    db.session.commit()
    with rep_client.session_transaction() as session:
        session["_user_id"] = token
    assert f"/incidents/{incident.id}" in rep_client.get("/tasks").text
    assert f"/incidents/{incident.id}" in rep_client.get(f"/deals/{deal.id}").text
    incident_page = rep_client.get(f"/incidents/{incident.id}").text
    assert f"/deals/{deal.id}" in incident_page  # the rep may open their deal


def test_a_follow_up_of_a_non_complaint_is_refused(as_role, customer):
    client, _agent = as_role("support")
    incident = make_incident(customer, kind="technical")
    db.session.commit()
    response = client.post(f"/incidents/{incident.id}/follow-up/task", headers=htmx_headers())
    assert response.status_code == 422 and count(Task) == 0


# ---- access ---------------------------------------------------------------------------


def test_sales_read_their_customers_incidents_only_and_change_nothing(
    as_role, login, app, customer
):
    rep = customer.owner
    client = login(app.test_client(), rep)
    theirs = make_incident(customer, subject="Theirs")
    other = make_incident(make_contact("Paul", "Dirac"), subject="Not theirs")
    db.session.commit()
    page = client.get(f"/incidents/{theirs.id}")
    assert page.status_code == 200
    assert 'id="composer"' not in page.text and "status-stepper" not in page.text
    assert client.get(f"/incidents/{other.id}").status_code == 404
    assert "Not theirs" not in client.get("/incidents?view=all").text
    for path, data in [
        ("messages", {"kind": "note", "body": "x"}),
        ("fields/status", {"value": "closed"}),
        ("follow-up/task", {}),
    ]:
        assert client.post(f"/incidents/{theirs.id}/{path}", data=data).status_code == 403
    assert client.post("/incidents", data={"subject": "x"}).status_code == 403
    assert count(IncidentMessage) == 0 and fresh(theirs).status == "new"


def test_technicians_read_the_incidents_of_their_interventions(as_role, customer):
    client, technician = as_role("technician")
    booked = make_incident(customer, subject="On site")
    other = make_incident(customer, subject="Elsewhere")
    start = datetime.now(UTC) + timedelta(days=1)
    make_intervention(booked, technicians=[technician], start=start)
    db.session.commit()
    page = client.get(f"/incidents/{booked.id}")
    assert page.status_code == 200 and 'id="composer"' not in page.text
    assert client.get(f"/incidents/{other.id}").status_code == 404
    assert client.get("/incidents").status_code == 403  # no queue: their day is elsewhere
    assert (
        client.post(
            f"/incidents/{booked.id}/messages", data={"kind": "note", "body": "x"}
        ).status_code
        == 403
    )


def test_the_customer_pages_show_their_incidents_and_a_new_incident_button(as_role, customer):
    client, _agent = as_role("support")
    make_incident(customer, subject="Closed one", status="closed")
    make_incident(customer, subject="Open one")
    db.session.commit()
    page = client.get(f"/contacts/{customer.id}").text
    assert f"/incidents/new?contact_id={customer.id}" in page
    assert page.index("Open one") < page.index("Closed one")
    company_page = client.get(f"/companies/{customer.company_id}").text
    assert f"/incidents/new?company_id={customer.company_id}" in company_page
    assert "Open one" in company_page


def test_the_incident_page_lists_its_interventions_to_whom_may_see_them(as_role):
    from datetime import UTC, datetime

    from tests.factories import make_intervention

    client, _support = as_role("support")
    incident = make_incident(make_contact())
    mine_tech = make_user(role="technician", name="Karim Tech")
    other_tech = make_user(role="technician", name="Other Tech")
    start = datetime(2030, 3, 4, 9, tzinfo=UTC)
    make_intervention(incident, [mine_tech], start=start, title="Boiler check")
    make_intervention(incident, [other_tech], start=start, title="Second visit")
    db.session.commit()

    page = client.get(f"/incidents/{incident.id}").text
    assert "Boiler check" in page and "Second visit" in page
    assert f"/interventions/new?incident_id={incident.id}" in page

    client.post("/logout")
    from tests.factories import PASSWORD

    client.post("/login", data={"email": mine_tech.email, "password": PASSWORD})
    page = client.get(f"/incidents/{incident.id}").text
    assert "Boiler check" in page
    assert "Second visit" not in page  # a colleague's visit is not theirs to see
    assert "/interventions/new" not in page


def test_a_follow_up_for_an_owner_without_a_language_is_written_in_the_agents(as_role, customer):
    """The rep never chose a language: the task is titled in the French agent's, not in
    English; once the rep chooses one, theirs wins."""
    client, _agent = as_role("support")
    customer.owner.locale = None
    incident = make_incident(customer, kind="complaint", subject="Retard")
    db.session.commit()
    french = {**htmx_headers("section#follow-ups"), "Accept-Language": "fr"}
    assert (
        client.post(f"/incidents/{incident.id}/follow-up/task", headers=french).status_code == 200
    )
    task = db.session.scalars(select(Task)).one()
    assert task.title == f"Suivi de réclamation\u00a0: {customer.name}"

    customer.owner.locale = "en"
    second = make_incident(customer, kind="complaint", subject="Again")
    db.session.commit()
    client.post(f"/incidents/{second.id}/follow-up/task", headers=french)
    titles = set(db.session.scalars(select(Task.title)))
    assert f"Complaint follow-up: {customer.name}" in titles
