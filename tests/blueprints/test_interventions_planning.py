"""Planning routes: the dispatch board, scheduling by drop or menu, and the planning form.

Per role: support (and managers, admins) plan; technicians are sent to their own day and
cannot plan; sales never see interventions.
"""

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from crm.extensions import db
from crm.models import Intervention, TechnicianBooking
from tests.conftest import htmx_headers
from tests.factories import (
    make_contact,
    make_deal,
    make_incident,
    make_intervention,
    make_user,
)

MONDAY = "2030-03-04"
NINE_PARIS = datetime(2030, 3, 4, 8, 0, tzinfo=UTC)  # 09:00 in Paris, the default zone
BOARD = f"http://localhost/interventions?date={MONDAY}"


def board_headers() -> dict:
    return {**htmx_headers("div#dispatch-board"), "HX-Current-URL": BOARD}


def toast_of(response) -> dict:
    return json.loads(response.headers["HX-Trigger"])["crm:toast"]


@pytest.fixture
def team(ctx):
    alice = make_user(role="technician", name="Alice Martin", skills=["boiler"])
    bob = make_user(role="technician", name="Bob Durand", skills=["electricity"])
    customer = make_contact("Marie", "Dupont", street="3 rue Haute", postcode="69001", city="Lyon")
    incident = make_incident(customer, subject="Heating down")
    waiting = make_intervention(incident, title="Boiler repair", skills=["boiler"])
    busy = make_intervention(incident, title="Wiring", technicians=[bob], start=NINE_PARIS)
    db.session.commit()
    return alice, bob, incident, waiting, busy


def active_count() -> int:
    db.session.expire_all()
    return db.session.scalar(
        select(func.count()).select_from(TechnicianBooking).where(TechnicianBooking.active)
    )


# ---- the board --------------------------------------------------------------------------


