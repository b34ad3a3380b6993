"""A page left open while things change elsewhere.

Under htmx an error shows as a toast, never as a blank or an error page swapped into
the target; an ended session sends the whole window to the login page.
"""

import re

import pytest
from playwright.sync_api import Page, expect

from tests import factories
from tests.browser.conftest import Clicks

pytestmark = pytest.mark.browser


def test_stale_page_deleted_contact_lowered_role_ended_session(
    page: Page, clicks: Clicks, signed_in, seed, sales_user
):
    factories.make_contact("Amélie", "Poulain", email="amelie@example.com", phone="01 23 45 67 89")
    bruno = factories.make_contact("Bruno", "Martin", email="bruno@example.com")
    seed.commit()
    signed_in(page, sales_user)
    page.goto("/contacts")
    rows = page.locator("#contact-rows tr")
    expect(rows).to_have_count(2)

    # 404: somebody deletes Bruno while this list is on screen; then Bruno is clicked.
    seed.delete(bruno)
    seed.commit()
    with page.expect_response(re.compile(r"/contacts/\d+$")) as info:
        clicks.click(page.get_by_role("link", name="Bruno Martin"))
    assert info.value.status == 404
    toast = page.locator("#toasts .toast-error")
    expect(toast).to_contain_text("This page does not exist")
    expect(toast).to_have_attribute("role", "alert")
    # The list is still there, and the address bar still shows the list.
    expect(rows).to_have_count(2)
    expect(page.locator("main h1")).to_have_text("Contacts")
    expect(page).to_have_url(re.compile(r"/contacts$"))

    # 403: an administrator makes them a technician, who may not edit contacts.
    clicks.click(page.get_by_role("link", name="Amélie Poulain"))
    phone = page.locator("#field-phone")
    expect(phone.locator(".value.editable")).to_have_text("01 23 45 67 89")
    sales_user.role = "technician"
    seed.commit()
    with page.expect_response(lambda r: "/fields/phone/edit" in r.url) as info:
        clicks.click(phone.locator(".value.editable"))
    assert info.value.status == 403
    expect(
        page.locator("#toasts .toast-error").filter(has_text="You do not have access to this.")
    ).to_be_visible()
    # The field is left as it was: no blank swap, no error page inside the card.
    expect(phone.locator(".value.editable")).to_have_text("01 23 45 67 89")
    expect(page.locator("#field-phone form")).to_have_count(0)
    expect(page.locator("#contact-header h1")).to_contain_text("Amélie Poulain")

    # Ended session ("log out everywhere" on another device, or deactivation): HX-Redirect,
    # a full page load of the login form rather than a login form inside the field.
    sales_user.end_all_sessions()
    seed.commit()
    clicks.click(phone.locator(".value.editable"))
    expect(page).to_have_url(re.compile(r"/login\?next="))
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    expect(page.locator("#field-phone")).to_have_count(0)
