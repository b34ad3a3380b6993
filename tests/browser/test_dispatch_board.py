"""The dispatch board in Chromium: an unscheduled intervention is dragged onto a technician's
slot and saved with one drag; a slot already taken refuses it with a clear message and the
card goes back to the tray.

SortableJS runs in its fallback mode (pointer events): the test presses on the card, moves past
the tolerance, moves over the slot, waits until SortableJS has put the card there, releases.
"""

import os
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Locator, Page, expect

from crm.extensions import db
from crm.models import Intervention
from tests import factories
from tests.browser.conftest import Clicks

pytestmark = pytest.mark.browser

MONDAY = "2030-03-04"
# 09:00 in Paris (the users' default zone) that Monday: UTC+1 in winter.
NINE_PARIS = datetime(2030, 3, 4, 8, 0, tzinfo=UTC)


def drag(page: Page, clicks: Clicks, card: Locator, target: Locator) -> None:
    """One drag, counted as one click: press on the card, release over the slot."""
    card_id = card.get_attribute("id")
    card.scroll_into_view_if_needed()
    # SortableJS ignores a press on a card while it animates it: wait until it lets go.
    page.wait_for_function("id => !document.getElementById(id).animated", arg=card_id)
    start = card.bounding_box()
    x, y = start["x"] + 30, start["y"] + 10
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 8, y + 8, steps=2)  # past SortableJS's tolerance: the drag starts
    end = target.bounding_box()
    page.mouse.move(end["x"] + end["width"] / 2, end["y"] + end["height"] / 2, steps=6)
    # SortableJS looks where the pointer is every 50 ms: wait until it has put the card there.
    expect(target.locator(f"#{card_id}.card-ghost")).to_have_count(1)
    page.mouse.up()
    clicks.count += 1


def slot(page: Page, technician, local_start: str) -> Locator:
    """The technician's cell at that local start: in their row, under the hour head that
    says it (the cells themselves carry nothing)."""
    head = page.locator(f'.dispatch-grid thead th[data-start="{local_start}"]')
    column = head.evaluate("th => th.cellIndex") + 2  # after the technician's own cell
    return page.locator(f"#tech-{technician.id} > td:nth-child({column})")


@pytest.fixture
def dispatch(seed):
    agent = factories.make_user(role="support", name="Sam Support")
    alice = factories.make_user(role="technician", name="Alice Martin", skills=["boiler"])
    bob = factories.make_user(role="technician", name="Bob Durand", skills=["electricity"])
    customer = factories.make_contact("Marie", "Dupont", phone="+33 4 72 00 00 00")
    incident = factories.make_incident(customer, subject="Heating down")
    repair = factories.make_intervention(incident, title="Boiler repair", skills=["boiler"])
    check = factories.make_intervention(incident, title="Annual check", minutes=30)
    factories.make_intervention(
        incident,
        title="Wiring",
        technicians=[bob],
        start=NINE_PARIS + timedelta(hours=2),
        minutes=120,
        skills=["electricity"],
    )
    seed.commit()
    return agent, alice, bob, repair, check


def test_drag_an_unscheduled_intervention_onto_a_technicians_slot(
    page: Page, clicks: Clicks, signed_in, dispatch
):
    agent, alice, bob, repair, check = dispatch
    signed_in(page, agent)
    page.goto(f"/interventions?date={MONDAY}")
    expect(page.locator("#tray-cards .iv-card")).to_have_count(2)
    expect(slot(page, bob, "2030-03-04T11:00").locator(".iv-card")).to_contain_text("Wiring")
    page.evaluate("window.__noReload = true")

    card = page.locator(f"#iv-{repair.id}")
    target = slot(page, alice, "2030-03-04T09:00")
    with clicks.task("schedule an intervention by dragging it onto the board", budget=1):
        drag(page, clicks, card, target)
        expect(
            page.locator("#toasts .toast").filter(has_text="Boiler repair planned for Alice Martin")
        ).to_be_visible()
    placed = target.locator(f"#iv-{repair.id}-t{alice.id}")
    expect(placed).to_be_visible()
    expect(placed.locator(".iv-time")).to_have_text("9:00 AM–10:00 AM")
    expect(page.locator("#tray-cards .iv-card")).to_have_count(1)
    assert page.evaluate("window.__noReload === true"), "the page was reloaded"
    page.mouse.move(5, 5)  # the card under the pointer opens up: let it close
    if os.environ.get("CRM_SCREENSHOTS"):
        page.screenshot(path=os.environ["CRM_SCREENSHOTS"] + "/dispatch-board.png", full_page=True)
        page.get_by_role("link", name="Day", exact=True).click()
        expect(page.locator(".dispatch-grid.view-day")).to_be_visible()
        page.screenshot(
            path=os.environ["CRM_SCREENSHOTS"] + "/dispatch-board-day.png", full_page=True
        )
        page.go_back()

    db.session.expire_all()
    saved = db.session.get(Intervention, repair.id)
    assert (saved.status, saved.starts_at) == ("planned", NINE_PARIS)
    assert [(b.technician_id, b.active) for b in saved.bookings] == [(alice.id, True)]

    page.reload()
    expect(
        slot(page, alice, "2030-03-04T09:00").locator(f"#iv-{repair.id}-t{alice.id}")
    ).to_be_visible()


