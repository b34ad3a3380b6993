"""The same tasks for a user whose language is French.

The page language comes from the user's setting whether or not the catalogue is
compiled; the labels are checked against crm/translations/fr/LC_MESSAGES/messages.mo
once it exists (the expected French text is read from that catalogue, so the test
follows the translators' wording rather than guessing it).
"""

import re
from pathlib import Path

import pytest
from babel.support import Translations
from playwright.sync_api import Page, expect

from tests import factories
from tests.browser.conftest import Clicks

pytestmark = pytest.mark.browser

TRANSLATIONS = Path(__file__).resolve().parents[2] / "crm" / "translations"
MO = TRANSLATIONS / "fr" / "LC_MESSAGES" / "messages.mo"
needs_catalogue = pytest.mark.skipif(not MO.exists(), reason=f"{MO} is not compiled yet")

# The strings of the contact page this test reads in French (msgids of the catalogue).
CHECKED = ("Timeline", "Log a call", "Add a note", "Save", "Customer", "Call logged.")


@pytest.fixture
def french_user(seed):
    user = factories.make_user(
        role="sales", name="Élodie Bernard", email="elodie@example.com", locale="fr"
    )
    seed.commit()
    return user


@pytest.fixture
def contact(seed):
    contact = factories.make_contact("Amélie", "Poulain", email="amelie@example.com")
    seed.commit()
    return contact


def log_a_call(page: Page, clicks: Clicks, text: str) -> None:
    """Language-neutral selectors: click the text box, type, click the submit button."""
    composer = page.locator("#composer")
    expect(composer.locator("input[value=call]")).to_be_checked()
    clicks.click(composer.locator("textarea"))
    page.keyboard.insert_text(text)
    clicks.click(composer.locator("button[type=submit]"))
    expect(page.locator("#timeline li.kind-call").first).to_contain_text(text)
    expect(page.locator("#toasts .toast")).to_be_visible()


def test_french_user_gets_pages_in_french(
    page: Page, clicks: Clicks, signed_in, french_user, contact
):
    signed_in(page, french_user)
    page.goto(f"/contacts/{contact.id}")
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    with clicks.task("log a call (fr)", budget=2):
        log_a_call(page, clicks, "Rappeler mardi pour le devis.")
    with clicks.task("change the stage (fr)", budget=1):
        clicks.click(page.locator(".stage-stepper button[value=customer]"))
        expect(page.locator("#contact-header h1 .badge")).to_have_class(
            re.compile(r"\bstage-customer\b")
        )
    expect(page.locator("#timeline li").first).to_have_class(re.compile(r"\bkind-system\b"))


@needs_catalogue
def test_french_labels_on_the_contact_page(
    page: Page, clicks: Clicks, signed_in, french_user, contact
):
    fr = Translations.load(str(TRANSLATIONS), ["fr"])
    french = {msgid: fr.gettext(msgid) for msgid in CHECKED}
    untranslated = [m for m in ("Timeline", "Log a call", "Add a note", "Save") if french[m] == m]
    assert not untranslated, f"not translated in {MO}: {untranslated}"

    signed_in(page, french_user)
    page.goto(f"/contacts/{contact.id}")
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    expect(page.locator("h2.timeline-title")).to_have_text(french["Timeline"])
    composer = page.locator("#composer")
    expect(composer.locator("label", has=page.locator("input[value=call]"))).to_have_text(
        french["Log a call"]
    )
    expect(composer.locator("label", has=page.locator("input[value=note]"))).to_have_text(
        french["Add a note"]
    )
    expect(composer.locator("button[type=submit]")).to_have_text(french["Save"])
    expect(page.locator(".stage-stepper button[value=customer]")).to_have_text(french["Customer"])
    log_a_call(page, clicks, "Rappeler mardi.")
    expect(page.locator("#toasts .toast").filter(has_text=french["Call logged."])).to_be_visible()
