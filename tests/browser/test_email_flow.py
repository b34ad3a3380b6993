"""Writing an email from a contact, walked as a user does it and counted in clicks:
Write an email -> pick a template -> the preview shows the first name filled -> Send ->
the contact's timeline shows the message; then its page shows the body in its frame."""

import re

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from crm.extensions import db
from crm.models import EmailMessage, EmailTemplate
from crm.services import outbox
from tests import factories
from tests.browser.conftest import Clicks

pytestmark = pytest.mark.browser


@pytest.fixture
def amelie(seed, sales_user):
    contact = factories.make_contact(
        "Amélie", "Poulain", email="amelie@example.com", owner=sales_user
    )
    seed.add(
        EmailTemplate(
            name="Quote follow-up",
            subject="Your quote, {{contact.first_name}}",
            body="Dear {{contact.first_name}},\n\nHere is the quote we discussed.\n\n{{user.name}}",
            usage="sales",
        )
    )
    seed.commit()
    return contact


def test_write_an_email_from_a_contact_with_a_template(
    page: Page, clicks: Clicks, signed_in, sales_user, amelie, data_app
):
    signed_in(page, sales_user)
    page.goto(f"/contacts/{amelie.id}")
    with clicks.task("write an email from a contact with a template", budget=3):
        clicks.click(page.get_by_role("link", name="Write an email"))
        expect(page.locator("main h1")).to_contain_text("Write an email")
        expect(page.get_by_label("To")).to_have_value("amelie@example.com")
        # Choosing in a list is one click.
        page.get_by_label("Template").select_option(label="Quote follow-up")
        clicks.count += 1
        expect(page.get_by_label("Subject")).to_have_value("Your quote, Amélie")
        preview = page.locator("#compose-preview")
        expect(preview).to_contain_text("Dear Amélie,")
        expect(preview).to_contain_text("Sarah Connor")
        expect(preview.locator("mark.gap")).to_have_count(0)

        # A gap typed by hand is marked in the preview at once.
        body = page.get_by_label("Message")
        body.press("End")
        page.keyboard.insert_text(" P.S. {{deal.amount}}")
        expect(preview.locator(".preview-body mark.gap")).to_have_text(["{{deal.amount}}"])
        expect(preview.locator(".gaps")).to_contain_text("replace them before sending")
        body.fill(body.input_value().replace(" P.S. {{deal.amount}}", ""))
        expect(preview.locator("mark.gap")).to_have_count(0)

        clicks.click(page.get_by_role("button", name="Send"))
    expect(page).to_have_url(re.compile(rf"/contacts/{amelie.id}$"))
    expect(page.locator("#toasts")).to_contain_text("Email on its way to amelie@example.com")
    entry = page.locator("#timeline .kind-email").first
    expect(entry).to_contain_text("Your quote, Amélie")
    expect(entry).to_contain_text("waiting to be sent")

    # The worker sends it (the development mail drop here); the message page shows it sent,
    # its body in a sandboxed frame.
    message = db.session.scalars(select(EmailMessage)).one()
    with data_app.app_context():
        assert outbox.deliver(message.id) == "sent"
    page.goto(f"/email/messages/{message.id}")
    expect(page.locator(".email-delivery")).to_contain_text("sent")
    frame = page.frame_locator("iframe.email-body")
    expect(frame.locator("body")).to_contain_text("Here is the quote we discussed.")