def test_the_board_shows_technicians_bookings_and_the_tray(as_role, team):
    alice, bob, incident, waiting, busy = team
    client, _agent = as_role("support")
    response = client.get(f"/interventions?date={MONDAY}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert f'id="tech-{alice.id}"' in page and f'id="tech-{bob.id}"' in page
    assert f'id="iv-{waiting.id}"' in page  # in the tray
    assert f'id="iv-{busy.id}-t{bob.id}"' in page  # in Bob's row
    # A slot is a cell of its technician's row, under the hour head that gives its start.
    assert f'<tr id="tech-{bob.id}" data-technician-id="{bob.id}">' in page
    assert 'class="hour-head" data-start="2030-03-04T09:00"' in page


def test_the_board_answers_its_fragment_to_htmx(as_role, team):
    client, _agent = as_role("support")
    response = client.get(f"/interventions?date={MONDAY}", headers=board_headers())
    page = response.get_data(as_text=True)
    assert "<html" not in page
    assert 'id="tray-cards"' in page


def test_the_skill_filter_narrows_rows_and_tray(as_role, team):
    alice, bob, incident, waiting, busy = team
    client, _agent = as_role("support")
    page = client.get(f"/interventions?date={MONDAY}&skill=electricity").get_data(as_text=True)
    assert f'id="tech-{bob.id}"' in page and f'id="tech-{alice.id}"' not in page
    assert f'id="iv-{waiting.id}"' not in page


def test_a_technician_is_sent_to_their_day_and_sales_are_refused(as_role, team):
    client, _tech = as_role("technician")
    response = client.get("/interventions")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/interventions/today")
    client, _rep = as_role("sales")
    assert client.get("/interventions").status_code == 403
    assert client.get("/interventions/new").status_code == 403


def test_the_board_runs_a_fixed_number_of_queries(as_role, team):
    client, _agent = as_role("support")
    few = int(client.get(f"/interventions?date={MONDAY}").headers["X-SQL-Queries"])
    for n in range(6):
        technician = make_user(role="technician", skills=[f"skill {n}"])
        for day in range(3):
            start = NINE_PARIS + timedelta(days=day, hours=n % 4)
            make_intervention(make_incident(make_contact()), technicians=[technician], start=start)
        make_intervention(make_incident(make_contact()), skills=[f"skill {n}"])
    db.session.commit()
    many = int(client.get(f"/interventions?date={MONDAY}").headers["X-SQL-Queries"])
    assert many == few
    assert many <= 10


# ---- scheduling -------------------------------------------------------------------------


def test_support_schedules_a_drop_and_gets_the_board_back(as_role, team):
    alice, bob, incident, waiting, busy = team
    client, _agent = as_role("support")
    response = client.post(
        f"/interventions/{waiting.id}/schedule",
        data={"technician_id": alice.id, "start": "2030-03-04T10:00"},
        headers=board_headers(),
    )
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert f'id="iv-{waiting.id}-t{alice.id}"' in page
    assert toast_of(response)["message"].startswith("Boiler repair planned for Alice Martin")
    assert toast_of(response)["level"] == "success"
    db.session.expire_all()
    saved = db.session.get(Intervention, waiting.id)
    assert (saved.status, saved.starts_at) == ("planned", NINE_PARIS + timedelta(hours=1))


def test_a_technician_without_the_skill_is_allowed_with_a_warning(as_role, team):
    alice, bob, incident, waiting, busy = team
    client, _agent = as_role("support")
    response = client.post(
        f"/interventions/{waiting.id}/schedule",
        data={"technician_id": bob.id, "start": "2030-03-04T14:00"},
        headers=board_headers(),
    )
    assert response.status_code == 200
    toast = toast_of(response)
    assert toast["level"] == "warning"
    assert "Missing skills: boiler" in toast["message"]


def test_a_double_booking_answers_409_with_the_booking_in_the_way(as_role, team):
    alice, bob, incident, waiting, busy = team
    client, _agent = as_role("support")
    response = client.post(
        f"/interventions/{waiting.id}/schedule",
        data={"technician_id": bob.id, "start": "2030-03-04T09:30"},
        headers=board_headers(),
    )
    assert response.status_code == 409
    assert response.headers["HX-Retarget"] == "#toasts"
    text = response.get_data(as_text=True)
    assert "Bob Durand is already booked from" in text and "“Wiring”" in text
    db.session.expire_all()
    assert db.session.get(Intervention, waiting.id).status == "unscheduled"
    assert active_count() == 1


@pytest.mark.parametrize(
    "data",
    [
        {"start": "2030-03-04T10:00"},
        {"technician_id": "x", "start": "2030-03-04T10:00"},
        {"technician_id": "{alice}", "start": "tomorrow"},
        {"technician_id": "{agent}", "start": "2030-03-04T10:00"},  # not a technician
        {"technician_id": "999999", "start": "2030-03-04T10:00"},
    ],
)
def test_bad_input_answers_422_and_saves_nothing(as_role, team, data):
    alice, bob, incident, waiting, busy = team
    client, agent = as_role("support")
    data = {k: v.format(alice=alice.id, agent=agent.id) for k, v in data.items()}
    response = client.post(
        f"/interventions/{waiting.id}/schedule", data=data, headers=board_headers()
    )
    assert response.status_code == 422
    assert "Choose a technician and a start time." in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Intervention, waiting.id).status == "unscheduled"
    assert active_count() == 1


def test_without_htmx_a_schedule_goes_back_to_the_board(as_role, team):
    alice, bob, incident, waiting, busy = team
    client, _agent = as_role("support")
    response = client.post(
        f"/interventions/{waiting.id}/schedule",
        data={"technician_id": alice.id, "start": "2030-03-04T10:00"},
        headers={"Referer": BOARD},
    )
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/interventions?date={MONDAY}")
    refused = client.post(
        f"/interventions/{busy.id}/schedule",
        data={"technician_id": alice.id, "start": "2030-03-04T10:30"},
        headers={"Referer": BOARD},
    )
    assert refused.status_code == 409
    assert "Alice Martin is already booked" in refused.get_data(as_text=True)


def test_moving_a_card_from_one_row_replaces_that_technician_only(as_role, team):
    alice, bob, incident, waiting, busy = team
    carol = make_user(role="technician", name="Carol")
    pair = make_intervention(
        incident, technicians=[alice, carol], start=NINE_PARIS + timedelta(days=1)
    )
    db.session.commit()
    client, _agent = as_role("support")
    response = client.post(
        f"/interventions/{pair.id}/schedule",
        data={
            "technician_id": bob.id,
            "from_technician_id": alice.id,
            "start": "2030-03-05T15:00",
        },
        headers=board_headers(),
    )
    assert response.status_code == 200
    db.session.expire_all()
    saved = db.session.get(Intervention, pair.id)
    assert sorted(b.technician_id for b in saved.bookings) == sorted([bob.id, carol.id])


