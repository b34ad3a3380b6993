"""The technician's phone view: the day's visits, one tap per step, the report with its
signature (422 with errors beside the fields and nothing saved on bad input)."""

import json
import re
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from crm.extensions import db
from crm.models import Activity, IncidentMessage, Intervention
from crm.services.reminders import now
from tests.conftest import htmx_headers
from tests.factories import make_company, make_contact, make_incident, make_intervention, make_user
from tests.services.test_intervention_work import signature_data_url

PARIS = ZoneInfo("Europe/Paris")


def _today_at(hour: int, minute: int = 0):
    local = now().astimezone(PARIS).replace(hour=hour, minute=minute, second=0, microsecond=0)
    return local.astimezone(ZoneInfo("UTC"))


@pytest.fixture
def technician(as_role):
    return as_role("technician", timezone="Europe/Paris", name="Théo Martin")


def _visit(technician_user, hour=9, **fields):
    company = make_company(name="Boulangerie Dupain", phone="+33 1 40 00 00 00")
    contact = make_contact("Marie", "Dupont", company=company, phone="+33 6 12 34 56 78")
    incident = make_incident(
        contact, subject="Oven does not heat", priority="urgent", status="open"
    )
    fields.setdefault("address", "3 rue des Lilas, 69003 Lyon")
    visit = make_intervention(
        incident, technicians=[technician_user], start=_today_at(hour), skills=["ovens"], **fields
    )
    db.session.commit()
    return visit


def _report_form(**fields):
    values = {
        "work_done": "Replaced the thermostat.",
        "time_spent": "45",
        "parts_used": "1 x Thermostat",
        "signed_by": "Marie Dupont",
        "signature": signature_data_url(),
    }
    values.update(fields)
    return values


# ---- the day ---------------------------------------------------------------------------


def test_the_technician_sees_their_day_with_address_phone_and_the_next_step(technician):
    client, me = technician
    later = _visit(me, hour=15, title="Afternoon visit")
    visit = _visit(me, hour=9, title="Morning visit")
    _visit(make_user(role="technician"), hour=10, title="Someone else's visit")

    html = client.get("/interventions/today").text

    assert html.index("Morning visit") < html.index("Afternoon visit")
    assert "Someone else&#39;s visit" not in html and "Someone else's visit" not in html
    assert 'href="tel:+33612345678"' in html
    assert "https://www.openstreetmap.org/search?query=3%20rue%20des%20Lilas" in html
    assert 'href="geo:0,0?q=3%20rue%20des%20Lilas' in html
    assert "Oven does not heat" in html and "Urgent" in html and "ovens" in html
    card = re.search(rf'<li id="visit-{visit.id}".*?</li>', html, re.S).group(0)
    assert 'name="status" value="en_route"' in card and "09:00" in card
    assert f"/interventions/{later.id}/report" in html
    assert "<script>" not in html and 'style="' not in html


def test_the_day_switch_shows_another_day_as_a_fragment(technician):
    client, me = technician
    tomorrow = _visit(me, hour=9, title="Tomorrow's visit")
    tomorrow.starts_at += timedelta(days=1)
    tomorrow.ends_at += timedelta(days=1)
    for booking in tomorrow.bookings:
        booking.starts_at, booking.ends_at = tomorrow.starts_at, tomorrow.ends_at
    db.session.commit()
    day = tomorrow.starts_at.astimezone(PARIS).date().isoformat()

    assert "Tomorrow" not in client.get("/interventions/today").text
    fragment = client.get(f"/interventions/today?day={day}", headers=htmx_headers("div#field-day"))

    assert "<html" not in fragment.text and "Tomorrow&#39;s visit" in fragment.text
    assert "Back to today" in fragment.text
    assert client.get("/interventions/today?day=not-a-date").status_code == 200


def test_office_roles_open_the_day_without_visits_of_their_own(as_role):
    client, _user = as_role("support")
    response = client.get("/interventions/today")
    assert response.status_code == 200 and "Only technicians have visits" in response.text


