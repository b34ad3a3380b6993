"""Under htmx an error shows as a toast, never as a blank swap; an ended session goes to the login page."""

import re

import pytest
from playwright.sync_api import Page, expect

from tests import factories
from tests.browser.conftest import Clicks, sign_in

pytestmark = pytest.mark.browser


@pytest.fixture
def contact(seed):
    contact = factories.make_contact("Amélie", "Poulain", email="amelie@example.com", phone="01 23 45 67 89")
    seed.commit()
    return contact


def test_role_lowered_while_the_page_is_open_gives_an_error_toast(
    page: Page, clicks: Clicks, signed_in, seed, sales_user, contact
):
    signed_in(page, sales_user)
    page.goto(f"/contacts/{contact.id}")
    phone = page.locator("#field-phone")
    expect(phone.locator(".value.editable")).to_have_text("01 23 45 67 89")

    # Meanwhile an administrator makes them a technician, who may not edit contacts.
    sales_user.role = "technician"
    seed.commit()

    with page.expect_response(lambda r: "/fields/phone/edit" in r.url) as info:
        clicks.click(phone.locator(".value.editable"))
    assert info.value.status == 403
    toast = page.locator("#toasts .toast-error")
    expect(toast).to_contain_text("You do not have access to this.")
    expect(toast).to_have_attribute("role", "alert")
    # The field is left as it was: no blank swap, no error page inside the card.
    expect(phone.locator(".value.editable")).to_have_text("01 23 45 67 89")
    expect(page.locator("#field-phone form")).to_have_count(0)
    expect(page.locator("#contact-header h1")).to_contain_text("Amélie Poulain")


def test_contact_deleted_meanwhile_gives_an_error_toast_in_the_stale_list(
    page: Page, clicks: Clicks, signed_in, seed, sales_user, contact
):
    factories.make_contact("Bruno", "Martin", email="bruno@example.com")
    seed.commit()
    signed_in(page, sales_user)
    page.goto("/contacts")
    rows = page.locator("#contact-rows tr")
    expect(rows).to_have_count(2)

    # Somebody else deletes Amélie while this list is on screen.
    seed.delete(contact)
    seed.commit()

    with page.expect_response(re.compile(r"/contacts/\d+$")) as info:
        clicks.click(page.get_by_role("link", name="Amélie Poulain"))
    assert info.value.status == 404
    expect(page.locator("#toasts .toast-error")).to_contain_text("This page does not exist")
    # The list is still there, and the address bar still shows the list.
    expect(rows).to_have_count(2)
    expect(page.locator("main h1")).to_have_text("Contacts")
    expect(page).to_have_url(re.compile(r"/contacts$"))


def test_ended_session_sends_an_htmx_request_to_the_login_page(
    page: Page, clicks: Clicks, seed, sales_user, contact
):
    sign_in(page, clicks, sales_user.email)
    page.goto(f"/contacts/{contact.id}")
    expect(page.locator("#contact-header h1")).to_contain_text("Amélie Poulain")

    # "Log out everywhere" from another device, or an administrator deactivated the account.
    sales_user.end_all_sessions()
    seed.commit()

    clicks.click(page.locator("#field-phone .value.editable"))
    # HX-Redirect: a full page load of the login form, not a login form inside the field.
    expect(page).to_have_url(re.compile(r"/login\?next="))
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    expect(page.locator("#field-phone")).to_have_count(0)