def test_a_technician_cannot_plan(as_role, team):
    alice, bob, incident, waiting, busy = team
    client, _tech = as_role("technician")
    response = client.post(
        f"/interventions/{waiting.id}/schedule",
        data={"technician_id": alice.id, "start": "2030-03-04T10:00"},
    )
    assert response.status_code == 403
    assert client.post(f"/interventions/{busy.id}/unschedule").status_code == 403


def test_unschedule_from_the_board_puts_it_back_in_the_tray(as_role, team):
    alice, bob, incident, waiting, busy = team
    client, _agent = as_role("manager")
    response = client.post(f"/interventions/{busy.id}/unschedule", headers=board_headers())
    assert response.status_code == 200
    assert f'id="iv-{busy.id}"' in response.get_data(as_text=True)
    assert active_count() == 0


def test_cancel_frees_the_technician(as_role, team):
    alice, bob, incident, waiting, busy = team
    client, _agent = as_role("support")
    response = client.post(f"/interventions/{busy.id}/cancel")
    assert response.status_code == 303
    db.session.expire_all()
    assert db.session.get(Intervention, busy.id).status == "cancelled"
    assert active_count() == 0


def test_the_intervention_page_per_role(as_role, team):
    alice, bob, incident, waiting, busy = team
    client, _agent = as_role("support")
    page = client.get(f"/interventions/{busy.id}").get_data(as_text=True)
    assert "Wiring" in page and "Bob Durand" in page and "Reschedule" in page
    client, technician = as_role("technician")
    assert client.get(f"/interventions/{busy.id}").status_code == 404  # not theirs
    client = as_role("sales")[0]
    assert client.get(f"/interventions/{busy.id}").status_code == 403


# ---- the planning form ------------------------------------------------------------------


def test_the_form_starts_from_the_incident(as_role, team):
    alice, bob, incident, waiting, busy = team
    client, _agent = as_role("support")
    page = client.get(f"/interventions/new?incident_id={incident.id}").get_data(as_text=True)
    assert 'value="Heating down"' in page
    assert 'value="3 rue Haute, 69001 Lyon"' in page
    assert '<option value="boiler">boiler</option>' in page
    assert "Alice Martin" in page


def test_plan_without_a_time_waits_on_the_board(as_role, team):
    alice, bob, incident, waiting, busy = team
    client, agent = as_role("support")
    response = client.post(
        "/interventions/new",
        data={
            "title": "Replace the pump",
            "address": "3 rue Haute, 69001 Lyon",
            "skills": ["boiler"],
            "duration_minutes": "90",
            "incident_id": incident.id,
            "notes": "Code 1234 at the gate",
        },
    )
    assert response.status_code == 303
    created = db.session.scalars(
        select(Intervention).where(Intervention.title == "Replace the pump")
    ).one()
    assert response.headers["Location"].endswith(f"/interventions/{created.id}")
    assert (created.status, created.incident_id, created.skills, created.duration_minutes) == (
        "unscheduled",
        incident.id,
        ["boiler"],
        90,
    )
    assert created.contact == incident.contact and created.created_by_id == agent.id


def test_plan_with_a_time_books_the_technicians(as_role, team):
    alice, bob, incident, waiting, busy = team
    client, _agent = as_role("support")
    response = client.post(
        "/interventions/new",
        data={
            "title": "Inspection",
            "duration_minutes": "60",
            "incident_id": incident.id,
            "starts_at": "2030-03-04T13:00",
            "technicians": [alice.id],
        },
        headers=htmx_headers("form#plan-form"),
    )
    assert response.status_code == 200
    assert "/interventions/" in response.headers["HX-Location"]
    assert active_count() == 2


