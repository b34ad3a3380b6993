"""The contact list: quick-add with the duplicate warning, the global search box, infinite scroll."""

import re

import pytest
from playwright.sync_api import Page, expect

from tests import factories
from tests.browser.conftest import Clicks

pytestmark = pytest.mark.browser


@pytest.fixture
def known(seed, sales_user):
    contact = factories.make_contact("Amélie", "Poulain", email="amelie@example.com")
    factories.make_contact("Bruno", "Martin", email="bruno@example.com")
    seed.commit()
    return contact


def test_quick_add_puts_the_new_contact_on_top(page: Page, clicks: Clicks, signed_in, sales_user, known):
    signed_in(page, sales_user)
    page.goto("/contacts")
    rows = page.locator("#contact-rows tr")
    expect(rows).to_have_count(2)
    page.evaluate("window.__noReload = true")

    form = page.locator("#quick-add")
    with clicks.task("add a contact from the list", budget=3):
        clicks.click(form.get_by_label("First name"))
        page.keyboard.type("Zoé")
        page.keyboard.press("Tab")
        page.keyboard.type("Zola")
        page.keyboard.press("Tab")
        page.keyboard.type("zoe@example.com")
        clicks.click(form.get_by_role("button", name="Add contact"))
        expect(rows).to_have_count(3)
    # On top of the list, not in alphabetical place: the user sees it at once.
    expect(rows.first).to_contain_text("Zoé Zola")
    expect(rows.first).to_contain_text("zoe@example.com")
    expect(rows.first).to_have_class(re.compile(r"\bnew\b"))
    expect(page.locator("#toasts .toast").filter(has_text="Zoé Zola added.")).to_be_visible()
    # The form is empty again for the next one.
    expect(page.locator("#quick-add").get_by_label("First name")).to_have_value("")
    assert page.evaluate("window.__noReload === true")

    clicks.click(rows.first.get_by_role("link", name="Zoé Zola"))
    expect(page.locator("#contact-header h1")).to_contain_text("Zoé Zola")


def test_quick_add_warns_of_a_duplicate_email(page: Page, clicks: Clicks, signed_in, sales_user, known):
    signed_in(page, sales_user)
    page.goto("/contacts")
    rows = page.locator("#contact-rows tr")
    expect(rows).to_have_count(2)

    with clicks.task("add a contact whose email is known (n, type, Add contact, Add anyway)", budget=3):
        page.keyboard.press("n")  # the shortcut to the first field of the quick-add form
        form = page.locator("#quick-add")
        expect(form.get_by_label("First name")).to_be_focused()
        page.keyboard.type("Amélie")
        page.keyboard.press("Tab")
        page.keyboard.type("Poulain-Bis")
        page.keyboard.press("Tab")
        page.keyboard.type("AMELIE@example.com")
        with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/contacts")) as info:
            clicks.click(form.get_by_role("button", name="Add contact"))
        assert info.value.status == 422
        warning = page.locator("#quick-add .warning")
        expect(warning).to_contain_text("already known")
        expect(warning.get_by_role("link", name="Amélie Poulain")).to_have_attribute(
            "href", f"/contacts/{known.id}"
        )
        expect(rows).to_have_count(2)  # nothing added yet
        # What was typed is kept.
        expect(page.locator("#quick-add").get_by_label("Last name")).to_have_value("Poulain-Bis")
        clicks.click(warning.get_by_role("button", name="Add anyway"))
        expect(rows).to_have_count(3)
    expect(rows.first).to_contain_text("Amélie Poulain-Bis")
    expect(page.locator("#quick-add .warning")).to_have_count(0)


def test_global_search_slash_suggestions_and_open(page: Page, clicks: Clicks, signed_in, sales_user, known):
    signed_in(page, sales_user)
    page.goto("/")
    search = page.locator("#global-search")
    with clicks.task("global search: /, type, click a suggestion", budget=1):
        page.keyboard.press("/")
        expect(search).to_be_focused()
        page.keyboard.type("poul")
        suggestion = page.locator("#search-suggestions").get_by_role("link", name=re.compile("Amélie Poulain"))
        expect(suggestion).to_be_visible()
        expect(page.locator("#search-suggestions li[role=option]")).to_have_count(1)
        clicks.click(suggestion)
        expect(page).to_have_url(re.compile(rf"/contacts/{known.id}$"))
    expect(page.locator("#contact-header h1")).to_contain_text("Amélie Poulain")
    expect(page.locator("#search-suggestions")).to_be_empty()


def test_infinite_scroll_loads_the_next_page(page: Page, signed_in, seed, sales_user):
    for n in range(120):
        factories.make_contact(f"Person{n:03d}", f"Scroll{n:03d}", email=f"p{n}@example.com")
    seed.commit()
    signed_in(page, sales_user)
    page.goto("/contacts")
    rows = page.locator("#contact-rows tr:not(#load-more)")
    expect(rows).to_have_count(50)
    expect(page.locator("#load-more")).to_be_attached()

    page.mouse.move(640, 450)
    page.keyboard.press("End")  # to the bottom of the page, as a user scrolls
    expect(rows).to_have_count(100)
    page.keyboard.press("End")
    expect(rows).to_have_count(120)
    expect(page.locator("#load-more")).to_have_count(0)
    # Sorted by name across pages: no duplicate, no gap.
    names = rows.locator("td:first-child a").all_inner_texts()
    assert names == [f"Person{n:03d} Scroll{n:03d}" for n in range(120)]