@pytest.mark.parametrize("role", ["sales"])
def test_sales_cannot_work_visits(as_role, role):
    client, _user = as_role(role)
    visit = _visit(make_user(role="technician"))
    assert client.get("/interventions/today").status_code == 403
    assert (
        client.post(f"/interventions/{visit.id}/step", data={"status": "en_route"}).status_code
        == 403
    )
    assert client.get(f"/interventions/{visit.id}/report").status_code == 403
    assert client.post(f"/interventions/{visit.id}/report", data=_report_form()).status_code == 403


# ---- the taps ----------------------------------------------------------------------------


def test_one_tap_en_route_then_on_site_swaps_the_card_and_shows_a_toast(technician):
    client, me = technician
    visit = _visit(me)

    response = client.post(
        f"/interventions/{visit.id}/step",
        data={"status": "en_route"},
        headers=htmx_headers(f"li#visit-{visit.id}"),
    )

    assert response.status_code == 200
    assert response.text.lstrip().startswith(f'<li id="visit-{visit.id}"')
    assert 'name="status" value="on_site"' in response.text and "En route" in response.text
    toast = json.loads(response.headers["HX-Trigger"])["crm:toast"]
    assert toast == {"message": "On the way to Marie Dupont.", "level": "success"}
    client.post(
        f"/interventions/{visit.id}/step", data={"status": "on_site"}, headers=htmx_headers()
    )
    db.session.expire_all()
    assert db.session.get(Intervention, visit.id).status == "on_site"
    assert db.session.scalar(select(func.count()).where(Activity.kind == "system")) == 2


def test_a_step_that_no_longer_applies_answers_409_with_the_card_as_it_is(technician):
    client, me = technician
    visit = _visit(me, status="done")

    response = client.post(
        f"/interventions/{visit.id}/step", data={"status": "on_site"}, headers=htmx_headers()
    )

    assert response.status_code == 409
    assert "Report saved" in response.text
    assert json.loads(response.headers["HX-Trigger"])["crm:toast"]["level"] == "error"


def test_without_javascript_a_tap_returns_to_the_day(technician):
    client, me = technician
    visit = _visit(me)
    response = client.post(f"/interventions/{visit.id}/step", data={"status": "en_route"})
    assert (
        response.status_code == 303 and "/interventions/today?day=" in response.headers["Location"]
    )


def test_another_technicians_visit_is_not_found(technician):
    client, _me = technician
    visit = _visit(make_user(role="technician"))

    assert (
        client.post(f"/interventions/{visit.id}/step", data={"status": "en_route"}).status_code
        == 404
    )
    assert client.get(f"/interventions/{visit.id}/report").status_code == 404
    assert client.post(f"/interventions/{visit.id}/report", data=_report_form()).status_code == 404
    db.session.expire_all()
    assert db.session.get(Intervention, visit.id).status == "planned"


# ---- the report --------------------------------------------------------------------------


def test_the_report_form_proposes_the_time_on_site_and_the_contact_as_signer(technician):
    client, me = technician
    visit = _visit(me, status="on_site")
    visit.status_changed_at = now() - timedelta(minutes=37)
    db.session.commit()

    html = client.get(f"/interventions/{visit.id}/report").text

    assert re.search(r'name="time_spent"[^>]*value="3[78]"', html)
    assert re.search(r'name="signed_by"[^>]*value="Marie Dupont"', html)
    assert "data-signature-pad" in html and "<canvas" in html


