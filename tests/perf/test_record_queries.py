"""N+1 guard for the record pages (contact, company, deal, incident) and the writes made
from them: the same number of SQL statements, at most 10, whether the record has two of
everything around it (deals, tasks, incidents, lines, messages, visits, people, tags,
timeline entries, emails, custom fields) or thirty, and whoever looks at it."""

from datetime import date, timedelta
from decimal import Decimal

from crm.extensions import db
from crm.models import Activity, IncidentMessage, Tag
from crm.models.campaigns import Campaign
from crm.models.deals import DealLine
from crm.models.leads import CustomFieldDefinition
from crm.models.mail import EmailMessage, EmailThread
from crm.models.support import EmailTemplate
from crm.models.types import utcnow
from crm.services import support_settings
from tests.conftest import htmx_headers
from tests.factories import (
    make_activity,
    make_company,
    make_contact,
    make_deal,
    make_incident,
    make_intervention,
    make_pipeline,
    make_product,
    make_task,
    make_team,
    make_user,
)

LIMIT = 10
FEW, MANY = 2, 30


def _get(client, url: str) -> int:
    return _queries(client.get(url))


def _queries(response) -> int:
    assert response.status_code in (200, 201), (response.status_code, response.text[:300])
    return int(response.headers["X-SQL-Queries"])


def _settings() -> None:
    """What a real install has: custom fields on every record, the support calendar with
    its hours and holidays, the service levels, canned responses, a campaign."""
    for entity in ("contact", "company", "deal", "incident"):
        for key, field_type in (("ref", "text"), ("size", "number")):
            db.session.add(
                CustomFieldDefinition(
                    entity=entity, key=key, label=key.title(), field_type=field_type
                )
            )
    support_settings.ensure_calendar()
    support_settings.ensure_policies()
    for n in range(3):
        db.session.add(EmailTemplate(name=f"Answer {n}", subject="Re", body="Hello", usage="all"))
    db.session.add(Campaign(name="Spring", started_at=utcnow() - timedelta(days=3)))
    db.session.flush()


def _email_entry(contact, author, n: int) -> None:
    thread = EmailThread(subject=f"Mail {n}", contact_id=contact.id)
    db.session.add(thread)
    db.session.flush()
    message = EmailMessage(
        direction="out" if n % 2 else "in",
        status="sent" if n % 2 else "received",
        privacy="private" if n % 3 == 0 else "public",
        message_id=f"<m{contact.id}-{n}@example.com>",
        message_id_key=f"m{contact.id}-{n}@example.com",
        subject=f"Mail {n}",
        thread_id=thread.id,
        contact_id=contact.id,
        company_id=contact.company_id,
        owner_id=author.id,
    )
    db.session.add(message)
    db.session.flush()
    make_activity(contact, kind="email", author=author, email_message_id=message.id)


def _fill_customer(contact, people: list, agents: list, pipeline, count: int) -> None:
    """`count` of each thing a contact's and its company's pages show."""
    company = contact.company
    for n in range(count):
        author = people[n % len(people)]
        make_activity(contact, kind="call", outcome="reached", body=f"Call {n}", author=author)
        make_activity(make_contact(company=company, owner=author), author=author, body="Hi")
        _email_entry(contact, author, n)
        deal = make_deal(pipeline, owner=author, contact=contact, company=company)
        make_activity(contact, kind="system", author=author, deal=deal, data={"event": "created"})
        make_task(assignee=author, due=utcnow() + timedelta(days=n), contact=contact, deal=deal)
        make_task(assignee=author, company=company)
        make_incident(contact, assignee=agents[n % len(agents)])
        tag = Tag(name=f"tag-{contact.id}-{len(contact.tags)}")
        contact.tags.append(tag)
    contact.custom_fields = {"ref": "A-1", "size": 3}
    company.custom_fields = {"ref": "C-1"}
    db.session.commit()


def _customer(as_role):
    team = make_team()
    clients = {role: as_role(role, team=team) for role in ("sales", "manager", "support")}
    rep = clients["sales"][1]
    colleague = make_user(team=team, role="sales")
    _settings()
    company = make_company(owner=colleague)
    contact = make_contact(company=company, owner=colleague, stage="lead")
    pipeline = make_pipeline()
    db.session.commit()
    people = [rep, colleague, clients["manager"][1]]
    agents = [clients["support"][1], make_user(role="support", team=team)]
    return clients, contact, people, agents, pipeline


def test_contact_and_company_pages_run_a_bounded_number_of_queries(as_role):
    clients, contact, people, agents, pipeline = _customer(as_role)
    urls = [f"/contacts/{contact.id}", f"/companies/{contact.company_id}"]

    def counts() -> dict:
        return {
            (role, url): _get(client, url)
            for role, (client, _user) in clients.items()
            for url in urls
        }

    _fill_customer(contact, people, agents, pipeline, FEW)
    few = counts()
    _fill_customer(contact, people, agents, pipeline, MANY - FEW)
    many = counts()
    assert many == few, (few, many)
    assert max(many.values()) <= LIMIT, many


def _fill_deal(deal, people, count: int) -> None:
    for n in range(count):
        author = people[n % len(people)]
        product = make_product(unit_cost=Decimal("40.00"))
        db.session.add(
            DealLine(
                deal=deal,
                product=product,
                description=product.name,
                quantity=Decimal("2"),
                unit_price=Decimal("100.00"),
                unit_cost=Decimal("40.00"),
                position=len(deal.lines),
            )
        )
        db.session.add(Activity(kind="note", deal=deal, author=author, body=f"Note {n}"))
        make_activity(deal.contact, kind="call", author=author, deal=deal)
        make_task(assignee=author, due=utcnow() + timedelta(days=n), deal=deal)
    deal.custom_fields = {"ref": "D-1"}
    db.session.commit()


