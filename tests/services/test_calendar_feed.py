"""The ICS feed, read back by the icalendar library and expanded by an independent reader.

recurring-ical-events expands the RRULE/EXDATE/RECURRENCE-ID of the file the way a
calendar client does, with the VTIMEZONE we wrote: what it finds must be what the
agenda shows, at the same local hour on both sides of a daylight-saving change.
"""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import recurring_ical_events
from icalendar import Calendar

from crm.extensions import db
from crm.models import CalendarFeed
from crm.services import calendar_feed
from crm.services.recurrence import build_rule, iso_utc
from tests.factories import make_contact, make_event, make_task, make_team, make_user

PARIS = ZoneInfo("Europe/Paris")
NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def paris(*args):
    return datetime(*args, tzinfo=PARIS).astimezone(UTC)


def _link(record):
    return f"https://crm.example/{type(record).__name__.lower()}/{record.id}"


@pytest.fixture
def request_ctx(data_app, ctx):
    with data_app.test_request_context():
        yield


def _build(feed: CalendarFeed, now=NOW) -> tuple[Calendar, calendar_feed.FeedFile]:
    built = calendar_feed.build_feed(feed, _link, "crm.example", now=now)
    return Calendar.from_ical(built.body), built


def _by_summary(calendar: Calendar, summary: str):
    return [c for c in calendar.walk("VEVENT") if str(c.get("summary")) == summary]


def test_user_feed_has_the_calendar_a_client_expects(request_ctx):
    me = make_user(name="Sophie Laurent", timezone="Europe/Paris")
    feed = calendar_feed.create_user_feed(me)
    make_event(organizer=me, start=paris(2026, 11, 3, 10), title="Demo Atlas")
    db.session.commit()
    calendar, built = _build(feed)

    assert calendar["PRODID"] and str(calendar["VERSION"]) == "2.0"
    assert str(calendar["X-WR-CALNAME"]) == "CRM agenda – Sophie Laurent"
    assert str(calendar["X-WR-TIMEZONE"]) == "Europe/Paris"
    assert b"REFRESH-INTERVAL;VALUE=DURATION:PT15M" in built.body
    assert b"X-PUBLISHED-TTL:PT15M" in built.body
    assert [tz.tz_name for tz in calendar.timezones] == ["Europe/Paris"]
    [event] = calendar.walk("VEVENT")
    assert event.start == datetime(2026, 11, 3, 10, tzinfo=PARIS)
    assert event["DTSTART"].params["TZID"] == "Europe/Paris"
    assert str(event["URL"]).startswith("https://crm.example/event/")
    assert "Open in the CRM: https://crm.example/event/" in str(event["DESCRIPTION"])


def test_weekly_series_with_exception_and_moved_occurrence_across_dst(request_ctx):
    me = make_user(timezone="Europe/Paris")
    feed = calendar_feed.create_user_feed(me)
    # Mondays 9:00 Paris from 5 October 2026; clocks go back on 25 October.
    series = make_event(
        organizer=me,
        start=paris(2026, 10, 5, 9),
        rrule=build_rule("WEEKLY", until=date(2026, 11, 30)),
        exdates=[iso_utc(paris(2026, 10, 12, 9))],
        title="Weekly pipeline review",
    )
    make_event(
        organizer=me,
        parent=series,
        recurrence_id=paris(2026, 10, 19, 9),
        start=paris(2026, 10, 19, 10, 30),
        title="Weekly pipeline review (later)",
    )
    db.session.commit()
    calendar, built = _build(feed)

    master, moved = [c for c in calendar.walk("VEVENT")]
    assert master["UID"] == moved["UID"] == series.ical_uid
    assert master["RRULE"]["FREQ"] == ["WEEKLY"]
    # UNTIL in UTC next to a zoned DTSTART (RFC 5545 3.3.10): 30 Nov 23:59:59 Paris.
    assert master["RRULE"]["UNTIL"] == [utc(2026, 11, 30, 22, 59, 59)]
    assert [d.dt for d in master["EXDATE"].dts] == [datetime(2026, 10, 12, 9, tzinfo=PARIS)]
    assert moved["RECURRENCE-ID"].dt == datetime(2026, 10, 19, 9, tzinfo=PARIS)

    found = recurring_ical_events.of(calendar).between(date(2026, 10, 1), date(2027, 1, 1))
    starts = sorted(c.start for c in found)
    local = [
        (s.astimezone(PARIS).date().isoformat(), s.astimezone(PARIS).strftime("%H:%M"))
        for s in starts
    ]
    assert local == [
        ("2026-10-05", "09:00"),
        ("2026-10-19", "10:30"),
        ("2026-10-26", "09:00"),  # after the change: still 9:00 in Paris
        ("2026-11-02", "09:00"),
        ("2026-11-09", "09:00"),
        ("2026-11-16", "09:00"),
        ("2026-11-23", "09:00"),
        ("2026-11-30", "09:00"),
    ]
    assert starts[0].astimezone(UTC).hour == 7 and starts[2].astimezone(UTC).hour == 8


