"""Custom fields in Chromium: an admin adds a required choice field and orders the fields,
a rep creates a contact with it, then filters the list by it."""

import re

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from crm.extensions import db
from crm.models import Contact, CustomFieldDefinition
from tests import factories
from tests.browser.conftest import Clicks

pytestmark = pytest.mark.browser


def test_admin_adds_a_required_field_a_rep_fills_it_and_filters_by_it(
    page: Page, clicks: Clicks, signed_in, seed
):
    admin = factories.make_user(role="admin", name="Ada Admin")
    rep = factories.make_user(role="sales", name="Sarah Connor")
    factories.make_contact("Eddie", "English", custom_fields={"preferred_language": "English"})
    seed.commit()

    signed_in(page, admin)
    page.goto("/admin/fields")
    expect(page.locator(".admin-tabs a.current")).to_have_text("Custom fields")
    page.evaluate("window.__noReload = true")
    form = page.locator("#new-field")

    # A text field first, then the required choice field: type, pick, type, tick, add.
    form.get_by_label("Label").fill("Account code")
    clicks.click(form.get_by_role("button", name="Add the field"))
    expect(page.locator("#field-list > li")).to_have_count(1)
    with clicks.task("add a required choice field (type, choose, tick, Add)", budget=2):
        form = page.locator("#new-field")
        form.get_by_label("Label").fill("Preferred language")
        form.get_by_label("Type").select_option("choice")
        form.get_by_label("Choices, one per line").fill("French\nEnglish\nGerman")
        clicks.click(form.get_by_label("Required"))
        clicks.click(form.get_by_role("button", name="Add the field"))
        expect(page.locator("#field-list > li")).to_have_count(2)
    expect(page.locator("#toasts .toast").filter(has_text="Preferred language")).to_be_visible()
    expect(page.locator("#field-list > li").nth(1)).to_contain_text("required")

    # Dragged by its handle above the other: the order is saved.
    page.wait_for_function(
        "() => document.querySelector('#field-list')?.dataset.sortable && window.Sortable"
    )
    handle = page.locator("#field-list > li").nth(1).locator(".drag-handle").bounding_box()
    target = page.locator("#field-list > li").first.bounding_box()
    with page.expect_response(lambda r: r.url.endswith("/admin/fields/reorder")) as dropped:
        page.mouse.move(handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2)
        page.mouse.down()
        page.mouse.move(target["x"] + 20, target["y"] + 2, steps=12)
        page.mouse.up()
    assert dropped.value.status == 200
    expect(page.locator("#field-list > li").first).to_contain_text("Preferred language")
    # The arrows do the same without a pointer.
    clicks.click(page.get_by_role("button", name="Move Account code up"))
    expect(page.locator("#field-list > li").first).to_contain_text("Account code")
    assert page.evaluate("window.__noReload") is True  # all of it without a page load
    labels = db.session.scalars(
        select(CustomFieldDefinition.label).order_by(CustomFieldDefinition.position)
    ).all()
    assert labels == ["Account code", "Preferred language"]

    # A rep: the required field is in the quick-add and the server insists on it.
    page.context.clear_cookies()
    signed_in(page, rep)
    page.goto("/contacts")
    page.evaluate("window.__noReload = true")
    rows = page.locator("#contact-rows tr")
    expect(rows).to_have_count(1)
    quick = page.locator("#quick-add")
    quick.get_by_label("First name").fill("Fanny")
    quick.get_by_label("Last name").fill("Français")
    quick.get_by_label("Email").fill("fanny@example.com")
    # The browser would refuse an empty required select: the server's 422 is what is tested.
    page.locator("#quick-add select[name=cf-preferred_language]").evaluate(
        "s => s.required = false"
    )
    with page.expect_response(lambda r: r.request.method == "POST") as refused:
        quick.get_by_role("button", name="Add contact").click()
    assert refused.value.status == 422
    quick = page.locator("#quick-add")
    expect(quick.locator(".custom-field .error")).to_have_text("This field is required.")
    expect(quick.get_by_label("Email")).to_have_value("fanny@example.com")  # kept
    with clicks.task("fill the required field and add the contact (choose, Add)", budget=1):
        quick.get_by_label("Preferred language").select_option("French")
        clicks.click(quick.get_by_role("button", name="Add contact"))
        expect(rows).to_have_count(2)
    contact = db.session.scalars(select(Contact).where(Contact.first_name == "Fanny")).one()
    assert contact.custom_fields == {"preferred_language": "French"}

    # The list filtered by the field, kept in the address.
    with clicks.task("filter the contacts by a custom field (choose)", budget=0):
        page.locator("#contact-filters select[name=cf_preferred_language]").select_option("French")
        expect(page).to_have_url(re.compile(r"cf_preferred_language=French"))
        expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Fanny")
    page.reload()
    expect(page.locator("#contact-rows tr")).to_have_count(1)
    expect(page.locator("#contact-filters select[name=cf_preferred_language]")).to_have_value(
        "French"
    )
