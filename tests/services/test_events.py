"""The event service: series occurrences detached or removed, conflicts, the report."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from crm.extensions import db
from crm.models import Activity, Event
from crm.services import events
from crm.services.recurrence import expand, iso_utc
from crm.services.timeline import contact_timeline
from tests.factories import make_company, make_contact, make_deal, make_event, make_user

PARIS = ZoneInfo("Europe/Paris")
MONDAY = date(2026, 12, 7)


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=PARIS).astimezone(UTC)


def fields(**changes) -> events.EventFields:
    values = {
        "title": "Demo",
        "kind": "meeting",
        "starts_at": at(MONDAY, 10),
        "ends_at": at(MONDAY, 11),
    }
    values.update(changes)
    return events.EventFields(**values)


def test_create_keeps_the_organizers_zone_and_the_series_end(ctx):
    me = make_user(timezone="America/New_York")
    event = events.create_event(me, fields(rrule="FREQ=DAILY;COUNT=3", user_ids=[me.id]))
    db.session.commit()
    assert event.timezone == "America/New_York" and event.sequence == 0
    assert event.rrule_until == at(MONDAY + timedelta(days=2), 11)
    assert event.attendees == []  # the organizer is not their own guest
    with pytest.raises(events.EventRefused):
        events.create_event(me, fields(ends_at=at(MONDAY, 9)))


def test_a_key_finds_its_occurrence_or_nothing(ctx):
    series = make_event(make_user(), at(MONDAY, 9), rrule="FREQ=DAILY;COUNT=3")
    db.session.commit()
    tuesday = at(MONDAY + timedelta(days=1), 9)
    found = events.find_occurrence(f"{series.id}@{iso_utc(tuesday)}")
    assert (found.start, found.recurrence_id) == (tuesday, tuesday)
    assert (
        events.find_occurrence(f"{series.id}@{iso_utc(at(MONDAY, 10))}") is None
    )  # not in the rule
    assert events.find_occurrence("nonsense") is None
    assert events.find_occurrence("999999") is None


def test_moving_one_occurrence_makes_an_override_and_the_series_skips_it(ctx):
    series = make_event(make_user(), at(MONDAY, 9), rrule="FREQ=DAILY;COUNT=3")
    db.session.commit()
    tuesday = at(MONDAY + timedelta(days=1), 9)
    occurrence = events.find_occurrence(f"{series.id}@{iso_utc(tuesday)}")
    override = events.move_occurrence(
        occurrence, at(MONDAY + timedelta(days=1), 15), at(MONDAY + timedelta(days=1), 16)
    )
    db.session.commit()
    assert override.parent_id == series.id and override.recurrence_id == tuesday
    starts = [o.start for o in expand(series, at(MONDAY, 0), at(MONDAY + timedelta(days=7), 0))]
    assert tuesday not in starts and len(starts) == 2
    # Moving it again moves the same override, never a second one.
    again = events.move_occurrence(
        events.find_occurrence(str(override.id)),
        at(MONDAY + timedelta(days=1), 17),
        at(MONDAY + timedelta(days=1), 18),
    )
    db.session.commit()
    assert again.id == override.id
    assert db.session.scalar(db.select(db.func.count()).select_from(Event)) == 2


def test_deleting_a_moved_occurrence_removes_it_and_skips_it(ctx):
    series = make_event(make_user(), at(MONDAY, 9), rrule="FREQ=DAILY;COUNT=3")
    db.session.commit()
    tuesday = at(MONDAY + timedelta(days=1), 9)
    override = events.move_occurrence(
        events.find_occurrence(f"{series.id}@{iso_utc(tuesday)}"),
        at(MONDAY + timedelta(days=1), 15),
        at(MONDAY + timedelta(days=1), 16),
    )
    db.session.commit()
    events.delete_occurrence(events.find_occurrence(str(override.id)), "this")
    db.session.commit()
    db.session.expire_all()
    root = db.session.get(Event, series.id)
    assert root.exdates == [iso_utc(tuesday)] and root.overrides == []
    assert len(expand(root, at(MONDAY, 0), at(MONDAY + timedelta(days=7), 0))) == 2


def test_conflicts_count_series_occurrences_and_ignore_declines_and_all_day(ctx):
    me, busy, free = make_user(name="Me"), make_user(name="Busy"), make_user(name="Free")
    make_event(busy, at(MONDAY - timedelta(days=7), 10, 30), rrule="FREQ=WEEKLY")
    declined = make_event(make_user(), at(MONDAY, 10), attendees=[free])
    declined.attendees[0].response = "declined"
    make_event(free, at(MONDAY, 0), all_day=True, ends_at=at(MONDAY + timedelta(days=1), 0))
    db.session.commit()
    found = events.find_conflicts([(at(MONDAY, 10), at(MONDAY, 11))], [me.id, busy.id, free.id])
    assert [(c.user.name, c.occurrence.start) for c in found] == [("Busy", at(MONDAY, 10, 30))]
    # An event does not conflict with itself (or its own series).
    mine = make_event(me, at(MONDAY, 10))
    db.session.commit()
    assert (
        events.find_conflicts([(at(MONDAY, 10), at(MONDAY, 11))], [me.id], exclude_event_id=mine.id)
        == []
    )


def test_a_new_series_is_checked_on_its_first_occurrences(ctx):
    me, busy = make_user(), make_user(name="Busy")
    make_event(busy, at(MONDAY + timedelta(days=14), 10))  # the third Monday
    db.session.commit()
    series = fields(rrule="FREQ=WEEKLY;COUNT=4", user_ids=[busy.id], organizer=me)
    windows = events.windows_of(series, "Europe/Paris")
    assert len(windows) == 4
    (conflict,) = events.find_conflicts(windows, [me.id, busy.id])
    assert conflict.occurrence.start == at(MONDAY + timedelta(days=14), 10)


def test_editing_the_whole_series_from_an_occurrence_shifts_it_by_as_much(ctx):
    me = make_user()
    series = make_event(me, at(MONDAY, 9), rrule="FREQ=DAILY;COUNT=5", title="Standup")
    db.session.commit()
    wednesday = MONDAY + timedelta(days=2)
    occurrence = events.find_occurrence(f"{series.id}@{iso_utc(at(wednesday, 9))}")
    events.update_occurrence(
        me,
        occurrence,
        fields(
            title="Daily",
            starts_at=at(wednesday, 9, 30),
            ends_at=at(wednesday, 9, 45),
            rrule="FREQ=DAILY;COUNT=5",
        ),
        "series",
    )
    db.session.commit()
    assert (series.title, series.starts_at, series.ends_at) == (
        "Daily",
        at(MONDAY, 9, 30),
        at(MONDAY, 9, 45),
    )
    assert series.sequence == 1 and series.rrule_until == at(MONDAY + timedelta(days=4), 9, 45)


def test_the_report_writes_one_timeline_entry_on_every_linked_record(ctx):
    me = make_user()
    company = make_company("Acme")
    contact = make_contact("Ada", "Lovelace", company=company)
    deal = make_deal(owner=me, contact=contact, company=company)
    event = make_event(me, at(MONDAY, 9), contact=contact, deal=deal, kind="visit")
    db.session.commit()
    with pytest.raises(events.EventRefused):
        events.save_report(me, event, "Too early", now=at(MONDAY, 8))
    events.save_report(me, event, "Showed the demo.", now=at(MONDAY, 10))
    events.save_report(me, event, "Showed the demo; quote next.", now=at(MONDAY, 11))
    db.session.commit()
    (activity,) = db.session.scalars(db.select(Activity).where(Activity.event_id == event.id)).all()
    assert (activity.kind, activity.body) == ("visit", "Showed the demo; quote next.")
    assert (activity.contact_id, activity.company_id, activity.deal_id) == (
        contact.id,
        company.id,
        deal.id,
    )
    assert event.report_at == at(MONDAY, 11)
    assert [a.id for a in contact_timeline(contact, me)] == [activity.id]


def test_an_answer_reaches_the_series_and_its_moved_occurrences(ctx):
    owner, guest = make_user(), make_user()
    series = make_event(owner, at(MONDAY, 9), rrule="FREQ=DAILY;COUNT=3", attendees=[guest])
    db.session.commit()
    tuesday = at(MONDAY + timedelta(days=1), 9)
    override = events.move_occurrence(
        events.find_occurrence(f"{series.id}@{iso_utc(tuesday)}"),
        tuesday + timedelta(hours=2),
        tuesday + timedelta(hours=3),
    )
    db.session.commit()
    assert events.respond(guest, override, "declined") is not None
    db.session.commit()
    assert [a.response for a in series.attendees] == ["declined"]
    assert [a.response for a in override.attendees] == ["declined"]
    assert events.respond(make_user(), series, "accepted") is None
