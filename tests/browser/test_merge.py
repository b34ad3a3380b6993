"""Merging a duplicate, as a manager does it: from the contact's page, pick the suggested
duplicate, check the side-by-side screen, merge; the kept contact shows both timelines.
And an export from a filtered list takes the filters on screen."""

import re

import pytest
from playwright.sync_api import Page, expect

from tests import factories
from tests.browser.conftest import Clicks, wait_until_ready

pytestmark = pytest.mark.browser


@pytest.fixture
def manager(seed):
    user = factories.make_user(role="manager", name="Mona Manager", email="mona@example.com")
    seed.commit()
    return user


def test_merge_a_duplicate_in_three_clicks(page: Page, clicks: Clicks, signed_in, manager, seed):
    kept = factories.make_contact("Amélie", "Poulain", email="amelie@example.com", title="Buyer")
    duplicate = factories.make_contact(
        "Amelie", "Poulain", email="Amelie@Example.com", phone="06 12 34 56 78"
    )
    factories.make_activity(kept, body="Met at the trade fair")
    factories.make_activity(duplicate, body="Asked for the catalogue")
    seed.commit()
    kept_id, duplicate_id = kept.id, duplicate.id
    signed_in(page, manager)
    page.goto(f"/contacts/{kept_id}")
    expect(page.locator("#contact-header h1")).to_contain_text("Amélie Poulain")

    with clicks.task("merge a duplicate contact", budget=3):
        link = page.get_by_role("link", name="Merge with a duplicate…")
        wait_until_ready(link)
        clicks.click(link)
        expect(page.get_by_role("heading", name="Likely duplicates")).to_be_visible()
        candidate = page.locator(".merge-candidates").first.get_by_role(
            "link", name="Amelie Poulain"
        )
        wait_until_ready(candidate)
        clicks.click(candidate)
        expect(page).to_have_url(re.compile(rf"/merge/contacts/{kept_id}/with/{duplicate_id}$"))
        # Both values side by side; the phone only the duplicate has is picked already.
        expect(page.locator(".merge-table")).to_contain_text("amelie@example.com")
        expect(page.locator('input[name="pick-phone"][value="other"]')).to_be_checked()
        expect(page.locator(".merge-summary")).to_contain_text("1 timeline entry")
        merge = page.get_by_role("button", name="Merge", exact=True)
        wait_until_ready(page.get_by_role("link", name="Cancel"))
        clicks.click(merge)

    expect(page).to_have_url(re.compile(rf"/contacts/{kept_id}$"))
    expect(page.locator(".toast")).to_contain_text("now holds the history of both")
    expect(page.get_by_text("Met at the trade fair")).to_be_visible()
    expect(page.get_by_text("Asked for the catalogue")).to_be_visible()
    expect(page.get_by_text(f"Merged with Amelie Poulain (#{duplicate_id}).")).to_be_visible()
    # The duplicate is gone.
    response = page.request.get(f"/contacts/{duplicate_id}")
    assert response.status == 404


def test_the_export_takes_the_filters_on_screen(page: Page, signed_in, manager, seed):
    for i in range(3):
        factories.make_contact("Export", f"Dupont{i}", email=f"d{i}@example.com")
    factories.make_contact("Export", "Martin", email="m@example.com")
    seed.commit()
    signed_in(page, manager)
    page.goto("/contacts")
    search = page.get_by_role("searchbox", name="Search contacts")
    search.click()
    search.press_sequentially("dupont")
    expect(page.locator("#contact-rows tr")).to_have_count(3)
    expect(page).to_have_url(re.compile(r"q=dupont"))
    with page.expect_download() as download_info:
        page.locator("form[data-export]").get_by_role("button", name="CSV").click()
    download = download_info.value
    assert re.match(r"contacts-\d{4}-\d{2}-\d{2}\.csv$", download.suggested_filename)
    text = download.path().read_text(encoding="utf-8-sig")
    assert text.count("Dupont") == 3 and "Martin" not in text
