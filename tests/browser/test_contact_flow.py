"""Log in, find a contact by typing, open it, log a call, add a note, change its stage, edit a field."""

import re

import pytest
from playwright.sync_api import Page, expect

from tests import factories
from tests.browser.conftest import Clicks, sign_in

pytestmark = pytest.mark.browser


@pytest.fixture
def contacts(seed, sales_user):
    company = factories.make_company("Studio Ghibli")
    found = factories.make_contact(
        "Amélie", "Poulain", email="amelie@example.com", company=company, title="Buyer", owner=sales_user
    )
    factories.make_contact("Bruno", "Martin", email="bruno@example.com")
    factories.make_contact("Chloé", "Dubois", email="chloe@example.com")
    seed.commit()
    return found


def open_contact(page: Page, contact) -> None:
    page.goto(f"/contacts/{contact.id}")
    expect(page.locator("#contact-header h1")).to_contain_text(contact.name)


def mark_page(page: Page) -> None:
    """A flag on window: still there afterwards means no page load happened in between."""
    page.evaluate("window.__noReload = true")


def assert_not_reloaded(page: Page) -> None:
    assert page.evaluate("window.__noReload === true"), "the page was reloaded"


def test_log_in_find_open_log_a_call_change_stage(page: Page, clicks: Clicks, sales_user, contacts):
    amelie = contacts

    # 1. Log in through the form: type the email and the password, click Sign in.
    with clicks.task("log in", budget=1):
        sign_in(page, clicks, sales_user.email)
    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.locator("main h1")).to_have_text("Hello Sarah")

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
        clicks.click(rows.first.get_by_role("link", name="Amélie Poulain"))
    expect(page).to_have_url(re.compile(rf"/contacts/{amelie.id}$"))
    expect(page.locator("#contact-header h1")).to_contain_text("Amélie Poulain")
    expect(page.locator("#contact-header .badge")).to_have_text("Lead")

    # 3. Log a call: "Log a call" is selected already; click the text box, type, Save.
    mark_page(page)
    composer = page.locator("#composer")
    expect(composer.get_by_label("Log a call")).to_be_checked()
    with clicks.task("log a call", budget=2):
        clicks.click(composer.locator("textarea"))
        page.keyboard.type("Wants a quote for 40 seats, call back Tuesday.")
        clicks.click(composer.get_by_role("button", name="Save"))
        first_entry = page.locator("#timeline li").first
        expect(first_entry).to_contain_text("Wants a quote for 40 seats")
    expect(first_entry).to_have_class(re.compile(r"\bkind-call\b"))
    expect(first_entry.locator(".entry-kind")).to_have_text("Call")
    expect(page.locator("#toasts .toast").filter(has_text="Call logged.")).to_be_visible()
    expect(page.locator("#composer textarea")).to_have_value("")  # a fresh composer, ready again
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
    # The call is still there, under the stage change: history is kept.
    expect(page.locator("#timeline li.kind-call")).to_contain_text("Wants a quote")
    expect(page.locator("#toasts .toast").filter(has_text="is now: Customer")).to_be_visible()
    assert_not_reloaded(page)


def test_add_a_note(page: Page, clicks: Clicks, signed_in, sales_user, contacts):
    signed_in(page, sales_user)
    open_contact(page, contacts)
    mark_page(page)
    composer = page.locator("#composer")

    with clicks.task("add a note", budget=2):
        clicks.click(composer.locator("label", has_text="Add a note"))
        expect(composer.get_by_label("Add a note")).to_be_checked()
        expect(composer.locator(".call-only")).to_be_hidden()  # no call outcome for a note
        page.keyboard.press("Tab")  # from the radio straight to the text box
        expect(composer.locator("textarea")).to_be_focused()
        page.keyboard.type("Prefers email over phone.")
        clicks.click(composer.get_by_role("button", name="Save"))
        first_entry = page.locator("#timeline li").first
        expect(first_entry).to_contain_text("Prefers email over phone.")
    expect(first_entry).to_have_class(re.compile(r"\bkind-note\b"))
    expect(page.locator("#toasts .toast").filter(has_text="Note added.")).to_be_visible()
    # The composer stays on "note" for the next one.
    expect(page.locator("#composer").get_by_label("Add a note")).to_be_checked()
    assert_not_reloaded(page)


def test_empty_note_is_refused_beside_the_field(page: Page, clicks: Clicks, signed_in, sales_user, contacts):
    signed_in(page, sales_user)
    open_contact(page, contacts)
    composer = page.locator("#composer")
    clicks.click(composer.locator("label", has_text="Add a note"))
    with page.expect_response(lambda r: r.request.method == "POST" and "/activities" in r.url) as info:
        clicks.click(composer.get_by_role("button", name="Save"))
    assert info.value.status == 422
    expect(page.locator("#composer .error")).to_have_text("Write the note first.")
    expect(page.locator("#composer").get_by_label("Add a note")).to_be_checked()  # the choice is kept
    expect(page.locator("#timeline li.kind-note")).to_have_count(0)


def test_inline_edit_and_validation_error(page: Page, clicks: Clicks, signed_in, sales_user, contacts):
    signed_in(page, sales_user)
    open_contact(page, contacts)
    mark_page(page)

    # 6a. Click the phone value, type, Save.
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

    # 6b. A bad email: 422, the error beside the field, the typed value kept.
    email = page.locator("#field-email")
    clicks.click(email.locator(".value.editable"))
    email.locator("input[name=value]").fill("not-an-email")
    with page.expect_response(lambda r: r.request.method == "POST" and "/fields/email" in r.url) as info:
        clicks.click(email.get_by_role("button", name="Save"))
    assert info.value.status == 422
    editor = page.locator("#field-email input[name=value]")
    expect(editor).to_have_value("not-an-email")
    expect(editor).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#field-email .error")).to_be_visible()
    # Escape cancels: the stored address comes back.
    editor.press("Escape")
    expect(page.locator("#field-email .value")).to_have_text("amelie@example.com")
    assert_not_reloaded(page)
