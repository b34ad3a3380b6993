"""The deal board in Chromium: a deal moves with one drag, to Lost with its reason, and the
column totals follow without a reload. A refused move puts the card back.

SortableJS runs in its fallback mode (pointer events, not the HTML5 drag and drop API), so
the tests drag with the mouse as a user does: press on the card, move past the tolerance,
move over the other column, wait until SortableJS has put the card there, release.
"""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from playwright.sync_api import Locator, Page, expect

from crm.extensions import db
from crm.models import Deal
from crm.models.types import utcnow
from crm.services import deal_board
from tests import factories
from tests.browser.conftest import DESKTOP, Clicks

pytestmark = pytest.mark.browser


def drag(page: Page, clicks: Clicks, card: Locator, column: Locator, level: bool = False) -> None:
    """One drag, counted as one click: press on the card, release over the column (at its
    top, or `level` with the card: far down a long column, the top is off the screen)."""
    card_id = card.get_attribute("id")
    card.scroll_into_view_if_needed()
    # SortableJS ignores a press on a card while it animates it (120 ms after a drop,
    # longer on a busy machine): wait until it has let go of the card.
    page.wait_for_function("id => !document.getElementById(id).animated", arg=card_id)
    start = card.bounding_box()
    x, y = start["x"] + start["width"] / 2, start["y"] + 12
    page.mouse.move(x, y)
    # Let the page paint once with the pointer over the card before pressing: pressed in the
    # same frame as a card put back (a cancelled drop), SortableJS missed the drag.
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    page.mouse.down()
    page.mouse.move(x + 8, y + 8, steps=2)  # past SortableJS's tolerance: the drag starts
    end = column.bounding_box()
    target_x, target_y = end["x"] + end["width"] / 2, end["y"] + min(40, end["height"] / 2)
    if level:
        target_y = y
    page.mouse.move(target_x, target_y, steps=5)
    # SortableJS looks where the pointer is every 50 ms: wait until it has put the card there.
    expect(column.locator(f"#{card_id}.card-ghost")).to_have_count(1)
    page.mouse.up()
    clicks.count += 1


@pytest.fixture
def board(seed, sales_user):
    pipeline = factories.make_pipeline("New business")
    pipeline.is_default = True
    stages = {stage.name: stage for stage in pipeline.stages}
    acme = factories.make_company("Acme")
    deals = {
        "acme": factories.make_deal(
            pipeline,
            owner=sales_user,
            title="Acme renewal",
            amount="12000",
            company=acme,
            expected_close=utcnow().date() + timedelta(days=20),
        ),
        "globex": factories.make_deal(
            pipeline, owner=sales_user, title="Globex pilot", amount="3000"
        ),
        "demo": factories.make_deal(
            pipeline, stages["Demo"], owner=sales_user, title="Initech", amount="5000"
        ),
    }
    seed.commit()
    return pipeline, stages, deals


def column(page: Page, stage) -> Locator:
    return page.locator(f"#stage-cards-{stage.id}")


def head(page: Page, stage) -> Locator:
    return page.locator(f"#stage-head-{stage.id}")


def card_in(page: Page, stage, deal) -> Locator:
    return column(page, stage).locator(f"#deal-{deal.id}")


def stored(deal) -> Deal:
    """The deal as the database holds it now, after the server's changes."""
    db.session.expire_all()
    return db.session.get(Deal, deal.id)