def test_a_taken_slot_refuses_the_card_with_a_clear_message(
    page: Page, clicks: Clicks, signed_in, dispatch
):
    agent, alice, bob, repair, check = dispatch
    signed_in(page, agent)
    page.goto(f"/interventions?date={MONDAY}")
    card = page.locator(f"#iv-{check.id}")
    # Bob is on "Wiring" from 11:00 to 13:00.
    drag(page, clicks, card, slot(page, bob, "2030-03-04T12:00"))
    expect(page.locator("#toasts .toast-error")).to_contain_text(
        "Bob Durand is already booked from"
    )
    expect(page.locator("#toasts .toast-error")).to_contain_text("“Wiring”")
    expect(page.locator(f"#tray-cards #iv-{check.id}")).to_be_visible()
    db.session.expire_all()
    assert db.session.get(Intervention, check.id).status == "unscheduled"


def test_the_card_menu_schedules_without_dragging(page: Page, signed_in, dispatch):
    agent, alice, bob, repair, check = dispatch
    signed_in(page, agent)
    page.goto(f"/interventions?date={MONDAY}")
    card = page.locator(f"#iv-{check.id}")
    # The keyboard's way: to the card's menu button, Enter, the fields, Enter.
    card.get_by_role("button", name="Schedule or move").focus()
    page.keyboard.press("Enter")
    menu = page.get_by_role("dialog", name="Schedule or move")
    expect(menu).to_contain_text("Annual check")
    expect(menu.get_by_label("Technician")).to_be_focused()
    menu.get_by_label("Technician").select_option(label="Alice Martin")
    menu.get_by_label("Start").fill("2030-03-04T14:30")
    menu.get_by_label("Start").press("Enter")
    placed = slot(page, alice, "2030-03-04T14:00").locator(f"#iv-{check.id}-t{alice.id}")
    expect(placed).to_be_visible()
    expect(page.locator("#iv-menu")).not_to_be_visible()

    # The same menu, opened from a placed card, starts from where it is and takes it back.
    placed.hover()
    placed.get_by_role("button", name="Schedule or move").click()
    expect(menu.get_by_label("Technician")).to_have_value(str(alice.id))
    expect(menu.get_by_label("Start")).to_have_value("2030-03-04T14:30")
    menu.get_by_role("button", name="Unschedule").click()
    expect(page.locator(f"#tray-cards #iv-{check.id}")).to_be_visible()
    db.session.expire_all()
    assert db.session.get(Intervention, check.id).status == "unscheduled"


def test_the_tray_shows_its_oldest_cards_and_the_rest_on_demand(
    page: Page, signed_in, seed, dispatch, clicks: Clicks
):
    from crm.services.dispatch_board import TRAY_FIRST

    agent, alice, bob, repair, check = dispatch
    incident = repair.incident
    for number in range(TRAY_FIRST):
        factories.make_intervention(incident, title=f"Waiting {number}")
    seed.commit()
    signed_in(page, agent)
    page.goto(f"/interventions?date={MONDAY}")
    cards = page.locator("#tray-cards .iv-card")
    expect(cards).to_have_count(TRAY_FIRST)
    expect(page.locator(".tray-count")).to_have_text(str(TRAY_FIRST + 2))
    with clicks.task("see the rest of the unscheduled interventions", budget=1):
        clicks.click(page.get_by_role("link", name="+2 more"))
        expect(cards).to_have_count(TRAY_FIRST + 2)
    # A card that came in drags like the others.
    last = cards.last
    drag(page, clicks, last, slot(page, alice, "2030-03-04T15:00"))
    expect(
        page.locator("#toasts .toast").filter(has_text="planned for Alice Martin")
    ).to_be_visible()
    # The board comes back with the tray's first page again, and says what is left.
    expect(page.locator(".tray-count")).to_have_text(str(TRAY_FIRST + 1))
    expect(cards).to_have_count(TRAY_FIRST)
    expect(page.get_by_role("link", name="+1 more")).to_be_visible()