def test_saving_the_report_closes_the_visit_and_returns_to_the_day(technician):
    client, me = technician
    visit = _visit(me, status="on_site")

    response = client.post(
        f"/interventions/{visit.id}/report",
        data=_report_form(),
        headers=htmx_headers("form#report-form"),
    )

    assert response.status_code == 200
    assert json.loads(response.headers["HX-Location"])["path"].startswith(
        "/interventions/today?day="
    )
    db.session.expire_all()
    saved = db.session.get(Intervention, visit.id)
    assert saved.status == "done" and saved.work_done == "Replaced the thermostat."
    assert saved.parts_used == "1 × Thermostat" and saved.time_spent_minutes == 45
    assert all(not booking.active for booking in saved.bookings)
    assert saved.incident.status == "resolved"
    assert db.session.scalar(select(func.count()).select_from(IncidentMessage)) == 1
    assert db.session.scalar(select(func.count()).where(Activity.kind == "visit")) == 1
    page = client.get(f"/interventions/{visit.id}/report").text
    assert 'src="data:image/png;base64,' in page and "Marie Dupont" in page
    day = client.get("/interventions/today").text
    assert "Report saved" in day and f"/interventions/{visit.id}/step" not in day


def test_office_staff_can_type_in_a_paper_report(as_role):
    client, _user = as_role("support")
    visit = _visit(make_user(role="technician"))
    response = client.post(
        f"/interventions/{visit.id}/report",
        data=_report_form(signature="", customer_absent="y", absent_reason="Paper report"),
    )
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/interventions/{visit.id}/report")


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"work_done": "  "}, "This field is required."),
        ({"time_spent": ""}, "How long did the visit take?"),
        ({"time_spent": "0"}, "Between 1 minute and 24 hours."),
        ({"parts_used": "0 x Thermostat"}, "Quantity out of range"),
        ({"signed_by": ""}, "Who signs for the customer?"),
        ({"signature": ""}, "Ask the customer to sign"),
        ({"signature": signature_data_url(ink=False)}, "The signature is empty"),
        ({"signature": "data:image/gif;base64,R0lGOD"}, "must be a PNG image"),
        ({"signature": "", "customer_absent": "y"}, "Say why the customer could not sign."),
    ],
)
def test_bad_input_answers_422_beside_the_field_and_saves_nothing(technician, fields, error):
    client, me = technician
    visit = _visit(me, status="on_site")

    response = client.post(
        f"/interventions/{visit.id}/report",
        data=_report_form(**fields),
        headers=htmx_headers("form#report-form"),
    )

    assert response.status_code == 422
    assert response.text.lstrip().startswith('<form id="report-form"')
    assert error in response.text
    assert "Replaced the thermostat." in response.text or fields.get("work_done")
    db.session.expire_all()
    assert db.session.get(Intervention, visit.id).status == "on_site"
    assert db.session.scalar(select(func.count()).select_from(IncidentMessage)) == 0
    assert db.session.scalar(select(func.count()).select_from(Activity)) == 0


def test_a_valid_signature_is_kept_when_another_field_is_wrong(technician):
    client, me = technician
    visit = _visit(me, status="on_site")
    signature = signature_data_url()

    html = client.post(
        f"/interventions/{visit.id}/report",
        data=_report_form(work_done="", signature=signature),
        headers=htmx_headers("form#report-form"),
    ).text

    assert f'value="{signature}"' in html


def test_a_closed_visit_takes_no_second_report(technician):
    client, me = technician
    visit = _visit(me, status="on_site")
    client.post(f"/interventions/{visit.id}/report", data=_report_form())

    again = client.post(
        f"/interventions/{visit.id}/report",
        data=_report_form(work_done="Twice"),
        headers=htmx_headers(),
    )

    assert again.status_code == 409
    assert db.session.scalar(select(func.count()).select_from(IncidentMessage)) == 1


def test_the_day_loads_in_a_fixed_number_of_queries(technician, data_app):
    from sqlalchemy import event

    client, me = technician

    def count_queries() -> int:
        statements = []

        def before(*_args):
            statements.append(1)

        with data_app.app_context():
            engine = db.engine
        event.listen(engine, "before_cursor_execute", before)
        try:
            assert client.get("/interventions/today").status_code == 200
        finally:
            event.remove(engine, "before_cursor_execute", before)
        return len(statements)

    _visit(me, hour=8)
    one = count_queries()
    for hour in (10, 12, 14, 16):
        _visit(me, hour=hour)
    assert count_queries() == one