def test_move_a_deal_with_one_drag_then_to_lost_with_its_reason(
    page: Page, clicks: Clicks, signed_in, sales_user, board
):
    pipeline, stages, deals = board
    signed_in(page, sales_user)
    page.goto("/deals")
    prospection, demo, lost = stages["Prospection"], stages["Demo"], stages["Lost"]
    expect(head(page, prospection).locator(".column-total")).to_have_text("€15,000")
    expect(head(page, demo).locator(".column-total")).to_have_text("€5,000")
    page.evaluate("window.__noReload = true")

    card = page.locator(f"#deal-{deals['acme'].id}")
    with clicks.task("move a deal to another stage (one drag)", budget=1):
        drag(page, clicks, card, column(page, demo))
        expect(
            page.locator("#toasts .toast").filter(has_text="Deal moved to Demo.")
        ).to_be_visible()
    # The heads of both columns follow, without a reload.
    expect(head(page, demo).locator(".column-count")).to_have_text("2")
    expect(head(page, demo).locator(".column-total")).to_have_text("€17,000")
    expect(head(page, demo).locator(".column-weighted")).to_have_text("€6,800 weighted")
    expect(head(page, prospection).locator(".column-count")).to_have_text("1")
    expect(head(page, prospection).locator(".column-total")).to_have_text("€3,000")
    expect(card_in(page, demo, deals["acme"])).to_have_attribute("data-version", "2")
    assert page.evaluate("window.__noReload === true"), "the page was reloaded"
    assert stored(deals["acme"]).stage_id == demo.id

    # To Lost: the drop asks why; typing the reason and one click confirm it.
    card = page.locator(f"#deal-{deals['globex'].id}")
    dialog = page.locator("#lost-dialog")
    with clicks.task("move a deal to Lost with its reason (drag, type, confirm)", budget=2):
        drag(page, clicks, card, column(page, lost))
        expect(dialog).to_be_visible()
        expect(dialog.locator(".lost-deal-title")).to_have_text("Globex pilot")
        expect(dialog.get_by_label("Lost reason")).to_be_focused()
        page.keyboard.insert_text("Chose a competitor")
        clicks.click(dialog.get_by_role("button", name="Mark as lost"))
        expect(
            page.locator("#toasts .toast").filter(has_text="Deal moved to Lost.")
        ).to_be_visible()
    expect(dialog).to_be_hidden()
    expect(card_in(page, lost, deals["globex"])).to_be_visible()
    expect(head(page, lost).locator(".column-count")).to_have_text("1")
    expect(head(page, lost).locator(".column-total")).to_have_text("€3,000")
    expect(head(page, prospection).locator(".column-count")).to_have_text("0")
    expect(head(page, prospection).locator(".column-total")).to_have_text("€0")
    assert page.evaluate("window.__noReload === true"), "the page was reloaded"
    saved = stored(deals["globex"])
    assert (saved.stage_id, saved.lost_reason) == (lost.id, "Chose a competitor")


def test_cancelling_the_lost_reason_puts_the_card_back(
    page: Page, clicks: Clicks, signed_in, sales_user, board
):
    pipeline, stages, deals = board
    signed_in(page, sales_user)
    page.goto("/deals")
    card = page.locator(f"#deal-{deals['demo'].id}")
    drag(page, clicks, card, column(page, stages["Lost"]))
    dialog = page.locator("#lost-dialog")
    expect(dialog).to_be_visible()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(card_in(page, stages["Demo"], deals["demo"])).to_be_visible()
    expect(card.locator("form")).to_have_count(0)  # the form the drop filled in is gone
    # Cancel as well as Escape.
    drag(page, clicks, card, column(page, stages["Lost"]))
    clicks.click(dialog.get_by_role("button", name="Cancel"))
    expect(card_in(page, stages["Demo"], deals["demo"])).to_be_visible()
    expect(head(page, stages["Lost"]).locator(".column-count")).to_have_text("0")
    assert stored(deals["demo"]).stage_id == stages["Demo"].id


def test_a_deal_changed_meanwhile_goes_back_with_a_clear_message(
    page: Page, clicks: Clicks, signed_in, sales_user, board
):
    pipeline, stages, deals = board
    signed_in(page, sales_user)
    page.goto("/deals")
    # A manager saves the deal after the page was loaded.
    manager = factories.make_user(role="manager", name="Marc Manager")
    deal = db.session.get(Deal, deals["acme"].id)
    deal.amount, deal.updated_by = Decimal("12500"), manager
    db.session.commit()

    card = page.locator(f"#deal-{deals['acme'].id}")
    drag(page, clicks, card, column(page, stages["Demo"]))
    expect(page.locator("#toasts .toast-error")).to_have_text(
        "This deal was changed by Marc Manager. Reload to see their changes."
    )
    expect(card_in(page, stages["Prospection"], deals["acme"])).to_be_visible()
    expect(head(page, stages["Demo"]).locator(".column-count")).to_have_text("1")
    assert stored(deals["acme"]).stage_id == stages["Prospection"].id


