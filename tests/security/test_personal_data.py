"""Personal data (GDPR, ASVS V14): export of all we hold about a contact (JSON and CSV),
erasure on request keeping the business records, both in the audit log; consent and
unsubscribe status on each contact; CSV cells that a spreadsheet would run are neutralized."""

import csv
import io
import json

from crm.csv_safety import safe_cell, write_csv
from crm.extensions import db
from crm.models import Activity, AuditLog, Contact, Deal
from crm.models.contacts import PERSONAL_FIELDS
from tests.conftest import htmx_headers
from tests.factories import make_activity, make_company, make_contact, make_deal


def _contact_with_history(owner):
    contact = make_contact(
        "Amélie",
        "Poulain",
        email="amelie@example.com",
        phone="+33 6 12 34 56 78",
        title="Gérante",
        city="Paris",
        company=make_company("Deux Moulins"),
    )
    from crm.services.contacts import set_tags

    set_tags(contact, ["vip"])
    make_activity(contact, kind="call", body="Called about the order", author=owner)
    deal = make_deal(owner=owner, contact=contact, amount="4321.50", title="Café order")
    db.session.commit()
    contact.city = "Lyon"  # an audited change carrying personal data
    db.session.commit()
    return contact, deal


def _audit(**where):
    db.session.expire_all()
    query = db.select(AuditLog).order_by(AuditLog.id)
    for key, value in where.items():
        query = query.where(getattr(AuditLog, key) == value)
    return list(db.session.scalars(query))


def test_json_export_holds_everything_and_is_logged(as_role):
    client, manager = as_role("manager")
    contact, deal = _contact_with_history(manager)
    response = client.post(f"/contacts/{contact.id}/personal-data", data={"format": "json"})
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert "attachment" in response.headers["Content-Disposition"]
    data = json.loads(response.text)
    assert data["contact"]["email"] == "amelie@example.com"
    assert data["contact"]["tags"] == ["vip"] and data["contact"]["company"] == "Deux Moulins"
    assert data["contact"]["consent_status"] == "unknown"
    assert [a["body"] for a in data["activities"]] == ["Called about the order"]
    assert data["deals"][0]["title"] == "Café order" and data["deals"][0]["amount"] == "4321.50"
    entry = _audit(action="export")[0]
    assert (entry.entity_id, entry.actor_id) == (contact.id, manager.id)


def test_csv_export(as_role):
    client, manager = as_role("manager")
    contact, _deal = _contact_with_history(manager)
    response = client.post(f"/contacts/{contact.id}/personal-data", data={"format": "csv"})
    assert response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["section", "item", "field", "value"]
    assert ["contact", str(contact.id), "email", "amelie@example.com"] in rows
    assert any(row[0] == "activities" and row[3] == "Called about the order" for row in rows)


def test_export_by_get_or_in_an_unknown_format_does_nothing(as_role):
    client, manager = as_role("manager")
    contact, _ = _contact_with_history(manager)
    assert client.get(f"/contacts/{contact.id}/personal-data").status_code == 405
    assert (
        client.post(f"/contacts/{contact.id}/personal-data", data={"format": "xml"}).status_code
        == 400
    )
    assert _audit(action="export") == []


def test_sales_and_support_may_not_export_or_erase(as_role):
    contact = make_contact()
    db.session.commit()
    for role in ("sales", "support", "technician"):
        client, _ = as_role(role)
        assert (
            client.post(
                f"/contacts/{contact.id}/personal-data", data={"format": "json"}
            ).status_code
            == 403
        )
        assert (
            client.post(f"/contacts/{contact.id}/erase", data={"confirm": "yes"}).status_code == 403
        )


