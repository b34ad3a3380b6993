"""Incidents in Chromium: created from a customer's page in a few clicks, taken, answered
and put on hold as an agent does; the queue and the incident page as they look."""

import os

import pytest
from playwright.sync_api import Page, expect

from crm.extensions import db
from crm.models import Incident, IncidentMessage
from tests import factories
from tests.browser.conftest import Clicks

pytestmark = pytest.mark.browser

SHOTS = os.environ.get("CRM_SCREENSHOTS")  # a folder to keep the screenshots in, to look at


def shoot(page: Page, tmp_path, name: str) -> None:
    page.screenshot(path=f"{SHOTS or tmp_path}/{name}.png", full_page=True)


@pytest.fixture
def agent(seed):
    user = factories.make_user(role="support", name="Nadia Roux", timezone="Europe/Paris")
    seed.commit()
    return user


@pytest.fixture
def customer(seed):
    owner = factories.make_user(role="sales", name="Sophie Laurent")
    company = factories.make_company("Radium SA", owner=owner)
    contact = factories.make_contact(
        "Marie", "Curie", owner=owner, company=company, phone="+33 6 12 34 56 78"
    )
    seed.commit()
    return contact


def stored() -> Incident:
    db.session.expire_all()
    return db.session.scalars(db.select(Incident)).one()


def test_an_agent_creates_takes_answers_and_puts_on_hold(
    page: Page, clicks: Clicks, signed_in, agent, customer, tmp_path
):
    signed_in(page, agent)
    page.goto(f"/contacts/{customer.id}")
    panel = page.locator("#incidents-panel")
    expect(panel).to_contain_text("No incident.")

    with clicks.task("create an incident from a contact's page (subject typed)", budget=3):
        clicks.click(panel.get_by_role("link", name="New incident"))
        expect(page.get_by_role("heading", name="New incident")).to_be_visible()
        expect(page.locator(f"input[name=customer][value=contact\\:{customer.id}]")).to_be_checked()
        expect(page.get_by_label("Subject")).to_be_focused()
        page.keyboard.insert_text("Machine stops after ten minutes")
        page.get_by_label("Priority").select_option("high")
        clicks.count += 1  # picking from a list: counted as one click
        clicks.click(page.get_by_role("button", name="Create incident"))
        expect(page.locator("#incident-header h1")).to_contain_text(
            "Machine stops after ten minutes"
        )
    incident = stored()
    assert (incident.contact_id, incident.company_id, incident.priority) == (
        customer.id,
        customer.company_id,
        "high",
    )
    header = page.locator("#incident-header")
    expect(page.locator(".customer-card")).to_contain_text("Sophie Laurent")  # the sales owner

    with clicks.task("assign an incident to me", budget=1):
        clicks.click(header.get_by_role("button", name="Assign to me"))
        expect(page.get_by_label("Assignee")).to_have_value(str(agent.id))
    expect(header.locator(".incident-status-open")).to_be_visible()  # opened by taking it

    with clicks.task("reply to the customer (text typed)", budget=2):
        clicks.click(page.get_by_placeholder("Write to the customer, or a note for the team…"))
        page.keyboard.insert_text("We are sending a technician tomorrow morning.")
        clicks.click(page.get_by_role("button", name="Reply to customer"))
        expect(page.locator("#conversation .message-reply")).to_contain_text(
            "We are sending a technician tomorrow morning."
        )
    expect(page.get_by_placeholder("Write to the customer, or a note for the team…")).to_have_value(
        ""
    )

    with clicks.task("put an incident on hold (waiting on the customer)", budget=1):
        clicks.click(header.get_by_role("button", name="Waiting on customer"))
        expect(header.locator(".incident-status-waiting")).to_be_visible()
    shoot(page, tmp_path, "incident-page")

    incident = stored()
    assert (incident.assignee_id, incident.status) == (agent.id, "waiting")
    message = db.session.scalars(db.select(IncidentMessage)).one()
    assert (message.kind, message.email_status) == (
        "reply",
        "queued",
    )  # an email to the customer, on its way

    page.goto("/incidents")
    expect(page.locator("#incident-rows")).to_contain_text("Machine stops after ten minutes")
    shoot(page, tmp_path, "incident-queue")


def test_the_queue_searches_as_one_types(page: Page, signed_in, agent, customer, seed):
    factories.make_incident(customer, subject="Leak under the unit", assignee=agent)
    factories.make_incident(
        factories.make_contact("Paul", "Dirac"), subject="Password reset", assignee=agent
    )
    seed.commit()
    signed_in(page, agent)
    page.goto("/incidents")
    rows = page.locator("#incident-rows tr")
    expect(rows).to_have_count(2)
    page.get_by_label("Search incidents").press_sequentially("curie")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Leak under the unit")
    assert "q=curie" in page.url
