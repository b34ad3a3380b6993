"""N+1 guard: list and record pages run a bounded number of SQL statements,
whether the database holds 10 contacts or 1,010."""

from datetime import timedelta

from crm.extensions import db
from crm.models import Activity, Company, Contact, IncidentMessage
from crm.models.types import utcnow
from tests.conftest import htmx_headers
from tests.factories import (
    make_activity,
    make_company,
    make_contact,
    make_deal,
    make_event,
    make_incident,
    make_intervention,
    make_pipeline,
    make_task,
    make_team,
    make_user,
)

LIMIT = 10


def _add_contacts(count: int, owners, tag_every: int = 3) -> None:
    from crm.models import Tag

    tag = db.session.scalars(db.select(Tag)).first() or Tag(name="vip")
    now = utcnow()
    company = db.session.scalars(db.select(Company)).first() or Company(name="Co")
    db.session.add(company)
    for i in range(count):
        contact = Contact(
            first_name=f"F{i}",
            last_name=f"L{i}",
            email=f"c{count}-{i}@example.com",
            company=company if i % 2 else None,
            owner=owners[i % len(owners)],
        )
        if i % tag_every == 0:
            contact.tags.append(tag)
        db.session.add(contact)
        db.session.add(Activity(kind="note", contact=contact, body="n", occurred_at=now))
    db.session.commit()


def _queries(client, url: str) -> int:
    response = client.get(url)
    assert response.status_code == 200, url
    return int(response.headers["X-SQL-Queries"])


def test_pages_run_a_bounded_number_of_queries(as_role):
    client, me = as_role("sales")
    owners = [me, make_user(), make_user()]
    _add_contacts(10, owners)
    first = db.session.scalars(db.select(Contact).order_by(Contact.id)).first()
    company = db.session.scalars(db.select(Company)).first()
    urls = [
        "/contacts",
        "/contacts?q=f1",
        "/contacts?sort=-activity&stage=lead",
        f"/contacts/{first.id}",
        "/companies",
        f"/companies/{company.id}",
        "/search?q=f",
        "/",
    ]
    small = {url: _queries(client, url) for url in urls}
    _add_contacts(1000, owners)
    large = {url: _queries(client, url) for url in urls}
    assert large == small
    assert max(large.values()) <= LIMIT, large


def _fill_my_day(user, count: int) -> None:
    """Leads with a company, activities on them, overdue tasks linked to a deal, a contact
    and a company, and events today: everything the start page shows."""
    now = utcnow()
    for _ in range(count):
        company = make_company(owner=user)
        contact = make_contact(owner=user, company=company, stage="lead")
        make_activity(contact, author=user, occurred_at=now)
        deal = make_deal(owner=user, contact=contact, company=company)
        make_task(assignee=user, due=now - timedelta(hours=1), deal=deal, contact=contact)
        make_task(assignee=user, due=now, contact=contact)
        make_task(assignee=user, due=now, company=company)
        make_event(organizer=user, start=now.replace(minute=0, second=0, microsecond=0))
    db.session.commit()


def test_the_start_page_runs_a_bounded_number_of_queries(as_role):
    for role in ("sales", "manager"):
        client, me = as_role(role)
        _fill_my_day(me, 1)
        few = _queries(client, "/")
        _fill_my_day(me, 12)
        many = _queries(client, "/")
        # The session, latest activity, leads, tasks, events and their overrides, the bell.
        assert many == few <= 7, (role, few, many)


def _add_incidents(count: int, agents) -> None:
    for i in range(count):
        company = make_company()
        make_incident(
            make_contact(company=company), assignee=agents[i % len(agents)] if i % 3 else None
        )
    db.session.commit()


def test_the_incident_queue_runs_a_bounded_number_of_queries(as_role):
    client, me = as_role("support")
    agents = [me, make_user(role="support")]
    _add_incidents(3, agents)
    urls = ["/incidents", "/incidents?view=all", "/incidents?view=unassigned"]
    few = {url: _queries(client, url) for url in urls}
    _add_incidents(30, agents)
    many = {url: _queries(client, url) for url in urls}
    # The session, agents, teams (once: the form and the filter), products, the page of
    # incidents with their customer and assignee, the tab counts, the bell, the SLA settings.
    assert many == few and max(many.values()) <= 9, (few, many)


def _move_queries(client, deal, stage) -> int:
    response = client.post(
        f"/deals/{deal.id}/move",
        data={"stage_id": stage.id, "version": deal.version_id},
        headers={**htmx_headers(f"article#deal-{deal.id}"), "HX-Current-URL": "/deals"},
    )
    assert response.status_code == 200 and "hx-partial" in response.text
    return int(response.headers["X-SQL-Queries"])


def test_moving_a_deal_runs_a_bounded_number_of_queries(as_role):
    team = make_team()
    _client, rep = as_role("sales", team=team)
    clients = {"sales": _client, "manager": as_role("manager", team=team)[0]}
    pipeline = make_pipeline()
    pipeline.is_default = True
    company = make_company(owner=rep)
    contact = make_contact(owner=rep, company=company)
    deals = [make_deal(pipeline, owner=rep, contact=contact, company=company) for _ in range(4)]
    db.session.commit()
    stages = pipeline.stages
    for role, client in clients.items():
        few = _move_queries(client, deals[0 if role == "sales" else 2], stages[1])
        for _ in range(30):
            make_deal(pipeline, stages[1], owner=rep, contact=contact, company=company)
        db.session.commit()
        many = _move_queries(client, deals[1 if role == "sales" else 3], stages[1])
        # The session, the deal with its card's rows, four writes, the card read back
        # after the commit, the two columns' heads; a manager's own row read back too.
        assert many == few <= (8 if role == "sales" else 9), (role, few, many)


def test_replying_to_an_incident_runs_a_bounded_number_of_queries(as_role):
    client, agent = as_role("support")
    contact = make_contact(company=make_company())
    incident = make_incident(contact, assignee=agent)
    db.session.commit()

    def reply() -> int:
        response = client.post(
            f"/incidents/{incident.id}/messages",
            data={"kind": "reply", "body": "We are on it."},
            headers=htmx_headers("form#composer"),
        )
        assert response.status_code == 200 and 'hx-target="#conversation"' in response.text
        return int(response.headers["X-SQL-Queries"])

    first = reply()
    few = reply()
    for n in range(10):
        make_task(assignee=agent, incident_id=incident.id, title=f"Follow-up {n}")
        make_intervention(incident, title=f"Visit {n}")
    for n in range(20):
        db.session.add(IncidentMessage(incident=incident, kind="reply", body=f"R{n}", author=agent))
    db.session.commit()
    many = reply()
    # Before the commit: the session, the incident with its customer, its messages (is this
    # the first reply?), four writes (message, audit, contact, timeline). After: the
    # incident and its conversation read back, the canned responses, the agents (the
    # agent's own row among them), the support calendar and the SLA targets. The first
    # reply also updates the incident (its first response, its status): two more.
    # The reply goes out by email (crm/services/incident_mail.py): the incident's thread
    # with the customer's last message, the support mailbox, the email written and its
    # thread touched, the timeline link (our addresses, the contacts and companies it
    # involves, the entries it has already) and the conversation's delivery states.
    # The first reply also makes the thread.
    assert few == many <= 22 and first <= 25, (first, few, many)
