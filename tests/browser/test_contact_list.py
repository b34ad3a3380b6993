"""The contact list: quick-add with the duplicate warning, infinite scroll, active search."""

import re
import threading
from urllib.parse import parse_qs

import pytest
from playwright.sync_api import Page, expect

from crm.models import Contact
from tests import factories
from tests.browser.conftest import Clicks

pytestmark = pytest.mark.browser


@pytest.fixture
def known(seed, sales_user):
    contact = factories.make_contact("Amélie", "Poulain", email="amelie@example.com")
    factories.make_contact("Bruno", "Martin", email="bruno@example.com")
    seed.commit()
    return contact


def test_quick_add_warns_of_a_duplicate_and_puts_the_new_contact_on_top(
    page: Page, clicks: Clicks, signed_in, sales_user, known
):
    signed_in(page, sales_user)
    page.goto("/contacts")
    rows = page.locator("#contact-rows tr")
    expect(rows).to_have_count(2)
    page.evaluate("window.__noReload = true")

    # An email that is already known: the warning, then "Add anyway".
    with clicks.task(
        "add a contact whose email is known (n, type, Add contact, Add anyway)", budget=3
    ):
        page.keyboard.press("n")  # the shortcut to the first field of the quick-add form
        form = page.locator("#quick-add")
        expect(form.get_by_label("First name")).to_be_focused()
        page.keyboard.insert_text("Amélie")
        page.keyboard.press("Tab")
        page.keyboard.insert_text("Poulain-Bis")
        page.keyboard.press("Tab")
        page.keyboard.insert_text("AMELIE@example.com")
        with page.expect_response(
            lambda r: r.request.method == "POST" and r.url.endswith("/contacts")
        ) as info:
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

    # A new one: click the first field, type name and email, click "Add contact".
    form = page.locator("#quick-add")
    with clicks.task("add a contact from the list", budget=3):
        clicks.click(form.get_by_label("First name"))
        page.keyboard.insert_text("Zoé")
        page.keyboard.press("Tab")
        page.keyboard.insert_text("Zola")
        page.keyboard.press("Tab")
        page.keyboard.insert_text("zoe@example.com")
        clicks.click(form.get_by_role("button", name="Add contact"))
        expect(rows).to_have_count(4)
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


def test_infinite_scroll_loads_the_next_page(page: Page, signed_in, seed, sales_user):
    seed.add_all(
        Contact(first_name=f"Person{n:03d}", last_name=f"Scroll{n:03d}", email=f"p{n}@example.com")
        for n in range(120)
    )
    seed.commit()
    signed_in(page, sales_user)
    page.goto("/contacts")
    rows = page.locator("#contact-rows tr:not(#load-more)")
    expect(rows).to_have_count(25)  # PAGE_SIZE: more than the window shows
    expect(page.locator("#load-more")).to_be_attached()

    # To the bottom of the page, as a user scrolls, until every contact is there; a page
    # whose loading row lands in view at once may follow the one before without a key.
    for _ in range(5):
        shown = rows.count()
        if shown == 120:
            break
        page.keyboard.press("End")
        expect(rows).not_to_have_count(shown)
    expect(rows).to_have_count(120)
    expect(page.locator("#load-more")).to_have_count(0)
    # Sorted by name across pages: no duplicate, no gap.
    names = rows.locator("td:first-child a").all_inner_texts()
    assert names == [f"Person{n:03d} Scroll{n:03d}" for n in range(120)]


@pytest.fixture
def held_search(csrf_app):
    """Hold the server's answer to `/contacts?q=a` until released: a slow first answer."""
    arrived, release = threading.Event(), threading.Event()
    inner = csrf_app.wsgi_app

    def gate(environ, start_response):
        if environ.get("PATH_INFO") == "/contacts" and parse_qs(
            environ.get("QUERY_STRING", "")
        ).get("q") == ["a"]:
            arrived.set()
            release.wait(10)
        return inner(environ, start_response)

    csrf_app.wsgi_app = gate
    yield arrived
    release.set()
    csrf_app.wsgi_app = inner


def test_active_search_shows_what_was_typed_last_when_an_answer_is_slow(
    page: Page, signed_in, seed, sales_user, held_search
):
    factories.make_contact("Amélie", "Poulain", email="amelie@example.com")
    factories.make_contact("Amandine", "Martin", email="amandine@example.com")
    factories.make_contact("Bruno", "Dubois", email="bruno@example.com")
    seed.commit()
    signed_in(page, sales_user)
    page.goto("/contacts")
    rows = page.locator("#contact-rows tr")
    expect(rows).to_have_count(3)
    # Count the searches htmx starts, on an attribute that expect() can wait for.
    page.evaluate(
        "document.addEventListener('htmx:config:request', () =>"
        " document.body.dataset.searches = Number(document.body.dataset.searches || 0) + 1)"
    )
    search = page.get_by_role("searchbox", name="Search contacts")
    search.focus()
    # Type slower than the 200 ms debounce: one search per key, the first one slow to answer.
    page.keyboard.type("a")
    assert held_search.wait(5), "the first search never reached the server"
    for count, key in enumerate("me", start=2):
        page.keyboard.type(key)
        expect(page.locator("body")).to_have_attribute("data-searches", str(count))
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Amélie Poulain")
    expect(page).to_have_url(re.compile(r"[?&]q=ame(&|$)"))
