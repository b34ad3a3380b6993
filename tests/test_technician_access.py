"""A technician sees their interventions and what those need, and nothing else (DESIGN §4):
the customers of their visits without deals or amounts, the incident of a visit read-only,
never another technician's visit, and no planning."""

from datetime import timedelta

import pytest

from crm.extensions import db
from crm.permissions import POLICY, TECHNICIAN
from crm.services.reminders import now
from tests.factories import (
    make_company,
    make_contact,
    make_deal,
    make_incident,
    make_intervention,
    make_user,
)


@pytest.fixture
def field(as_role):
    """A technician with one visit (its customer, company and incident) and a colleague's visit."""
    client, technician = as_role("technician")
    company = make_company(name="Boulangerie Dupain")
    contact = make_contact("Marie", "Dupont", company=company)
    make_deal(contact=contact, company=company, amount="98765", title="Oven maintenance contract")
    incident = make_incident(contact, subject="Oven does not heat", status="open")
    mine = make_intervention(incident, technicians=[technician], start=now() + timedelta(hours=2))
    stranger = make_contact("Paul", "Autre", company=make_company(name="Other bakery"))
    other_incident = make_incident(stranger, subject="Mixer broken")
    theirs = make_intervention(
        other_incident, technicians=[make_user(role="technician")], start=now() + timedelta(hours=3)
    )
    db.session.commit()
    return client, technician, mine, theirs


def test_the_customer_of_my_visit_without_deals_or_amounts(field):
    client, _technician, mine, theirs = field

    contact_page = client.get(f"/contacts/{mine.contact_id}")
    company_page = client.get(f"/companies/{mine.company_id}")

    assert contact_page.status_code == 200 and "Marie Dupont" in contact_page.text
    assert company_page.status_code == 200 and "Boulangerie Dupain" in company_page.text
    for page in (contact_page.text, company_page.text):
        assert "Oven maintenance contract" not in page
        assert "98765" not in page and "98,765" not in page
        assert "/deals/" not in page
    assert client.get(f"/contacts/{theirs.contact_id}").status_code == 404
    assert client.get(f"/companies/{theirs.company_id}").status_code == 404


def test_the_incident_of_my_visit_read_only_and_no_other(field):
    client, _technician, mine, theirs = field

    page = client.get(f"/incidents/{mine.incident_id}")

    assert page.status_code == 200 and "Oven does not heat" in page.text
    assert f'action="/incidents/{mine.incident_id}/messages"' not in page.text
    assert 'id="composer"' not in page.text
    assert client.get(f"/incidents/{theirs.incident_id}").status_code == 404
    reply = client.post(
        f"/incidents/{mine.incident_id}/messages", data={"kind": "note", "body": "Hello"}
    )
    assert reply.status_code == 403
    assert client.get("/incidents").status_code == 403  # the support queue is the office's


def test_my_visits_and_not_a_colleagues(field):
    client, _technician, mine, theirs = field

    assert client.get(f"/interventions/{mine.id}").status_code == 200
    assert client.get(f"/interventions/{mine.id}/report").status_code == 200
    for response in (
        client.get(f"/interventions/{theirs.id}"),
        client.get(f"/interventions/{theirs.id}/report"),
        client.post(f"/interventions/{theirs.id}/step", data={"status": "en_route"}),
        client.post(f"/interventions/{theirs.id}/report", data={"work_done": "x"}),
    ):
        assert response.status_code == 404
    day = client.get("/interventions/today").text
    assert "Mixer broken" not in day and "Oven does not heat" in day


def test_the_interventions_area_opens_on_my_day(field):
    client, *_ = field
    response = client.get("/interventions")
    assert response.status_code in (302, 303)
    assert response.headers["Location"].endswith("/interventions/today")


def test_no_planning_and_no_office_lists(field, app):
    client, _technician, mine, _theirs = field
    planning = [
        rule
        for rule in app.url_map.iter_rules()
        if getattr(app.view_functions[rule.endpoint], "permission", None)
        in {name for name, roles in POLICY.items() if TECHNICIAN not in roles}
        and rule.endpoint.startswith(("interventions.", "incidents."))
    ]
    assert {rule.endpoint for rule in planning} >= {
        "interventions.new",
        "interventions.schedule",
        "interventions.cancel",
    }
    for rule in planning:
        path = rule.rule
        for argument in rule.arguments:
            path = path.replace(
                f"<int:{argument}>",
                str(mine.id if "intervention" in argument else mine.incident_id),
            )
            path = path.replace(f"<{argument}>", "status")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert client.open(path, method=method, data={}).status_code == 403, (method, path)
    for path in ("/contacts", "/companies", "/deals"):
        assert client.get(path).status_code == 403, path
