"""Placeholders filled for any record: a contact, a company, a deal or an incident, the
sender; money written as the recipient reads it; a missing value stays a visible gap."""

from decimal import Decimal

import pytest

from crm.models import EmailTemplate
from crm.services import canned_responses as placeholders
from tests.factories import make_company, make_contact, make_deal, make_incident, make_user


@pytest.fixture
def sender(ctx):
    return make_user(role="sales", name="Sam Sales", email="sam@crm.example", locale="en")


def test_a_contact_fills_its_own_and_its_company_s_values(sender):
    contact = make_contact(
        "Marie", "Curie", email="marie@radium.example", company=make_company("Radium SA")
    )
    text, missing = placeholders.render_text(
        "{{contact.first_name}} {{ contact.last_name }} <{{contact.email}}> "
        "({{contact.name}}) at {{company.name}}, from {{user.name}} {{user.email}}",
        contact,
        sender,
    )
    assert text == (
        "Marie Curie <marie@radium.example> (Marie Curie) at Radium SA, "
        "from Sam Sales sam@crm.example"
    )
    assert missing == []


def test_deal_values_and_the_amount_in_the_recipient_s_language(sender):
    contact = make_contact("Jean", "Dupont", country="France")
    deal = make_deal(owner=sender, amount="12345.5", contact=contact, title="Fleet renewal")
    template = EmailTemplate(
        name="Quote",
        subject="{{deal.title}}: {{deal.amount}}",
        body="Dear {{contact.first_name}}, stage {{deal.stage}}.",
    )
    rendered = placeholders.render(template, deal, sender)
    # A French recipient reads French money, whatever the sender's language.
    assert rendered.subject == "Fleet renewal: 12\u202f345,50\xa0€"
    assert rendered.body == f"Dear Jean, stage {deal.stage.name}."
    assert rendered.missing == ()

    context = placeholders.context_for(deal, sender, locale="en")
    assert placeholders.render_text("{{deal.amount}}", context)[0] == "€12,345.50"
    # Without a country: the sender's language.
    deal.contact = make_contact("Ann", "Smith")
    assert placeholders.render_text("{{deal.amount}}", deal, sender)[0] == "€12,345.50"
    assert deal.amount == Decimal("12345.50")


def test_missing_values_stay_visible_and_are_listed_once(sender):
    company = make_company("NoPeople Ltd")
    text, missing = placeholders.render_text(
        "Hello {{contact.first_name}}, {{deal.amount}} for {{company.name}} "
        "({{contact.first_name}}, {{incident.reference}}, {{contact.shoe_size}})",
        company,
        sender,
    )
    assert text == (
        "Hello {{contact.first_name}}, {{deal.amount}} for NoPeople Ltd "
        "({{contact.first_name}}, {{incident.reference}}, {{contact.shoe_size}})"
    )
    assert missing == [
        "{{contact.first_name}}",
        "{{deal.amount}}",
        "{{incident.reference}}",
        "{{contact.shoe_size}}",
    ]
    assert placeholders.unfilled(text) == missing


def test_an_empty_value_is_a_gap_not_a_blank(sender):
    contact = make_contact("", "Curie", email="c@example.com")
    text, missing = placeholders.render_text("Dear {{contact.first_name}},", contact, sender)
    assert text == "Dear {{contact.first_name}}," and missing == ["{{contact.first_name}}"]


def test_an_incident_fills_its_reference_and_subject(sender):
    contact = make_contact("Marie", "Curie", company=make_company("Radium SA"))
    incident = make_incident(contact, subject="Late delivery")
    text, missing = placeholders.render_text(
        "{{incident.reference}} {{incident.subject}} {{company.name}}", incident, sender
    )
    assert text == f"#{incident.id} Late delivery Radium SA" and missing == []
