"""Connecting the support mailbox in a browser: a wrong port answered beside its field, a
wrong password found by "Check connection" before saving, then saved and synced, against
a real Dovecot and a real SMTP server."""

import os

import pytest
from aiosmtpd.controller import Controller
from playwright.sync_api import expect

from crm.devmail import STATIC_PASSWORD, free_port
from tests import factories
from tests.mail_servers import dovecot, imap_user  # noqa: F401  (pytest fixtures)

SHOTS = os.environ.get("CRM_SCREENSHOTS")


class Sink:
    async def handle_DATA(self, server, session, envelope):
        return "250 2.0.0 OK"


@pytest.fixture
def smtp_port():
    port = free_port()
    controller = Controller(Sink(), hostname="127.0.0.1", port=port)
    controller.start()
    yield port
    controller.stop()


def test_admin_connects_the_support_mailbox(
    page,
    seed,
    signed_in,
    clicks,
    dovecot,  # noqa: F811
    imap_user,  # noqa: F811
    smtp_port,
):
    factories.make_team("Support")
    admin = factories.make_user(role="admin", name="Alice Admin")
    seed.commit()
    signed_in(page, admin)
    page.goto("/admin/mailboxes")

    with clicks.task("connect a shared mailbox, checked before saving", 5):
        clicks.click(page.get_by_role("link", name="New mailbox"))
        page.get_by_role("textbox", name="Name", exact=True).fill("Support")
        page.get_by_label("Email address").fill(imap_user)
        page.get_by_label("Purpose").select_option("support")
        page.get_by_label("Team").select_option(label="Support")
        page.get_by_label("IMAP server").fill("127.0.0.1")
        page.get_by_label("IMAP port").fill("70000")
        page.get_by_label("IMAP security").select_option("none")
        page.get_by_label("IMAP password").fill("wrong")
        page.get_by_label("SMTP server").fill("127.0.0.1")
        page.get_by_label("SMTP port").fill(str(smtp_port))
        page.get_by_label("SMTP security").select_option("none")

        clicks.click(page.get_by_role("button", name="Check connection"))
        expect(page.locator("#imap_port-error")).to_have_text("A port is a number from 1 to 65535.")
        expect(page.get_by_role("textbox", name="Name", exact=True)).to_have_value(
            "Support"
        )  # every input kept

        page.get_by_label("IMAP port").fill(str(dovecot.port))
        page.get_by_label("IMAP password").fill("wrong")
        clicks.click(page.get_by_role("button", name="Check connection"))
        result = page.locator("#check-result")
        expect(result).to_contain_text("The server refused the user name or the password.")
        expect(result).to_contain_text("Connected (no user name")

        page.get_by_label("IMAP password").fill(STATIC_PASSWORD)
        clicks.click(page.get_by_role("button", name="Check connection"))
        expect(result).to_contain_text("Connected: INBOX holds 0 messages.")
        clicks.click(page.get_by_role("button", name="Save"))
        expect(page.locator("h1")).to_have_text(imap_user)
        expect(page.locator(".toast")).to_contain_text(f"Mailbox {imap_user} added.")
    if SHOTS:
        page.screenshot(path=f"{SHOTS}/mailbox-form.png", full_page=True)

    with clicks.task("sync a mailbox now", 1):
        clicks.click(page.get_by_role("button", name="Sync now"))
        expect(page.locator(".toast").last).to_contain_text(f"Sync of {imap_user} queued")

    page.goto("/admin/mailboxes")
    row = page.locator("tr", has_text=imap_user)
    clicks.click(row.get_by_role("button", name="Check connection"))
    expect(row.locator(".mailbox-check")).to_contain_text("Connected: INBOX holds 0 messages.")
    if SHOTS:
        page.screenshot(path=f"{SHOTS}/mailbox-list.png", full_page=True)
