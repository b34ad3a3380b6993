"""The main tasks on contacts, walked as a user does them, each counted in clicks.

Log in, find a contact by typing part of its name, open it, log a call, add a note,
change its stage, edit a field in place; then a manager finds a contact with the
global search and deletes it.
"""

import re

import pytest
from playwright.sync_api import Page, expect

from tests import factories
from tests.browser.conftest import Clicks, sign_in, wait_until_ready

pytestmark = pytest.mark.browser


@pytest.fixture
def contacts(seed, sales_user):
    company = factories.make_company("Studio Ghibli")
    found = factories.make_contact(
        "Amélie",
        "Poulain",
        email="amelie@example.com",
        company=company,
        title="Buyer",
        owner=sales_user,
    )
    factories.make_contact("Bruno", "Martin", email="bruno@example.com")
    factories.make_contact("Chloé", "Dubois", email="chloe@example.com")
    seed.commit()
    return found


def mark_page(page: Page) -> None:
    """A flag on window: still there afterwards means no page load happened in between."""
    page.evaluate("window.__noReload = true")


def assert_not_reloaded(page: Page) -> None:
    assert page.evaluate("window.__noReload === true"), "the page was reloaded"


def test_log_in_find_open_call_note_stage_edit(page: Page, clicks: Clicks, sales_user, contacts):
    amelie = contacts

    # 1. Log in through the form: type the email and the password, click Sign in.
    with clicks.task("log in", budget=1):
        sign_in(page, clicks, sales_user.email)
    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.locator("main h1")).to_have_text("Hello Sarah")
    # From here on, hx-boost turns every link into a swap of the body: no page load at all.
    mark_page(page)

    # 2. Find the contact: the list, then type part of the name in its search box.
    with clicks.task("find a contact by typing part of its name and open it", budget=3):
        clicks.click(page.locator("nav.sidebar").get_by_role("link", name="Contacts", exact=True))
        expect(page).to_have_url(re.compile(r"/contacts$"))
        rows = page.locator("#contact-rows tr")
        expect(rows).to_have_count(3)
        search = page.get_by_role("searchbox", name="Search contacts")
        clicks.click(search)  # focusing the box is the only click before typing
        search.press_sequentially("poul")
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text("Amélie Poulain")
        expect(page).to_have_url(re.compile(r"/contacts\?(.*&)?q=poul(&|$)"))
        link = rows.first.get_by_role("link", name="Amélie Poulain")
        wait_until_ready(link)
        clicks.click(link)
    expect(page).to_have_url(re.compile(rf"/contacts/{amelie.id}$"))
    expect(page.locator("#contact-header h1")).to_contain_text("Amélie Poulain")
    expect(page.locator("#contact-header .badge")).to_have_text("Lead")
    assert_not_reloaded(page)

    # 3. Log a call: "Log a call" is selected already; click the text box, type, Save.
    composer = page.locator("#composer")
    expect(composer.get_by_label("Log a call")).to_be_checked()
    with clicks.task("log a call", budget=2):
        clicks.click(composer.locator("textarea"))
        page.keyboard.insert_text("Wants a quote for 40 seats, call back Tuesday.")
        clicks.click(composer.get_by_role("button", name="Save"))
        first_entry = page.locator("#timeline li").first
        expect(first_entry).to_contain_text("Wants a quote for 40 seats")
    expect(first_entry).to_have_class(re.compile(r"\bkind-call\b"))
    expect(first_entry.locator(".entry-kind")).to_have_text("Call")
    expect(page.locator("#toasts .toast").filter(has_text="Call logged.")).to_be_visible()
    expect(page.locator("#composer textarea")).to_have_value("")  # a fresh composer, ready again
    assert_not_reloaded(page)

    # 4. Add a note: click "Add a note", Tab to the text box, type, Save.
    with clicks.task("add a note", budget=2):
        clicks.click(composer.locator("label", has_text="Add a note"))
        expect(composer.get_by_label("Add a note")).to_be_checked()
        expect(composer.locator(".call-only")).to_be_hidden()  # no call outcome for a note
        page.keyboard.press("Tab")  # from the radio straight to the text box
        expect(composer.locator("textarea")).to_be_focused()
        page.keyboard.insert_text("Prefers email over phone.")
        clicks.click(composer.get_by_role("button", name="Save"))
        first_entry = page.locator("#timeline li").first
        expect(first_entry).to_contain_text("Prefers email over phone.")
    expect(first_entry).to_have_class(re.compile(r"\bkind-note\b"))
    expect(page.locator("#toasts .toast").filter(has_text="Note added.")).to_be_visible()
    expect(composer.get_by_label("Add a note")).to_be_checked()  # ready for the next note
    # An empty note: 422, the error beside the text box, the choice of "note" kept.
    with page.expect_response(
        lambda r: r.request.method == "POST" and "/activities" in r.url
    ) as info:
        clicks.click(composer.get_by_role("button", name="Save"))
    assert info.value.status == 422
    expect(composer.locator(".error")).to_have_text("Write the note first.")
    expect(composer.get_by_label("Add a note")).to_be_checked()
    expect(page.locator("#timeline li.kind-note")).to_have_count(1)
    assert_not_reloaded(page)

    # 5. Change the stage: one click on "Customer" in the stepper.
    stepper = page.locator(".stage-stepper")
    with clicks.task("change the stage", budget=1):
        clicks.click(stepper.get_by_role("button", name="Customer", exact=True))
        expect(page.locator("#contact-header h1 .badge")).to_have_text("Customer")
    expect(page.locator(".stage-stepper button[aria-current=step]")).to_have_text("Customer")
    first_entry = page.locator("#timeline li").first
    expect(first_entry).to_have_class(re.compile(r"\bkind-system\b"))
    expect(first_entry).to_contain_text("Stage changed from Lead to Customer.")
    # The call and the note are still there, under the stage change: history is kept.
    expect(page.locator("#timeline li")).to_have_count(3)
    expect(page.locator("#timeline li.kind-call")).to_contain_text("Wants a quote")
    expect(page.locator("#toasts .toast").filter(has_text="is now: Customer")).to_be_visible()
    assert_not_reloaded(page)

    # 6. Edit a field in place: click the phone value, type, Save.
    phone = page.locator("#field-phone")
    with clicks.task("edit a field inline", budget=2):
        clicks.click(phone.locator(".value.editable"))
        editor = phone.locator("input[name=value]")
        expect(editor).to_be_focused()  # autofocus: type right away
        editor.fill("+33 6 12 34 56 78")
        clicks.click(phone.get_by_role("button", name="Save"))
        expect(phone.locator(".value")).to_have_text("+33 6 12 34 56 78")
    expect(phone.locator("a[href^='tel:']")).to_be_visible()
    expect(phone.locator("form")).to_have_count(0)
    # A bad email: 422, the error beside the field, the typed value kept.
    email = page.locator("#field-email")
    clicks.click(email.locator(".value.editable"))
    email.locator("input[name=value]").fill("not-an-email")
    with page.expect_response(
        lambda r: r.request.method == "POST" and "/fields/email" in r.url
    ) as info:
        clicks.click(email.get_by_role("button", name="Save"))
    assert info.value.status == 422
    editor = email.locator("input[name=value]")
    expect(editor).to_have_value("not-an-email")
    expect(editor).to_have_attribute("aria-invalid", "true")
    expect(email.locator(".error")).to_be_visible()
    # Escape cancels: the stored address comes back.
    editor.press("Escape")
    expect(email.locator(".value")).to_have_text("amelie@example.com")
    assert_not_reloaded(page)