def test_the_keyboard_moves_a_deal_with_the_stage_menu(
    page: Page, clicks: Clicks, signed_in, sales_user, board
):
    pipeline, stages, deals = board
    signed_in(page, sales_user)
    page.goto("/deals")
    card = page.locator(f"#deal-{deals['acme'].id}")
    menu = card.get_by_role("link", name="Move to another stage")
    # Tab from the title reaches the card's menu; Enter opens it, Tab goes to the stage.
    card.get_by_role("link", name="Acme renewal").focus()
    page.keyboard.press("Tab")
    expect(menu).to_be_focused()
    expect(menu).to_have_text("⋯")
    page.keyboard.press("Enter")
    expect(menu).to_have_attribute("aria-expanded", "true")
    expect(page).to_have_url(re.compile(r"/deals$"))  # the menu opened in place
    page.keyboard.press("Tab")
    expect(card.get_by_label("Stage", exact=True)).to_be_focused()
    card.get_by_label("Stage", exact=True).select_option(label="Proposal review")
    page.keyboard.press("Tab")
    expect(card.get_by_role("button", name="Move")).to_be_focused()
    page.keyboard.press("Enter")
    moved = card_in(page, stages["Proposal review"], deals["acme"])
    expect(moved).to_be_visible()
    expect(head(page, stages["Proposal review"]).locator(".column-total")).to_have_text("€12,000")
    # The keyboard stays on the card, its menu closed.
    expect(moved.get_by_role("link", name="Move to another stage")).to_be_focused()
    expect(moved.locator("form")).to_have_count(0)

    # To Lost from the menu: the same dialog asks for the reason.
    page.keyboard.press("Enter")
    moved.get_by_label("Stage", exact=True).select_option(label="Lost")
    moved.get_by_role("button", name="Move").press("Enter")
    dialog = page.locator("#lost-dialog")
    expect(dialog).to_be_visible()
    page.keyboard.insert_text("No budget this year")
    dialog.get_by_role("button", name="Mark as lost").press("Enter")
    expect(card_in(page, stages["Lost"], deals["acme"])).to_be_visible()
    assert stored(deals["acme"]).lost_reason == "No budget this year"


def test_filters_redraw_the_board_and_the_drag_still_works(
    page: Page, clicks: Clicks, signed_in, sales_user, board
):
    pipeline, stages, deals = board
    signed_in(page, sales_user)
    page.goto("/")
    # Arrive by the side bar: a boosted navigation, Sortable is loaded on demand.
    clicks.click(page.locator("nav.sidebar").get_by_role("link", name="Deals"))
    expect(page.locator("#deal-board")).to_be_visible()
    search = page.get_by_role("searchbox", name="Search deals")
    search.press_sequentially("acme")
    expect(page).to_have_url(f"{page.url.split('?')[0].rstrip('/')}?pipeline={pipeline.id}&q=acme")
    expect(page.locator(".deal-card")).to_have_count(1)
    # Initech, in Demo, is filtered out: the head counts what the board shows.
    expect(head(page, stages["Demo"]).locator(".column-count")).to_have_text("0")
    drag(page, clicks, page.locator(f"#deal-{deals['acme'].id}"), column(page, stages["Demo"]))
    expect(head(page, stages["Demo"]).locator(".column-count")).to_have_text("1")
    expect(head(page, stages["Demo"]).locator(".column-total")).to_have_text("€12,000")


