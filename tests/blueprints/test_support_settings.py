"""Support settings: who may open and change them, each section saved whole or not
at all (422 with the errors beside the fields), the SLA badge on the queue."""

from datetime import UTC, date, datetime, time, timedelta

import pytest
from sqlalchemy import func, select

from crm.extensions import db
from crm.models import BusinessHours, Holiday, SlaPolicy, SupportCalendar, User
from crm.services import sla, support_settings
from tests.conftest import htmx_headers
from tests.factories import make_incident, make_user

POLICY_FORM = {
    f"{p}-{name}": value
    for p, values in {
        "urgent": (1, 0, 3, 30, 15),
        "high": (2, 0, 8, 0, 30),
        "normal": (4, 0, 24, 0, 60),
        "low": (8, 0, 40, 0, 60),
    }.items()
    for name, value in zip(
        ("first_hours", "first_minutes", "resolution_hours", "resolution_minutes", "warning"),
        values,
        strict=True,
    )
}


def hours_form(**days):
    data = {"timezone": "Europe/Paris"}
    for weekday in range(7):
        spans = days.get(
            f"day{weekday}", [("09:00", "12:30"), ("13:30", "18:00")] if weekday < 5 else []
        )
        for n, (opens, closes) in enumerate(spans, start=1):
            data[f"day{weekday}-opens{n}"], data[f"day{weekday}-closes{n}"] = opens, closes
    return data


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


@pytest.mark.parametrize(
    ("role", "status"),
    [("admin", 200), ("manager", 200), ("support", 403), ("sales", 403), ("technician", 403)],
)
def test_who_opens_the_page(as_role, role, status):
    client, _user = as_role(role)
    assert client.get("/incidents/settings").status_code == status
    answer = client.post("/incidents/settings/policies", data=POLICY_FORM)
    assert answer.status_code == (303 if status == 200 else 403)


def test_page_shows_the_defaults_without_writing_them(as_role):
    client, _user = as_role("manager")
    make_user(role="support", name="Nadia Roux", password=None, max_open_incidents=12)
    db.session.commit()
    page = client.get("/incidents/settings").get_data(as_text=True)
    assert 'name="urgent-first_hours" type="number" value="1"' in page or 'value="1"' in page
    assert "Lundi de Pâques" in page and "Europe/Paris" in page
    assert "Nadia Roux" in page and 'value="12"' in page
    assert count(SupportCalendar) == 0 and count(SlaPolicy) == 0


def test_saving_the_policies(as_role):
    client, _user = as_role("admin")
    answer = client.post(
        "/incidents/settings/policies",
        data=POLICY_FORM,
        headers=htmx_headers("section#sla-policies"),
    )
    assert answer.status_code == 200
    assert 'id="sla-policies"' in answer.get_data(as_text=True)
    assert "Service levels saved" in answer.headers["HX-Trigger"]
    urgent = db.session.scalars(select(SlaPolicy).filter_by(priority="urgent")).one()
    assert (urgent.first_response_minutes, urgent.resolution_minutes, urgent.warning_minutes) == (
        60,
        210,
        15,
    )
    assert count(SlaPolicy) == 4


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("urgent-first_minutes", "75", "Number must be between 0 and 59"),
        ("high-first_hours", "", "This field is required"),
        ("normal-resolution_hours", "1", "cannot be due before the first response"),
        ("low-warning", "600", "Warn before the first response is due"),
        ("urgent-first_hours", "0", "longer than zero"),
    ],
)
def test_bad_policies_are_refused_whole(as_role, field, value, message):
    client, _user = as_role("manager")
    data = dict(POLICY_FORM, **{field: value})
    if field == "urgent-first_hours":
        data["urgent-first_minutes"] = "0"
    answer = client.post(
        "/incidents/settings/policies", data=data, headers=htmx_headers("section#sla-policies")
    )
    assert answer.status_code == 422
    body = answer.get_data(as_text=True)
    assert message in body
    assert f'id="{field}"' in body or f'id="{field.rsplit("-", 1)[0]}-' in body
    assert count(SlaPolicy) == 0  # nothing half-saved


def test_saving_business_hours_and_the_zone(as_role):
    client, _user = as_role("admin")
    data = hours_form(day5=[("10:00", "14:00")], day6=[("20:00", "00:00")])
    data["timezone"] = "America/Montreal"
    answer = client.post(
        "/incidents/settings/hours", data=data, headers=htmx_headers("section#business-hours")
    )
    assert answer.status_code == 200
    calendar = support_settings.calendar_row()
    assert calendar.timezone == "America/Montreal"
    assert count(BusinessHours) == 12
    saturday = [(h.opens_at, h.closes_at) for h in calendar.hours if h.weekday == 5]
    assert saturday == [(time(10, 0), time(14, 0))]
    support_settings.forget_cached()
    loaded = support_settings.load_calendar()
    assert loaded.week[6] == ((20 * 60, 24 * 60),)
    # The page shows midnight as 00:00 again.
    assert 'name="day6-closes1" type="time" value="00:00"' in client.get(
        "/incidents/settings"
    ).get_data(as_text=True)