def test_the_deal_page_runs_a_bounded_number_of_queries(as_role):
    team = make_team()
    clients = {role: as_role(role, team=team) for role in ("sales", "manager")}
    rep = clients["sales"][1]
    _settings()
    contact = make_contact(company=make_company(), owner=make_user(team=team))
    deal = make_deal(
        owner=rep,
        contact=contact,
        company=make_company(),
        expected_close=date.today() + timedelta(days=30),
        campaign_id=db.session.scalars(db.select(Campaign.id)).first(),
    )
    db.session.commit()
    people = [rep, clients["manager"][1]]
    url = f"/deals/{deal.id}"

    _fill_deal(deal, people, FEW)
    few = {role: _get(client, url) for role, (client, _user) in clients.items()}
    _fill_deal(deal, people, MANY - FEW)
    many = {role: _get(client, url) for role, (client, _user) in clients.items()}
    assert many == few, (few, many)
    assert max(many.values()) <= LIMIT, many


def _fill_incident(incident, agents, rep, pipeline, count: int) -> None:
    for n in range(count):
        agent = agents[n % len(agents)]
        mail = EmailMessage(
            direction="out",
            status="sent",
            message_id=f"<r{incident.id}-{n}-{count}@example.com>",
            message_id_key=f"r{incident.id}-{n}-{count}@example.com",
            subject=incident.subject,
            incident_id=incident.id,
        )
        db.session.add(mail)
        db.session.flush()
        db.session.add(
            IncidentMessage(
                incident=incident,
                kind="reply" if n % 2 else "note",
                body=f"M{n}",
                author=agent,
                email_message_id=mail.id if n % 2 else None,
            )
        )
        make_task(assignee=agent, incident_id=incident.id, title=f"Follow-up {n}")
        make_deal(pipeline, owner=rep, contact=incident.contact, incident_id=incident.id)
        make_intervention(incident, title=f"Visit {n}")
    incident.custom_fields = {"ref": "I-1"}
    db.session.commit()


def test_the_incident_page_runs_a_bounded_number_of_queries(as_role):
    team = make_team()
    clients = {role: as_role(role, team=team) for role in ("support", "manager")}
    agent = clients["support"][1]
    rep = make_user(team=team)
    _settings()
    contact = make_contact(company=make_company(owner=rep), owner=rep)
    incident = make_incident(contact, assignee=agent)
    db.session.commit()
    agents = [agent, make_user(role="support")]
    pipeline = make_pipeline()
    url = f"/incidents/{incident.id}"

    _fill_incident(incident, agents, rep, pipeline, FEW)
    few = {role: _get(client, url) for role, (client, _user) in clients.items()}
    _fill_incident(incident, agents, rep, pipeline, MANY - FEW)
    many = {role: _get(client, url) for role, (client, _user) in clients.items()}
    assert many == few, (few, many)
    assert max(many.values()) <= LIMIT, many


# ---- writes ------------------------------------------------------------------------------


def _post(client, url: str, data: dict, target: str, page: str) -> int:
    headers = {**htmx_headers(target), "HX-Current-URL": f"http://localhost{page}"}
    return _queries(client.post(url, data=data, headers=headers))


def test_logging_a_call_and_adding_a_contact_run_a_bounded_number_of_queries(as_role):
    clients, contact, people, agents, pipeline = _customer(as_role)
    client = clients["sales"][0]
    url = f"/contacts/{contact.id}"

    def log_a_call() -> int:
        data = {"kind": "call", "outcome": "reached", "body": "Called"}
        return _post(client, f"{url}/activities", data, "form#composer", url)

    def add_a_contact(n: int) -> int:
        data = {
            "first_name": "New",
            "last_name": f"Person {n}",
            "email": f"new.person.{n}@example.com",
            "company": contact.company.name,
        }
        return _post(client, "/contacts", data, "form#quick-add", "/contacts")

    _fill_customer(contact, people, agents, pipeline, FEW)
    few = (log_a_call(), add_a_contact(1))
    _fill_customer(contact, people, agents, pipeline, MANY - FEW)
    many = (log_a_call(), add_a_contact(2))
    # A call: the session, the contact with its company, two writes (the entry, the
    # contact's last activity), the timeline and the follow-up's assignees sent back. A new
    # contact: the session, the custom fields, duplicates, the company, three writes (the
    # contact, its "created" entry, the audit log); its row is rendered from what was written.
    assert many == few and max(many) <= 7, (few, many)


def test_replying_to_an_incident_runs_fewer_queries(as_role):
    """A reply writes the message, the mail, its thread and the timeline entry, reads the
    thread, the mailbox and the people the mail involves: more than a page, but a fixed
    number, and no header read again when the reply did not change it."""
    clients = {"support": as_role("support")}
    client, agent = clients["support"]
    _settings()
    rep = make_user()
    incident = make_incident(make_contact(company=make_company(owner=rep), owner=rep))
    db.session.commit()
    url = f"/incidents/{incident.id}"

    def reply() -> int:
        data = {"kind": "reply", "body": "We are on it."}
        return _post(client, f"{url}/messages", data, "form#composer", url)

    first = reply()
    _fill_incident(incident, [agent], rep, make_pipeline(), FEW)
    few = reply()
    _fill_incident(incident, [agent], rep, make_pipeline(), MANY - FEW)
    many = reply()
    assert few == many <= 14 and first <= 18, (first, few, many)