def test_manager_finds_a_contact_with_the_global_search_and_deletes_it(
    page: Page, clicks: Clicks, signed_in, seed, contacts
):
    manager = factories.make_user(role="manager", name="Marc Leroy", email="marc@example.com")
    seed.commit()
    signed_in(page, manager)
    page.goto("/")
    mark_page(page)

    # 8. The global search: "/" focuses it, typing shows suggestions, a click opens one.
    search = page.locator("#global-search")
    with clicks.task("global search: /, type, click a suggestion", budget=1):
        page.keyboard.press("/")
        expect(search).to_be_focused()
        page.keyboard.type("poul")
        suggestions = page.locator("#search-suggestions")
        suggestion = suggestions.get_by_role("link", name=re.compile("Amélie Poulain"))
        expect(suggestion).to_be_visible()
        expect(suggestions.locator("li[role=option]")).to_have_count(1)
        clicks.click(suggestion)
        expect(page).to_have_url(re.compile(rf"/contacts/{contacts.id}$"))
    expect(page.locator("#contact-header h1")).to_contain_text("Amélie Poulain")
    expect(page.locator("#search-suggestions")).to_be_empty()

    # Delete: confirm, then back to the list (HX-Location) with the toast.
    page.once("dialog", lambda dialog: dialog.accept())  # hx-confirm asks first
    with clicks.task("delete a contact", budget=1):
        clicks.click(page.get_by_role("button", name="Delete this contact"))
        expect(page).to_have_url(re.compile(r"/contacts$"))
    expect(page.locator("main h1")).to_have_text("Contacts")
    expect(page.locator("#contact-rows tr")).to_have_count(2)
    deleted = page.locator("#toasts .toast").filter(has_text="Amélie Poulain deleted.")
    expect(deleted).to_be_visible()
    assert_not_reloaded(page)