@pytest.mark.parametrize(
    ("days", "message"),
    [
        ({"day0": [("09:00", "08:00")]}, "Closes after it opens"),
        ({"day0": [("09:00", "")]}, "Give both the opening and the closing time"),
        ({"day0": [("09:00", "13:00"), ("12:00", "18:00")]}, "starts after the first one ends"),
        ({f"day{d}": [] for d in range(7)}, "at least one span"),
    ],
)
def test_bad_hours_are_refused_whole(as_role, days, message):
    client, _user = as_role("manager")
    data = hours_form(**days)
    if message == "Give both the opening and the closing time":
        data["day0-closes1"] = ""
    answer = client.post(
        "/incidents/settings/hours", data=data, headers=htmx_headers("section#business-hours")
    )
    assert answer.status_code == 422
    assert message in answer.get_data(as_text=True)
    assert count(SupportCalendar) == 0 and count(BusinessHours) == 0


def test_holidays_added_removed_and_french_ones(as_role):
    client, _user = as_role("admin")
    target = htmx_headers("section#holidays")
    answer = client.post(
        "/incidents/settings/holidays",
        data={"day": "2030-06-03", "name": "Fête de l'entreprise"},
        headers=target,
    )
    assert answer.status_code == 200 and "Fête de l&#39;entreprise" in answer.get_data(as_text=True)
    added = count(Holiday)  # with the defaults created on the way
    again = client.post(
        "/incidents/settings/holidays", data={"day": "2030-06-03", "name": "Twice"}, headers=target
    )
    assert again.status_code == 422 and "holiday already" in again.get_data(as_text=True)
    missing = client.post(
        "/incidents/settings/holidays", data={"day": "", "name": ""}, headers=target
    )
    assert missing.status_code == 422
    assert count(Holiday) == added

    french = client.post(
        "/incidents/settings/holidays/french", data={"year": "2031"}, headers=target
    )
    assert french.status_code == 200
    assert count(Holiday) == added + 11
    assert "11 public holidays added" in french.headers["HX-Trigger"]
    assert (
        client.post(
            "/incidents/settings/holidays/french", data={"year": "1700"}, headers=target
        ).status_code
        == 422
    )

    holiday = db.session.scalars(select(Holiday).filter_by(day=date(2030, 6, 3))).one()
    removed = client.post(f"/incidents/settings/holidays/{holiday.id}/delete", headers=target)
    assert removed.status_code == 200
    assert count(Holiday) == added + 10
    assert (
        client.post(f"/incidents/settings/holidays/{holiday.id}/delete", headers=target).status_code
        == 404
    )


def test_agent_availability(as_role):
    client, _user = as_role("manager")
    agent = make_user(role="support", name="Lucas Moreau", password=None)
    sales = make_user(role="sales", password=None)
    db.session.commit()
    url = f"/incidents/settings/agents/{agent.id}"
    answer = client.post(
        url,
        data={"away_until": "2030-11-30", "max_open_incidents": "10"},
        headers=htmx_headers(f"tr#agent-{agent.id}"),
    )
    assert answer.status_code == 200
    assert f'id="agent-{agent.id}"' in answer.get_data(as_text=True)
    db.session.expire_all()
    agent = db.session.get(User, agent.id)
    assert (agent.away_until, agent.max_open_incidents) == (date(2030, 11, 30), 10)

    bad = client.post(
        url,
        data={"away_until": "soon", "max_open_incidents": "0"},
        headers=htmx_headers(f"tr#agent-{agent.id}"),
    )
    assert bad.status_code == 422
    assert "Not a valid date value" in bad.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(User, agent.id).max_open_incidents == 10

    cleared = client.post(
        url,
        data={"away_until": "", "max_open_incidents": ""},
        headers=htmx_headers(f"tr#agent-{agent.id}"),
    )
    assert cleared.status_code == 200
    db.session.expire_all()
    assert db.session.get(User, agent.id).away_until is None
    assert client.post(f"/incidents/settings/agents/{sales.id}", data={}).status_code == 404


def test_sla_badge_states(data_app, ctx):
    from flask import render_template_string

    now = datetime.now(UTC)
    incident = make_incident(priority="urgent", status="open", created_at=now - timedelta(days=10))
    sla.start_clock(incident)
    waiting = make_incident(priority="low", status="waiting", created_at=now)
    sla.start_clock(waiting)
    template = '{% from "incidents/_sla.html" import sla_clock %}{{ sla_clock(incident, now) }}'
    quiet = make_incident()
    with data_app.test_request_context("/"):
        late = render_template_string(template, incident=incident, now=now)
        paused = render_template_string(template, incident=waiting, now=now)
        none = render_template_string(template, incident=quiet, now=now)
    assert 'class="sla-clock sla-breached sla-target-first_response"' in late and "overdue" in late
    assert "title=" in late and "style=" not in late
    assert "sla-paused" in paused and "paused" in paused
    assert none.strip() == ""
