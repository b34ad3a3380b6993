"""Interventions in the shared agenda and in the technicians' calendar feeds."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar

from crm.extensions import db
from crm.services import calendar_feed, interventions
from crm.services.agenda_views import AgendaQuery, build_view
from tests.factories import make_company, make_contact, make_incident, make_intervention, make_user

PARIS = ZoneInfo("Europe/Paris")
NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)
VISIT = datetime(2026, 11, 3, 9, tzinfo=UTC)  # 10:00 in Paris, a Tuesday


@pytest.fixture
def request_ctx(data_app, ctx):
    with data_app.test_request_context():
        yield


@pytest.fixture
def booked(ctx):
    team_tech = make_user(role="technician", name="Alice Martin", timezone="Europe/Paris")
    company = make_company("Boulangerie Dupont", phone="+33 4 72 11 11 11")
    customer = make_contact("Marie", "Dupont", company=company, phone="+33 6 12 34 56 78")
    incident = make_incident(customer, subject="Oven down")
    visit = make_intervention(
        incident,
        title="Oven repair",
        technicians=[team_tech],
        start=VISIT,
        minutes=90,
        address="3 rue Haute, 69001 Lyon",
        notes="Ring at the back door.",
    )
    db.session.commit()
    return team_tech, visit


# ---- agenda -----------------------------------------------------------------------------


def _week(viewer, *people, view="week"):
    query = AgendaQuery(view=view, day=date(2026, 11, 3), user_ids=tuple(p.id for p in people))
    return build_view(viewer, query, PARIS, NOW)


def test_the_technicians_week_shows_the_intervention(booked):
    technician, visit = booked
    view = _week(technician, technician)
    tuesday = view.columns[1]
    [placed] = [p for p in tuesday.timed if p.item.kind == "intervention"]
    assert placed.item.intervention == visit
    assert placed.item.key == f"intervention-{visit.id}"
    assert (placed.row, placed.span) == (10 * 4 + 1, 6)  # 10:00 local, 90 minutes


def test_a_planner_sees_it_in_the_team_view_of_every_technician_on_it(booked):
    technician, visit = booked
    second = make_user(role="technician", name="Bob Durand")
    interventions.schedule(visit, [technician, second], VISIT)
    db.session.commit()
    planner = make_user(role="support")
    view = _week(planner, technician, second, view="team")
    for row in view.rows:
        items = [i for cell in row.cells for i in cell.items if i.kind == "intervention"]
        assert [i.intervention.id for i in items] == [visit.id], row.user.name


def test_released_or_invisible_interventions_stay_out(booked):
    technician, visit = booked
    sales = make_user(role="sales")
    assert not [p for c in _week(sales, technician).columns for p in c.timed if p.item.intervention]
    interventions.cancel(visit)
    db.session.commit()
    assert not [
        p for c in _week(technician, technician).columns for p in c.timed if p.item.intervention
    ]


def _report(visit, technician):
    from crm.services import intervention_work

    report = intervention_work.Report(
        work_done="Thermostat replaced", time_spent_minutes=60, absent_reason="closed shop"
    )
    intervention_work.submit_report(visit, report, technician, at=VISIT + timedelta(hours=1))
    db.session.commit()


def test_a_visit_done_stays_in_the_agenda_where_it_happened(request_ctx, booked):
    technician, visit = booked
    second = make_user(role="technician", name="Bob Durand")
    interventions.schedule(visit, [technician, second], VISIT)
    db.session.commit()
    _report(visit, technician)
    # The slot is free for a new booking, yet the week still shows who went where.
    tuesday = _week(technician, technician).columns[1]
    [placed] = [p for p in tuesday.timed if p.item.kind == "intervention"]
    assert (placed.item.intervention, placed.row, placed.span) == (visit, 10 * 4 + 1, 6)
    view = _week(make_user(role="support"), technician, second, view="team")
    for row in view.rows:
        items = [i for cell in row.cells for i in cell.items if i.kind == "intervention"]
        assert [i.intervention.id for i in items] == [visit.id], row.user.name


def test_the_agenda_page_links_to_the_intervention(app, booked, login):
    technician, visit = booked
    client = login(app.test_client(), technician)
    page = client.get("/agenda?view=week&date=2026-11-03").get_data(as_text=True)
    assert f'href="/interventions/{visit.id}"' in page
    assert "kind-intervention" in page and "Oven repair" in page


# ---- calendar feeds ---------------------------------------------------------------------


def _link(record):
    return f"https://crm.example/{type(record).__name__.lower()}/{record.id}"


def _events(feed) -> list:
    built = calendar_feed.build_feed(feed, _link, "crm.example", now=NOW)
    calendar = Calendar.from_ical(built.body)
    return [c for c in calendar.walk("VEVENT") if str(c["uid"]).startswith("intervention-")]


def test_the_technicians_feed_has_the_visit_with_address_and_phone(request_ctx, booked):
    technician, visit = booked
    feed = calendar_feed.create_user_feed(technician)
    [event] = _events(feed)
    assert str(event["uid"]) == f"intervention-{visit.id}@crm"
    assert str(event["summary"]) == "Oven repair"
    assert str(event["location"]) == "3 rue Haute, 69001 Lyon"
    assert event.decoded("dtstart") == VISIT
    assert event.decoded("dtend") == VISIT + timedelta(minutes=90)
    description = str(event["description"])
    assert "Company: Boulangerie Dupont" in description
    assert "Contact: Marie Dupont" in description
    assert "Phone: +33 6 12 34 56 78" in description
    assert "Ring at the back door." in description
    assert f"https://crm.example/intervention/{visit.id}" in description


def test_a_team_feed_has_each_visit_once_and_others_feeds_none(request_ctx, booked):
    technician, visit = booked
    from tests.factories import make_team

    crew = make_team("Field crew")
    technician.team = crew
    second = make_user(role="technician", team=crew)
    interventions.schedule(visit, [technician, second], VISIT)
    db.session.commit()
    manager = make_user(role="manager", team=crew)
    assert len(_events(calendar_feed.create_team_feed(crew, manager))) == 1
    assert _events(calendar_feed.create_user_feed(manager)) == []


def test_the_feed_version_follows_bookings(request_ctx, booked):
    technician, visit = booked
    feed = calendar_feed.create_user_feed(technician)
    db.session.commit()
    before = calendar_feed.feed_version(feed, NOW).etag
    interventions.schedule(visit, [technician], VISIT + timedelta(hours=2))
    db.session.commit()
    moved = calendar_feed.feed_version(feed, NOW).etag
    assert moved != before
    interventions.cancel(visit)
    db.session.commit()
    assert calendar_feed.feed_version(feed, NOW).etag != moved
    assert _events(feed) == []


def test_a_visit_done_stays_in_the_feed_and_a_cancelled_one_leaves(request_ctx, booked):
    technician, visit = booked
    feed = calendar_feed.create_user_feed(technician)
    db.session.commit()
    planned = calendar_feed.feed_version(feed, NOW).etag
    _report(visit, technician)
    # A calendar app that drops an event takes it as cancelled: a visit made stays.
    [event] = _events(feed)
    assert str(event["uid"]) == f"intervention-{visit.id}@crm"
    assert calendar_feed.feed_version(feed, NOW).etag != planned
    other = make_intervention(title="Annual check", technicians=[technician], start=VISIT)
    db.session.commit()
    assert len(_events(feed)) == 2
    interventions.cancel(other)
    db.session.commit()
    assert [str(e["uid"]) for e in _events(feed)] == [f"intervention-{visit.id}@crm"]