def test_all_day_events_are_dates(request_ctx):
    me = make_user(timezone="Europe/Paris")
    feed = calendar_feed.create_user_feed(me)
    make_event(
        organizer=me,
        start=paris(2026, 11, 12, 0),
        ends_at=paris(2026, 11, 14, 0),
        all_day=True,
        title="Trade fair",
    )
    db.session.commit()
    calendar, built = _build(feed)
    [event] = calendar.walk("VEVENT")
    assert (event.start, event.end) == (date(2026, 11, 12), date(2026, 11, 14))
    assert b"DTSTART;VALUE=DATE:20261112" in built.body


def test_feed_holds_the_owners_events_in_the_window_only(request_ctx):
    me = make_user(email="me@crm.example", name="Me")
    other = make_user()
    feed = calendar_feed.create_user_feed(me)
    customer = make_contact("Claire", "Fabre", email="claire@lumiere.example")
    make_event(organizer=me, start=paris(2026, 11, 4, 14), title="Mine")
    make_event(
        organizer=other, attendees=[me, customer], start=paris(2026, 11, 5, 9), title="Invited"
    )
    make_event(organizer=other, start=paris(2026, 11, 5, 11), title="Not mine")
    make_event(organizer=me, start=NOW - timedelta(days=120), title="Too old")
    make_event(organizer=me, start=NOW + timedelta(days=400), title="Too far")
    make_event(organizer=me, start=paris(2026, 11, 6, 9), title="Called off", status="cancelled")
    db.session.commit()
    calendar, _built = _build(feed)
    assert sorted(str(c["SUMMARY"]) for c in calendar.walk("VEVENT")) == ["Invited", "Mine"]

    [invited] = _by_summary(calendar, "Invited")
    attendees = {str(a): a.params["PARTSTAT"] for a in invited["ATTENDEE"]}
    assert attendees == {
        "mailto:me@crm.example": "NEEDS-ACTION",
        "mailto:claire@lumiere.example": "NEEDS-ACTION",
    }
    assert str(invited["ORGANIZER"]) == f"mailto:{other.email}"


def test_team_feed_shows_private_events_of_others_as_busy(request_ctx):
    team = make_team("Sales")
    manager = make_user(role="manager", team=team)
    rep = make_user(team=team)
    outsider = make_user()
    customer = make_contact(email="secret@customer.example")
    feed = calendar_feed.create_team_feed(team, manager)
    make_event(
        organizer=rep,
        attendees=[customer],
        start=paris(2026, 11, 4, 9),
        title="Doctor",
        location="Clinic",
        description="Personal",
        private=True,
    )
    make_event(organizer=rep, start=paris(2026, 11, 4, 14), title="Visit Atlas", location="Lyon")
    make_event(organizer=outsider, start=paris(2026, 11, 4, 16), title="Other team")
    db.session.commit()
    calendar, built = _build(feed)

    assert sorted(str(c["SUMMARY"]) for c in calendar.walk("VEVENT")) == ["Busy", "Visit Atlas"]
    [busy] = _by_summary(calendar, "Busy")
    assert str(busy["CLASS"]) == "PRIVATE"
    for name in ("LOCATION", "DESCRIPTION", "ATTENDEE", "ORGANIZER", "URL"):
        assert name not in busy
    assert b"Doctor" not in built.body and b"Clinic" not in built.body
    assert b"secret@customer.example" not in built.body
    [visit] = _by_summary(calendar, "Visit Atlas")
    assert str(visit["LOCATION"]) == "Lyon"