@pytest.mark.parametrize(
    "data, error",
    [
        ({"title": ""}, "This field is required."),
        ({"title": "X", "starts_at": "2030-03-04T13:00"}, "Choose who goes"),
        ({"title": "X", "technicians": ["{alice}"]}, "Choose when"),
        ({"title": "X", "skills": ["juggling"]}, "is not a valid choice"),
        ({"title": "X", "duration_minutes": "7"}, "Not a valid choice"),
    ],
)
def test_the_form_refuses_bad_input_with_422_and_saves_nothing(as_role, team, data, error):
    alice, bob, incident, waiting, busy = team
    client, _agent = as_role("support")
    data = {"duration_minutes": "60", **data}
    data = {
        k: [v.format(alice=alice.id) for v in vs] if isinstance(vs, list) else vs
        for k, vs in data.items()
    }
    before = db.session.scalar(select(func.count()).select_from(Intervention))
    response = client.post("/interventions/new", data=data, headers=htmx_headers("form#plan-form"))
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert error in page and 'id="plan-form"' in page and "<html" not in page
    assert db.session.scalar(select(func.count()).select_from(Intervention)) == before


def test_the_form_refuses_a_double_booking_with_the_message(as_role, team):
    alice, bob, incident, waiting, busy = team
    client, _agent = as_role("support")
    response = client.post(
        "/interventions/new",
        data={
            "title": "Second visit",
            "duration_minutes": "60",
            "starts_at": "2030-03-04T09:30",
            "technicians": [bob.id],
        },
        headers=htmx_headers("form#plan-form"),
    )
    assert response.status_code == 409
    assert "Bob Durand is already booked" in response.get_data(as_text=True)
    assert (
        db.session.scalars(select(Intervention).where(Intervention.title == "Second visit")).first()
        is None
    )


def test_a_manager_plans_from_a_deal(as_role, team):
    client, manager = as_role("manager")
    customer = make_contact("Paul", "Martin", city="Nantes")
    deal = make_deal(owner=manager, title="Install 3 boilers", contact=customer)
    db.session.commit()
    assert f"/interventions/new?deal_id={deal.id}" in client.get(f"/deals/{deal.id}").get_data(
        as_text=True
    )
    page = client.get(f"/interventions/new?deal_id={deal.id}").get_data(as_text=True)
    assert 'value="Install 3 boilers"' in page and 'value="Nantes"' in page
    # Support does not see deals: a deal id they cannot see is a 404.
    support_client = as_role("support")[0]
    assert support_client.get(f"/interventions/new?deal_id={deal.id}").status_code == 404


# ---- skills, set by an admin on the users page ---------------------------------------------


def test_an_admin_sets_a_technicians_skills(as_role, team):
    alice, bob, incident, waiting, busy = team
    client, _admin = as_role("admin")
    assert 'name="skills" value="boiler"' in client.get("/admin/users").get_data(as_text=True)
    response = client.post(
        f"/admin/users/{alice.id}/skills",
        data={"skills": " Gas , boiler,gas,  heat pumps "},
        headers=htmx_headers("tr#user-1"),
    )
    assert response.status_code == 200
    db.session.expire_all()
    assert db.session.get(type(alice), alice.id).skills == ["Gas", "boiler", "heat pumps"]
    too_long = client.post(
        f"/admin/users/{alice.id}/skills", data={"skills": "x" * 41}, headers=htmx_headers()
    )
    assert too_long.status_code == 422
    assert "At most 20 skills of 40 characters" in too_long.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(type(alice), alice.id).skills == ["Gas", "boiler", "heat pumps"]
    support = as_role("support")[0]
    assert support.post(f"/admin/users/{alice.id}/skills", data={"skills": "x"}).status_code == 403


def test_from_the_intervention_page_a_schedule_leads_to_its_day_on_the_board(as_role, team):
    alice, bob, incident, waiting, busy = team
    client, _agent = as_role("support")
    page = f"http://localhost/interventions/{waiting.id}"
    refused = client.post(
        f"/interventions/{waiting.id}/schedule",
        data={"technician_id": bob.id, "start": "2030-03-04T09:30"},
        headers={"Referer": page},
    )
    assert refused.status_code == 409
    text = refused.get_data(as_text=True)
    assert "Bob Durand is already booked" in text and "Boiler repair" in text
    response = client.post(
        f"/interventions/{waiting.id}/schedule",
        data={"technician_id": alice.id, "start": "2030-03-05T09:30"},
        headers={"Referer": page},
    )
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/interventions?date=2030-03-05")