def test_erasure_removes_the_person_and_keeps_the_business_records(as_role):
    client, manager = as_role("manager")
    contact, deal = _contact_with_history(manager)
    unconfirmed = client.post(f"/contacts/{contact.id}/erase", data={})
    assert unconfirmed.status_code == 422
    db.session.expire_all()
    assert db.session.get(Contact, contact.id).email == "amelie@example.com"

    assert client.post(f"/contacts/{contact.id}/erase", data={"confirm": "yes"}).status_code == 303
    db.session.expire_all()
    erased = db.session.get(Contact, contact.id)
    assert erased.erased_at is not None
    assert erased.name == f"Erased contact #{contact.id}"
    assert all(getattr(erased, name) in (None, "", erased.last_name) for name in PERSONAL_FIELDS)
    assert erased.tags == [] and erased.company is not None
    # Search keys are recomputed: the old name and email find nothing.
    assert "amelie" not in erased.search_text and erased.email_key == "" and erased.phone_key == ""
    assert db.session.get(Deal, deal.id).contact_id == contact.id
    assert db.session.scalars(
        db.select(Activity.body).where(Activity.contact_id == contact.id)
    ).all() == ["Called about the order"]
    # The audit log keeps who did what when, without the erased values.
    entries = _audit(entity_type="contact", entity_id=contact.id)
    text = json.dumps([e.changes for e in entries]) + " ".join(e.summary for e in entries)
    for value in ("Amélie", "Poulain", "amelie@example.com", "Paris", "Lyon", "12 34"):
        assert value not in text, value
    assert entries[-1].action == "erase" and entries[-1].actor_id == manager.id
    assert all(e.redacted_at for e in entries[:-1])
    page = client.get(f"/contacts/{contact.id}").text
    assert "personal data erased" in page and "Amélie" not in page


def test_consent_and_unsubscribe_in_one_click_each(as_role):
    client, _ = as_role("sales")
    contact = make_contact()
    db.session.commit()
    page = client.get(f"/contacts/{contact.id}").text
    assert "Consent to marketing" in page and "Not asked" in page
    response = client.post(
        f"/contacts/{contact.id}/consent",
        data={"consent_status": "granted"},
        headers=htmx_headers("section#consent"),
    )
    assert (
        response.status_code == 200
        and 'id="consent"' in response.text
        and "<html" not in response.text
    )
    response = client.post(
        f"/contacts/{contact.id}/unsubscribe",
        data={"unsubscribed": "1"},
        headers=htmx_headers("section#consent"),
    )
    assert "Unsubscribed on" in response.text
    db.session.expire_all()
    fresh = db.session.get(Contact, contact.id)
    assert fresh.consent_status == "granted" and fresh.consent_at and fresh.unsubscribed_at
    assert (
        client.post(f"/contacts/{contact.id}/consent", data={"consent_status": "maybe"}).status_code
        == 400
    )
    update = [
        e for e in _audit(entity_type="contact", action="update") if "consent_status" in e.changes
    ]
    assert update and update[0].changes["consent_status"] == ["unknown", "granted"]


def test_consent_shows_in_the_export(as_role):
    client, manager = as_role("manager")
    contact = make_contact(consent_status="refused")
    db.session.commit()
    data = json.loads(
        client.post(f"/contacts/{contact.id}/personal-data", data={"format": "json"}).text
    )
    assert data["contact"]["consent_status"] == "refused" and "unsubscribed_at" in data["contact"]


