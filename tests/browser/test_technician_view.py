"""The technician's day on a phone (390×844, touch): en route, on site, the report signed with
a finger on the screen, in four taps; the visit shows done and the customer's timeline and the
incident carry the report."""

import os
import re
import time
from datetime import UTC

import pytest
from playwright.sync_api import Page, expect

from crm.services.reminders import now
from tests import factories
from tests.browser.conftest import PHONE

pytestmark = pytest.mark.browser

SHOTS = os.environ.get("CRM_SCREENSHOTS")  # a folder to keep the screenshots in, to look at


@pytest.fixture
def phone(browser, base_url):
    """A phone: small viewport, touch screen, three device pixels per CSS pixel."""
    context = browser.new_context(
        viewport=PHONE,
        is_mobile=True,
        has_touch=True,
        device_scale_factor=3,
        locale="en-US",
        base_url=base_url,
    )
    page = context.new_page()
    page.set_default_timeout(5_000)
    yield page
    context.close()


@pytest.fixture
def visit(seed):
    technician = factories.make_user(role="technician", name="Théo Martin", timezone="Europe/Paris")
    company = factories.make_company(name="Boulangerie Dupain")
    contact = factories.make_contact("Marie", "Dupont", company=company, phone="+33 6 12 34 56 78")
    incident = factories.make_incident(
        contact, subject="Oven does not heat", priority="urgent", status="open"
    )
    from zoneinfo import ZoneInfo

    noon = (
        now()
        .astimezone(ZoneInfo("Europe/Paris"))
        .replace(hour=12, minute=0, second=0, microsecond=0)
    )
    intervention = factories.make_intervention(
        incident,
        technicians=[technician],
        start=noon.astimezone(UTC),
        title="Repair the oven",
        address="3 rue des Lilas, 69003 Lyon",
        skills=["ovens"],
        notes="Back door, ring twice.",
    )
    seed.commit()
    return technician, intervention


def tap(clicks, locator) -> None:
    """A finger's tap, counted like a click."""
    locator.tap()
    clicks.count += 1


def _draw_with_a_finger(page: Page, box) -> None:
    """A touch stroke through Chromium's input pipeline (touch → pointer events), done once
    the pad has exported it (a tap sent before the stroke's end is processed would be lost)."""
    before = page.locator("input.signature-value").input_value()
    session = page.context.new_cdp_session(page)
    x, y = box["x"] + 30, box["y"] + box["height"] * 0.6
    # A finger's pace (an event every 16 ms) that rests before lifting: a fast stroke would end
    # as a fling, and Chromium swallows the tap that stops a fling.
    clock = time.time()
    points = [(x + step * 12, y - (step % 5) * 8) for step in range(16)]
    points += [points[-1]] * 8
    kinds = ["touchStart"] + ["touchMove"] * (len(points) - 1)
    for n, (kind, (px, py)) in enumerate(zip(kinds, points, strict=True)):
        event = {"type": kind, "touchPoints": [{"x": px, "y": py}], "timestamp": clock + n * 0.016}
        session.send("Input.dispatchTouchEvent", event)
    end = {"type": "touchEnd", "touchPoints": [], "timestamp": clock + len(points) * 0.016}
    session.send("Input.dispatchTouchEvent", end)
    session.detach()
    page.wait_for_function(
        "before => document.querySelector('input.signature-value').value !== before", arg=before
    )


def _draw_with_a_mouse(page: Page, box) -> None:
    page.mouse.move(box["x"] + 200, box["y"] + 40)
    page.mouse.down()
    for step in range(1, 10):
        page.mouse.move(box["x"] + 200 + step * 10, box["y"] + 40 + step * 9)
    page.mouse.up()


def _ink_pixels(page: Page) -> int:
    return page.locator(".signature-canvas").evaluate(
        """canvas => {
            const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
            let inked = 0;
            for (let i = 3; i < data.length; i += 4) if (data[i]) inked++;
            return inked;
        }"""
    )