def test_private_event_keeps_its_details_in_the_owners_feed(request_ctx):
    me = make_user()
    feed = calendar_feed.create_user_feed(me)
    make_event(organizer=me, start=paris(2026, 11, 4, 9), title="Doctor", private=True)
    db.session.commit()
    calendar, _built = _build(feed)
    [event] = calendar.walk("VEVENT")
    assert (str(event["SUMMARY"]), str(event["CLASS"])) == ("Doctor", "PRIVATE")


def test_open_tasks_are_todos_with_their_due_time(request_ctx):
    me = make_user()
    feed = calendar_feed.create_user_feed(me)
    call = make_task(me, due=utc(2026, 11, 3, 15), title="Call back Atlas")
    make_task(me, due=utc(2026, 10, 30, 15), title="Overdue quote")
    make_task(
        me, due=utc(2026, 10, 30, 15), title="Sent", status="done", completed_at=utc(2026, 10, 30)
    )
    make_task(me, due=None, title="Someday")
    make_task(make_user(), due=utc(2026, 11, 3, 15), title="Not mine")
    db.session.commit()
    calendar, _built = _build(feed)
    todos = {str(t["SUMMARY"]): t for t in calendar.walk("VTODO")}
    assert set(todos) == {"Call back Atlas", "Overdue quote", "Sent"}
    assert todos["Call back Atlas"]["DUE"].dt == utc(2026, 11, 3, 15)
    assert str(todos["Call back Atlas"]["UID"]) == f"task-{call.id}@crm.example"
    assert str(todos["Call back Atlas"]["STATUS"]) == "NEEDS-ACTION"
    assert str(todos["Sent"]["STATUS"]) == "COMPLETED"


def test_the_file_is_the_same_until_the_agenda_changes(request_ctx):
    me = make_user()
    feed = calendar_feed.create_user_feed(me)
    event = make_event(organizer=me, start=paris(2026, 11, 4, 9), title="Review")
    db.session.commit()
    _cal, first = _build(feed)
    _cal, second = _build(feed, now=NOW + timedelta(hours=3))
    assert first.body == second.body and first.etag == second.etag
    event.title = "Review, moved"
    event.updated_at = utc(2026, 11, 1, 13)
    db.session.commit()
    _cal, third = _build(feed)
    assert third.etag != first.etag and third.last_modified == utc(2026, 11, 1, 13)


def test_tokens_revoke_and_regenerate(request_ctx):
    me = make_user()
    feed = calendar_feed.create_user_feed(me)
    assert calendar_feed.create_user_feed(me).id == feed.id  # one active feed per person
    fresh = calendar_feed.regenerate(feed, me)
    db.session.commit()
    assert fresh.token != feed.token and len(fresh.token) >= 40
    assert calendar_feed.find_by_token(feed.token) is None
    assert calendar_feed.find_by_token(fresh.token).id == fresh.id
    calendar_feed.revoke(fresh)
    db.session.commit()
    assert calendar_feed.find_by_token(fresh.token) is None
    assert calendar_feed.find_by_token("") is None


def test_fetches_are_recorded_at_most_once_a_minute(request_ctx):
    feed = calendar_feed.create_user_feed(make_user())
    assert calendar_feed.record_fetch(feed, now=NOW)
    assert not calendar_feed.record_fetch(feed, now=NOW + timedelta(seconds=30))
    assert calendar_feed.record_fetch(feed, now=NOW + timedelta(seconds=61))
    assert feed.last_fetched_at == NOW + timedelta(seconds=61)
