"""A complaint from start to end, in French, as the issue's "done when" tells it: a support
agent opens it from the customer's page, takes it, asks the account's sales owner to follow
up, plans an intervention and drags it onto a technician's slot; the technician, on a phone,
closes it with a signed report; the incident and the customer's timeline show it all.

Each step is tested on its own elsewhere (test_incidents, test_dispatch_board,
test_technician_view); this walk checks that they fit together through the real pages.
"""

import re
from zoneinfo import ZoneInfo

import pytest
from flask_babel import force_locale, gettext, pgettext
from playwright.sync_api import Page, expect

from crm.extensions import db
from crm.models import Activity, Incident, Intervention, Task
from crm.models.types import utcnow
from tests import factories
from tests.browser.conftest import PHONE, Clicks
from tests.browser.test_dispatch_board import drag
from tests.browser.test_dispatch_board import slot as board_slot
from tests.browser.test_technician_view import _draw_with_a_mouse

pytestmark = pytest.mark.browser


def fr(text: str, **values) -> str:
    """What the French interface says for `text`."""
    with force_locale("fr"):
        return gettext(text, **values)


@pytest.fixture
def people(seed):
    agent = factories.make_user(role="support", name="Nadia Roux", locale="fr")
    technician = factories.make_user(
        role="technician", name="Karim Fontaine", locale="fr", skills=["chaudière"]
    )
    owner = factories.make_user(role="sales", name="Sophie Laurent", locale="fr")
    company = factories.make_company("Boulangerie Lumière", owner=owner)
    customer = factories.make_contact(
        "Marie",
        "Curie",
        owner=owner,
        company=company,
        phone="+33 6 12 34 56 78",
        street="12 rue des Lilas",
        postcode="69003",
        city="Lyon",
    )
    seed.commit()
    return agent, technician, owner, customer


@pytest.fixture
def phone(browser, base_url):
    context = browser.new_context(
        viewport=PHONE, is_mobile=True, has_touch=True, locale="fr-FR", base_url=base_url
    )
    page = context.new_page()
    page.set_default_timeout(5_000)
    yield page
    context.close()


def test_a_complaint_from_the_customers_page_to_the_signed_report(
    page: Page, phone: Page, clicks: Clicks, signed_in, people, app
):
    agent, technician, owner, customer = people
    with app.test_request_context():
        labels = {
            text: fr(text)
            for text in (
                "New incident",
                "Create incident",
                "Assign to me",
                "Follow-up task for the sales owner",
                "Plan an intervention",
                "Save",
                "En route",
                "On site",
                "Report",
                "Work done",
                "Customer's name",
                "Save the report and close the visit",
            )
        }
    assert labels["New incident"] != "New incident"  # the walk is in French

    # The agent, on the customer's page: a complaint in three clicks.
    signed_in(page, agent)
    page.goto(f"/contacts/{customer.id}")
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    clicks.click(page.locator("#incidents-panel").get_by_role("link", name=labels["New incident"]))
    expect(page.locator("input[name=subject]")).to_be_focused()
    page.keyboard.insert_text("Le four s'arrête et le client est mécontent")
    page.locator("select[name=kind]").select_option("complaint")
    clicks.click(page.get_by_role("button", name=labels["Create incident"]))
    header = page.locator("#incident-header")
    expect(header.locator("h1")).to_contain_text("Le four s'arrête")
    clicks.click(header.get_by_role("button", name=labels["Assign to me"]))
    expect(page.locator("#incident-assignee")).to_have_value(str(agent.id))

    # Sales follow up: one click gives the account's owner a task, linked to the complaint.
    clicks.click(page.get_by_role("button", name=labels["Follow-up task for the sales owner"]))
    expect(page.locator("#follow-ups")).to_contain_text("Sophie Laurent")

    # An intervention, planned from the incident, waits on the board.
    clicks.click(page.get_by_role("link", name=labels["Plan an intervention"]))
    expect(page.locator("input[name=address]")).to_have_value("12 rue des Lilas, 69003 Lyon")
    clicks.click(page.get_by_role("button", name=labels["Save"], exact=True))
    expect(page).to_have_url(re.compile(r"/interventions/\d+$"))
    visit = db.session.scalars(db.select(Intervention)).one()

    # The dispatch board: today's column, one drag onto the technician's 14:00 slot.
    today = utcnow().astimezone(ZoneInfo("Europe/Paris")).date()
    page.goto(f"/interventions?view=day&date={today.isoformat()}")
    slot = board_slot(page, technician, f"{today.isoformat()}T14:00")
    drag(page, clicks, page.locator(f"#tray-cards #iv-{visit.id}"), slot)
    expect(slot.locator(f"#iv-{visit.id}-t{technician.id}")).to_be_visible()

    # The technician's phone: en route, on site, the report signed on the screen.
    signed_in(phone, technician)
    phone.goto("/interventions/today")
    card = phone.locator(f"#visit-{visit.id}")
    expect(card).to_contain_text("Marie Curie")
    card.get_by_role("button", name=labels["En route"]).tap()
    expect(card.get_by_role("button", name=labels["On site"])).to_be_visible()
    card.get_by_role("button", name=labels["On site"]).tap()
    card.get_by_role("link", name=labels["Report"]).tap()
    phone.get_by_label(labels["Work done"]).fill("Thermostat remplacé, four à 250 °C.")
    phone.get_by_label(labels["Customer's name"]).fill("Marie Curie")
    pad = phone.locator(".signature-canvas")
    pad.scroll_into_view_if_needed()  # as the technician scrolls down to it
    _draw_with_a_mouse(phone, pad.bounding_box())
    expect(phone.locator("input.signature-value")).to_have_value(re.compile(r"^data:image/png"))
    phone.get_by_role("button", name=labels["Save the report and close the visit"]).tap()
    with app.test_request_context(), force_locale("fr"):
        done = pgettext("intervention status", "Done")
    expect(phone.locator(f"#visit-{visit.id}")).to_contain_text(done)

    # Everything landed where the next person will look for it.
    db.session.expire_all()
    visit = db.session.get(Intervention, visit.id)
    incident = db.session.scalars(db.select(Incident)).one()
    task = db.session.scalars(db.select(Task)).one()
    assert visit.status == "done" and visit.signature_png and visit.signed_by == "Marie Curie"
    assert (incident.kind, incident.assignee_id, incident.status) == (
        "complaint",
        agent.id,
        "resolved",
    )
    assert (task.assignee_id, task.incident_id) == (owner.id, incident.id)
    timeline = db.session.scalars(
        db.select(Activity).where(Activity.contact_id == customer.id)
    ).all()
    assert any(a.kind == "visit" and a.incident_id == incident.id for a in timeline)
    page.goto(f"/incidents/{incident.id}")
    expect(page.locator("#conversation")).to_contain_text("Thermostat remplacé")