def test_without_javascript_the_card_menu_moves_a_deal(
    browser, base_url, signed_in, sales_user, board
):
    pipeline, stages, deals = board
    context = browser.new_context(java_script_enabled=False, base_url=base_url, viewport=DESKTOP)
    page = context.new_page()
    page.set_default_timeout(5_000)
    signed_in(page, sales_user)
    page.goto("/deals?q=acme")
    card = page.locator(f"#deal-{deals['acme'].id}")
    # "⋯" opens the deal's move form on a page of its own.
    card.get_by_role("link", name="Move to another stage").click()
    expect(page.locator("main h1")).to_have_text("Move to another stage")
    page.get_by_label("Stage", exact=True).select_option(label="Demo")
    page.get_by_role("button", name="Move").click()
    expect(page).to_have_url(re.compile(r"/deals\?q=acme$"))  # back to the same board
    expect(card_in(page, stages["Demo"], deals["acme"])).to_be_visible()
    expect(page.locator("#toasts")).to_contain_text("Deal moved to Demo.")

    # Lost without a reason: the page asks for it, the stage kept.
    card.get_by_role("link", name="Move to another stage").click()
    page.get_by_label("Stage", exact=True).select_option(label="Lost")
    page.get_by_role("button", name="Move").click()
    expect(page.locator("main h1")).to_have_text("Why was this deal lost?")
    expect(page.get_by_label("Stage", exact=True)).to_have_value(str(stages["Lost"].id))
    page.get_by_label("Lost reason").fill("Too expensive")
    page.get_by_role("button", name="Move").click()
    expect(page).to_have_url(re.compile(r"/deals\?q=acme$"))
    expect(card_in(page, stages["Lost"], deals["acme"])).to_be_visible()
    assert stored(deals["acme"]).lost_reason == "Too expensive"
    context.close()


def test_a_column_loads_its_next_cards_as_one_scrolls_down_it(
    page: Page, clicks: Clicks, signed_in, sales_user, board
):
    pipeline, stages, deals = board
    prospection = stages["Prospection"]
    today = utcnow().date()
    more = deal_board.FIRST_CARDS + deal_board.NEXT_CARDS  # two scrolls' worth beyond the first
    for i in range(more):
        factories.make_deal(
            pipeline,
            owner=sales_user,
            title=f"Later {i:02}",
            expected_close=today + timedelta(days=60 + i),
        )
    db.session.commit()
    total = more + 2  # and Acme renewal, Globex pilot
    page.set_viewport_size({"width": 1280, "height": 700})
    signed_in(page, sales_user)
    page.goto("/deals")
    cards = column(page, prospection).locator(".deal-card")
    expect(cards).to_have_count(deal_board.FIRST_CARDS)
    expect(head(page, prospection).locator(".column-count")).to_have_text(str(total))
    end = column(page, prospection).locator(".column-more")
    expect(end).to_have_text(f"and {total - deal_board.FIRST_CARDS} more")

    # Scrolling down the column brings the next cards, then the last ones: no click.
    end.scroll_into_view_if_needed()
    expect(cards).to_have_count(deal_board.FIRST_CARDS + deal_board.NEXT_CARDS)
    column(page, prospection).locator(".column-more").scroll_into_view_if_needed()
    expect(cards).to_have_count(total)
    expect(column(page, prospection).locator(".column-more")).to_have_count(0)
    expect(cards.nth(total - 2)).to_contain_text(f"Later {more - 1:02}")
    expect(cards.last).to_contain_text("Globex pilot")  # undated: last

    # A card loaded on the way moves like the others.
    last = page.locator(f"#{cards.last.get_attribute('id')}")
    drag(page, clicks, last, column(page, stages["Demo"]), level=True)
    expect(column(page, stages["Demo"]).locator(f"#{last.get_attribute('id')}")).to_be_visible()
    expect(head(page, stages["Demo"]).locator(".column-count")).to_have_text("2")
    expect(head(page, prospection).locator(".column-count")).to_have_text(str(total - 1))
