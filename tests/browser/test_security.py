"""Security tasks in a real browser, under the real Content-Security-Policy: turning
two-factor sign-in on and signing in with a code, signing another device out from the
list of sessions, and erasing a contact's personal data through its dialog."""

import re
from datetime import UTC, datetime, timedelta

import pyotp
import pytest
from playwright.sync_api import Page, expect

from crm.extensions import db
from crm.models import Contact, UserSession
from tests import factories
from tests.browser.conftest import Clicks, sign_in

pytestmark = pytest.mark.browser


@pytest.fixture
def csp_violations(page: Page) -> list[str]:
    """Console messages of anything the Content-Security-Policy blocked."""
    found: list[str] = []
    page.on(
        "console", lambda m: found.append(m.text) if "Content Security Policy" in m.text else None
    )
    return found


def test_turn_on_two_factor_then_sign_in_with_a_code(
    page: Page, clicks: Clicks, signed_in, seed, sales_user, csp_violations
):
    signed_in(page, sales_user)
    page.goto("/settings")
    with clicks.task("turn on two-factor sign-in", budget=4):
        clicks.click(page.get_by_role("link", name="Set up two-factor sign-in"))
        clicks.click(page.get_by_role("button", name="Set up two-factor sign-in"))
        qr = page.get_by_role("img", name="QR code to scan")
        expect(qr).to_be_visible()
        # The SVG loads under the CSP (img-src 'self').
        page.wait_for_function(
            "() => { const img = document.querySelector('img.qr');"
            " return img && img.complete && img.naturalWidth > 0; }"
        )
        secret = page.locator("code.secret").inner_text().replace(" ", "")
        now = datetime.now(UTC)
        page.get_by_label("Code shown by the app").fill(pyotp.TOTP(secret).at(now))
        clicks.click(page.get_by_role("button", name="Turn on"))
        expect(page.get_by_role("heading", name="Your recovery codes")).to_be_visible()
        expect(page.locator(".recovery-codes li")).to_have_count(10)
        clicks.click(page.get_by_role("link", name="I have saved them"))
    expect(page.get_by_text("On: signing in asks for a code")).to_be_visible()

    clicks.click(page.get_by_role("button", name="Log out"))
    with clicks.task("sign in with two factors", budget=2):
        page.get_by_label("Email").fill(sales_user.email)
        page.get_by_label("Password").fill(factories.PASSWORD)
        clicks.click(page.get_by_role("button", name="Sign in"))
        expect(page.get_by_role("heading", name="One more step")).to_be_visible()
        # The code of the next time step: the one used to turn it on is spent.
        code = pyotp.TOTP(secret).at(now + timedelta(seconds=30))
        page.get_by_label("Code from your authenticator app, or a recovery code").fill(code)
        clicks.click(page.get_by_role("button", name="Verify"))
        expect(page.locator("header.topbar")).to_be_visible()
    assert csp_violations == []


def test_sign_another_device_out_from_the_list(
    page: Page, clicks: Clicks, seed, sales_user, csp_violations
):
    sign_in(page, clicks, sales_user.email)
    factories.start_session(sales_user, user_agent="Mozilla/5.0 (iPhone) Safari/604.1")
    seed.commit()
    phone_row_id = sales_user.current_session.id
    page.goto("/settings")
    rows = page.locator("table.sessions tbody tr")
    expect(rows).to_have_count(2)
    expect(page.locator(f"#session-{phone_row_id}")).to_contain_text("Safari · iOS")
    with clicks.task("sign another device out", budget=1):
        clicks.click(
            page.locator(f"#session-{phone_row_id}").get_by_role("button", name="Sign out")
        )
        expect(rows).to_have_count(1)
    expect(page.locator("#toasts")).to_contain_text("That session is signed out.")
    expect(rows.first).to_contain_text("this device")
    seed.expire_all()
    assert seed.get(UserSession, phone_row_id).revoked_at is not None
    page.reload()
    expect(rows).to_have_count(1)  # and this browser is still signed in
    assert csp_violations == []


def test_erase_a_contact_through_its_dialog(
    page: Page, clicks: Clicks, signed_in, seed, csp_violations
):
    manager = factories.make_user(role="manager", name="Maud Manager")
    contact = factories.make_contact("Amélie", "Poulain", email="amelie@example.com")
    seed.commit()
    signed_in(page, manager)
    page.goto(f"/contacts/{contact.id}")
    with clicks.task("erase a contact on request", budget=3):
        clicks.click(page.get_by_role("button", name="Erase on request…"))
        dialog = page.locator("#erase-dialog")
        expect(dialog).to_be_visible()
        clicks.click(dialog.get_by_label("I confirm: the person asked for erasure"))
        clicks.click(dialog.get_by_role("button", name="Erase", exact=True))
        expect(page.locator("#contact-header h1")).to_contain_text(f"Erased contact #{contact.id}")
    expect(page.locator("#contact-header")).to_contain_text("personal data erased")
    seed.expire_all()
    assert db.session.get(Contact, contact.id).email is None
    assert not re.search("Amélie", page.content())
    assert csp_violations == []