def test_the_technician_closes_the_visit_with_a_signed_report_on_a_phone(
    phone: Page, visit, signed_in, clicks, tmp_path
):
    technician, intervention = visit
    signed_in(phone, technician)
    phone.goto("/interventions/today")
    card = phone.locator(f"#visit-{intervention.id}")
    expect(card).to_contain_text("Marie Dupont")
    expect(card.locator('a[href^="tel:"]')).to_have_attribute("href", "tel:+33612345678")
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the day is {width}px wide on a {PHONE['width']}px phone"
    folder = SHOTS or tmp_path
    phone.screenshot(path=f"{folder}/technician-day.png", full_page=True)

    with clicks.task("close a visit with a signed report on a phone", 4):
        tap(clicks, card.get_by_role("button", name="En route"))
        expect(card.locator(".visit-status")).to_have_text("En route")
        expect(phone.locator(".toast")).to_contain_text("On the way to Marie Dupont")
        tap(clicks, card.get_by_role("button", name="On site"))
        expect(card.locator(".visit-status")).to_have_text("On site")
        tap(clicks, card.get_by_role("link", name="Report"))

        expect(phone.locator("#report-form")).to_be_visible()
        phone.get_by_label("Work done").focus()
        phone.keyboard.insert_text("Replaced the thermostat; oven back at 250 °C.")
        phone.get_by_label("Parts used").focus()
        phone.keyboard.insert_text("1 x Thermostat")
        expect(phone.get_by_label("Customer's name")).to_have_value("Marie Dupont")
        pad = phone.locator(".signature-canvas")
        pad.scroll_into_view_if_needed()
        box = pad.bounding_box()
        _draw_with_a_finger(phone, box)
        _draw_with_a_mouse(phone, box)
        assert _ink_pixels(phone) > 100
        expect(phone.locator("input.signature-value")).to_have_value(
            re.compile(r"^data:image/png;base64,")
        )
        phone.screenshot(path=f"{folder}/technician-report.png", full_page=True)
        tap(clicks, phone.get_by_role("button", name="Save the report and close the visit"))

        expect(phone).to_have_url(re.compile(r"/interventions/today\?day="))
        card = phone.locator(f"#visit-{intervention.id}")
        expect(card.locator(".visit-status")).to_have_text("Done")
        expect(card).to_contain_text("Report saved")
        expect(phone.locator(".toast")).to_contain_text("Report saved")
    phone.screenshot(path=f"{folder}/technician-done.png", full_page=True)

    # The report, signature included, and the customer's timeline.
    card.get_by_role("link", name="See the report").tap()
    expect(phone.locator(".visit-report")).to_contain_text("Replaced the thermostat")
    signature = phone.locator("img.signature-image")
    expect(signature).to_be_visible()
    assert signature.evaluate("img => img.naturalWidth") > 0
    phone.goto(f"/contacts/{intervention.contact_id}")
    timeline = phone.locator(".timeline")
    expect(timeline).to_contain_text(f"Intervention report: {intervention.title}")
    expect(timeline).to_contain_text("Replaced the thermostat")
    expect(timeline).to_contain_text("Théo Martin arrived on site")
    if _incident_page_exists(phone, intervention.incident_id):
        expect(phone.locator("main")).to_contain_text("Intervention report")


def _incident_page_exists(page: Page, incident_id: int) -> bool:
    response = page.goto(f"/incidents/{incident_id}")
    return response is not None and response.status == 200


def test_a_form_sent_back_keeps_the_drawn_signature(phone: Page, visit, signed_in):
    technician, intervention = visit
    signed_in(phone, technician)
    phone.goto(f"/interventions/{intervention.id}/report")
    pad = phone.locator(".signature-canvas")
    pad.scroll_into_view_if_needed()
    _draw_with_a_finger(phone, pad.bounding_box())
    drawn = _ink_pixels(phone)

    phone.get_by_role("button", name="Save the report and close the visit").tap()  # no work done

    expect(phone.locator(".work-done .error")).to_have_text("This field is required.")
    expect(phone.locator("input.signature-value")).to_have_value(re.compile(r"^data:image/png"))
    phone.wait_for_function(
        """() => {
            const canvas = document.querySelector(".signature-canvas");
            const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
            for (let i = 3; i < data.length; i += 4) if (data[i]) return true;
            return false;
        }"""
    )
    assert drawn > 0
    phone.get_by_role("button", name="Clear").tap()
    expect(phone.locator("input.signature-value")).to_have_value("")
    assert _ink_pixels(phone) == 0
