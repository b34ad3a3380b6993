"""The contact page on a desktop and at phone width; screenshots in /tmp for a human to look at."""

import re

import pytest
from playwright.sync_api import Page, expect

from crm.services.timeline import record_activity
from tests import factories
from tests.browser.conftest import PHONE

pytestmark = pytest.mark.browser

DESKTOP_SHOT = "/tmp/contact-page.png"
PHONE_SHOT = "/tmp/contact-phone.png"


@pytest.fixture
def busy_contact(seed, sales_user):
    """A contact as it looks after a few weeks of work: company, tags, a timeline."""
    company = factories.make_company("Boulangerie Poulain & Fils", city="Lyon")
    contact = factories.make_contact(
        "Amélie",
        "Poulain-Delacroix",
        email="amelie.poulain-delacroix@boulangerie-poulain.example.com",
        phone="+33 4 78 12 34 56",
        title="Head of purchasing",
        company=company,
        owner=sales_user,
        city="Lyon",
        country="France",
        source="Trade fair",
        linkedin_url="https://www.linkedin.com/in/amelie-poulain-delacroix-0123456789",
    )
    record_activity(sales_user, "system", contact=contact, data={"event": "created"})
    record_activity(
        sales_user,
        "call",
        contact=contact,
        outcome="reached",
        body="Interested in the spring catalogue; wants prices for 200 units.",
    )
    record_activity(
        sales_user,
        "note",
        contact=contact,
        body="Prefers email in the morning. Assistant: Nino (ext. 214).",
    )
    record_activity(sales_user, "call", contact=contact, outcome="voicemail")
    seed.commit()
    return contact


def test_contact_page_on_a_desktop_and_at_phone_width(
    page: Page, signed_in, sales_user, busy_contact
):
    signed_in(page, sales_user)
    page.goto(f"/contacts/{busy_contact.id}")
    expect(page.locator("#timeline li")).to_have_count(4)
    # Desktop: fields and timeline side by side, nothing wider than the window.
    fields = page.locator(".record-fields").bounding_box()
    timeline = page.locator(".record-main").bounding_box()
    assert fields["x"] + fields["width"] <= timeline["x"]
    assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]
    page.screenshot(path=DESKTOP_SHOT)

    # The same page at phone width.
    page.set_viewport_size(PHONE)
    expect(page.locator(".record-layout")).to_have_css(
        "grid-template-columns", re.compile(r"^\S+$")
    )
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page is {width}px wide at {PHONE['width']}px"
    # One column, the composer and the timeline first: on a phone the call is logged
    # without scrolling past the fields.
    fields = page.locator(".record-fields").bounding_box()
    timeline = page.locator(".record-main").bounding_box()
    assert fields["y"] >= timeline["y"] + timeline["height"]
    # The stage stepper, the composer and the top bar fit: no zooming out, no hidden stage.
    for selector in (
        ".stage-stepper",
        "#composer",
        ".topbar",
        ".stage-stepper button[value=former]",
    ):
        box = page.locator(selector).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], selector
    page.screenshot(path=PHONE_SHOT)

    # The contact list too.
    page.goto("/contacts")
    expect(page.locator("#contact-rows tr")).to_have_count(1)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the contact list is {width}px wide at {PHONE['width']}px"