def test_csv_cells_that_start_a_formula_are_neutralized(as_role):
    for dangerous in ('=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"):
        assert safe_cell(dangerous) == "'" + dangerous
    assert (
        safe_cell("Jean-Paul") == "Jean-Paul" and safe_cell(None) == "" and safe_cell(-5) == "'-5"
    )
    rows = list(csv.reader(io.StringIO(write_csv(["a"], [["=cmd|' /C calc'!A0"]]))))
    assert rows[1] == ["'=cmd|' /C calc'!A0"]
    client, _ = as_role("manager")
    contact = make_contact("=1+1", "@evil")
    db.session.commit()
    rows = list(
        csv.reader(
            io.StringIO(
                client.post(f"/contacts/{contact.id}/personal-data", data={"format": "csv"}).text
            )
        )
    )
    values = {row[2]: row[3] for row in rows if row[0] == "contact"}
    assert values["first_name"] == "'=1+1" and values["last_name"] == "'@evil"


def _mail_and_campaign_history(contact, owner):
    """A custom field value, a message from the person and one to them (a colleague in
    copy), an incident, and a campaign sent to them."""
    from crm.models import (
        Campaign,
        CampaignRecipient,
        CustomFieldDefinition,
        EmailMessage,
        Segment,
    )
    from tests.factories import make_incident

    db.session.add(CustomFieldDefinition(entity="contact", key="birthday", label="Birthday"))
    contact.custom_fields = {"birthday": "1 May"}
    db.session.commit()  # an audited change carrying the custom field's value
    common = {"mailbox": None, "contact": contact, "owner": owner, "privacy": "public"}
    incoming = EmailMessage(
        direction="in",
        message_id="<in@example.com>",
        message_id_key="in@example.com",
        subject="My order",
        from_address="amelie@example.com",
        from_name="Amélie Poulain",
        to_addresses=["sales@crm.example"],
        text_body="Where is my coffee machine?",
        **common,
    )
    outgoing = EmailMessage(
        direction="out",
        message_id="<out@example.com>",
        message_id_key="out@example.com",
        subject="Re: My order",
        from_address="sales@crm.example",
        to_addresses=["Amélie Poulain <amelie@example.com>"],
        cc_addresses=["boss@crm.example"],
        text_body="It ships tomorrow.",
        **common,
    )
    campaign = Campaign(name="Spring", segment=Segment(name="All", filters=[]))
    sent = CampaignRecipient(
        campaign=campaign, contact=contact, email="amelie@example.com", unsubscribe_token="t1"
    )
    db.session.add_all([incoming, outgoing, campaign, sent])
    make_incident(contact, subject="Broken grinder")
    db.session.commit()
    return incoming, outgoing, sent


def test_the_export_holds_custom_fields_emails_incidents_and_campaigns(as_role):
    client, manager = as_role("manager")
    contact, _deal = _contact_with_history(manager)
    _mail_and_campaign_history(contact, manager)
    data = json.loads(
        client.post(f"/contacts/{contact.id}/personal-data", data={"format": "json"}).text
    )
    assert data["contact"]["custom_fields"] == {"Birthday": "1 May"}
    assert [(m["direction"], m["subject"]) for m in data["emails"]] == [
        ("in", "My order"),
        ("out", "Re: My order"),
    ]
    assert data["emails"][0]["from"] == "amelie@example.com"
    assert data["emails"][0]["body"] == "Where is my coffee machine?"
    assert [i["subject"] for i in data["incidents"]] == ["Broken grinder"]
    assert data["campaigns"][0]["campaign"] == "Spring"
    assert data["campaigns"][0]["email"] == "amelie@example.com"
    rows = list(
        csv.reader(
            io.StringIO(
                client.post(f"/contacts/{contact.id}/personal-data", data={"format": "csv"}).text
            )
        )
    )
    sections = {row[0] for row in rows[1:]}
    assert sections == {"contact", "activities", "deals", "emails", "incidents", "campaigns"}
    assert ["contact", str(contact.id), "custom_fields", "Birthday=1 May"] in rows


def test_erasure_takes_the_person_out_of_custom_fields_emails_and_campaign_sends(as_role):
    from crm.models import CampaignRecipient, EmailMessage

    client, manager = as_role("manager")
    contact, _deal = _contact_with_history(manager)
    incoming, outgoing, sent = _mail_and_campaign_history(contact, manager)
    assert client.post(f"/contacts/{contact.id}/erase", data={"confirm": "yes"}).status_code == 303
    db.session.expire_all()
    assert db.session.get(Contact, contact.id).custom_fields == {}
    assert db.session.get(CampaignRecipient, sent.id).email == ""
    came_in = db.session.get(EmailMessage, incoming.id)
    went_out = db.session.get(EmailMessage, outgoing.id)
    assert (came_in.from_address, came_in.from_name) == ("", None)
    assert came_in.to_addresses == ["sales@crm.example"]  # our own address stays
    assert went_out.to_addresses == [] and went_out.cc_addresses == ["boss@crm.example"]
    # The messages stay on the timeline, as the notes and calls do.
    assert came_in.contact_id == contact.id and came_in.subject == "My order"
    entries = _audit(entity_type="contact", entity_id=contact.id)
    assert "1 May" not in json.dumps([e.changes for e in entries])
