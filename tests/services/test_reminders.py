"""Planning reminders: who gets one, when, on which channel; changes cancel; planning twice is harmless.

Times are fixed (`at=`) so that nothing depends on when the suite runs.
"""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from crm.extensions import db
from crm.models.agenda import NO_REMINDER, Reminder
from crm.services import notifications, reminders
from crm.services.recurrence import build_rule, series_end
from tests.factories import make_contact, make_event, make_task, make_user


def utc(*args):
    return datetime(*args, tzinfo=UTC)


AT = utc(2026, 12, 1, 8)  # "now" of these tests: 1 December 2026, 09:00 in Paris


def rows(**filters):
    query = select(Reminder).order_by(Reminder.user_id, Reminder.occurrence_start, Reminder.channel)
    for name, value in filters.items():
        query = query.where(getattr(Reminder, name) == value)
    return list(db.session.scalars(query))


def keys(found):
    return {(r.user_id, r.occurrence_start, r.channel, r.status) for r in found}


def test_event_reminds_organizer_and_user_attendees_on_their_channels(ctx):
    organizer = make_user()
    colleague = make_user()
    quiet = make_user(email_reminders=False)
    start = utc(2026, 12, 1, 13)
    event = make_event(organizer, start, attendees=[colleague, quiet, make_contact()])

    reminders.schedule_event(event, AT)

    assert keys(rows()) == {
        (organizer.id, start, "in_app", "pending"),
        (organizer.id, start, "email", "pending"),
        (colleague.id, start, "in_app", "pending"),
        (colleague.id, start, "email", "pending"),
        (quiet.id, start, "in_app", "pending"),
    }
    assert {r.remind_at for r in rows()} == {start - timedelta(minutes=15)}


def test_reminder_minutes_of_the_event_and_a_declined_attendee(ctx):
    organizer = make_user(email_reminders=False)
    declined = make_user()
    event = make_event(organizer, utc(2026, 12, 2, 9), attendees=[declined], reminder_minutes=60)
    event.attendees[0].response = "declined"

    reminders.schedule_event(event, AT)

    assert [(r.user_id, r.remind_at) for r in rows()] == [(organizer.id, utc(2026, 12, 2, 8))]


def test_planning_twice_changes_nothing_and_the_database_refuses_a_duplicate(ctx):
    organizer = make_user()
    event = make_event(organizer, utc(2026, 12, 1, 13))
    reminders.schedule_event(event, AT)
    reminders.schedule_event(event, AT)
    db.session.commit()
    assert db.session.scalar(select(func.count()).select_from(Reminder)) == 2

    first = rows()[0]
    db.session.add(
        Reminder(
            user_id=first.user_id,
            event_id=first.event_id,
            occurrence_start=first.occurrence_start,
            remind_at=first.remind_at,
            channel=first.channel,
        )
    )
    with pytest.raises(IntegrityError):
        db.session.flush()
    db.session.rollback()


def test_moving_an_event_cancels_the_old_reminders_and_plans_new_ones(ctx):
    organizer = make_user(email_reminders=False)
    old_start, new_start = utc(2026, 12, 1, 13), utc(2026, 12, 3, 10)
    event = make_event(organizer, old_start)
    reminders.schedule_event(event, AT)

    event.starts_at, event.ends_at = new_start, new_start + timedelta(hours=1)
    reminders.schedule_event(event, AT)

    assert keys(rows()) == {
        (organizer.id, old_start, "in_app", "cancelled"),
        (organizer.id, new_start, "in_app", "pending"),
    }


def test_changing_the_reminder_time_moves_the_pending_row(ctx):
    organizer = make_user(email_reminders=False)
    event = make_event(organizer, utc(2026, 12, 1, 13))
    reminders.schedule_event(event, AT)
    event.reminder_minutes = 120
    reminders.schedule_event(event, AT)
    assert [(r.remind_at, r.status) for r in rows()] == [(utc(2026, 12, 1, 11), "pending")]


def test_no_reminder_chosen_plans_none_and_cancels_the_pending_ones(ctx):
    organizer = make_user()
    event = make_event(organizer, utc(2026, 12, 1, 13))
    reminders.schedule_event(event, AT)
    assert {r.status for r in rows()} == {"pending"}  # in-app and email

    event.reminder_minutes = NO_REMINDER
    reminders.schedule_event(event, AT)
    assert {r.status for r in rows()} == {"cancelled"}

    task = make_task(organizer, utc(2026, 12, 1, 15), reminder_minutes=NO_REMINDER)
    reminders.schedule_task(task, AT)
    assert rows(task_id=task.id) == []


def test_removed_attendee_cancelled_event_and_reinvitation(ctx):
    organizer = make_user(email_reminders=False)
    guest = make_user(email_reminders=False)
    event = make_event(organizer, utc(2026, 12, 1, 13), attendees=[guest])
    reminders.schedule_event(event, AT)

    event.attendees.clear()
    reminders.schedule_event(event, AT)
    assert {(r.user_id, r.status) for r in rows()} == {
        (organizer.id, "pending"),
        (guest.id, "cancelled"),
    }

    event.status = "cancelled"
    reminders.schedule_event(event, AT)
    assert {r.status for r in rows()} == {"cancelled"}

    event.status = "confirmed"
    reminders.schedule_event(event, AT)
    assert {(r.user_id, r.status) for r in rows()} == {
        (organizer.id, "pending"),
        (guest.id, "cancelled"),
    }


def test_sent_reminders_stay_sent_and_past_events_get_none(ctx):
    organizer = make_user(email_reminders=False)
    event = make_event(organizer, utc(2026, 12, 1, 13))
    reminders.schedule_event(event, AT)
    rows()[0].status = "sent"
    event.title = "Renamed"
    reminders.schedule_event(event, AT)
    assert [r.status for r in rows()] == ["sent"]

    past = make_event(organizer, utc(2026, 11, 30, 13))
    reminders.schedule_event(past, AT)
    assert rows(event_id=past.id) == []


def test_event_created_late_still_reminds_before_it_starts(ctx):
    organizer = make_user(email_reminders=False)
    event = make_event(organizer, AT + timedelta(minutes=5))
    reminders.schedule_event(event, AT)
    (row,) = rows()
    assert row.remind_at == AT - timedelta(minutes=10)
    assert reminders.due_reminders(AT) == [(row.id, "in_app", "pending")]


def test_series_is_planned_over_the_horizon_and_the_sweeper_moves_it(ctx):
    organizer = make_user(email_reminders=False)
    # Daily at 14:00 Paris (13:00 UTC in winter), from 1 December.
    event = make_event(organizer, utc(2026, 12, 1, 13), rrule=build_rule("DAILY"))
    reminders.schedule_event(event, AT)
    assert [r.occurrence_start for r in rows()] == [utc(2026, 12, 1, 13), utc(2026, 12, 2, 13)]

    later = AT + timedelta(days=1)
    assert [e.id for e in reminders.series_to_plan(later)] == [event.id]
    reminders.schedule_event(event, later)
    assert [r.occurrence_start for r in rows()] == [
        utc(2026, 12, 1, 13),
        utc(2026, 12, 2, 13),
        utc(2026, 12, 3, 13),
    ]


def test_exception_of_a_series_cancels_its_reminder(ctx):
    organizer = make_user(email_reminders=False)
    event = make_event(organizer, utc(2026, 12, 1, 13), rrule=build_rule("DAILY", count=3))
    reminders.schedule_event(event, AT)
    event.exdates = ["2026-12-02T13:00:00Z"]
    reminders.schedule_event(event, AT)
    assert [(r.occurrence_start, r.status) for r in rows()] == [
        (utc(2026, 12, 1, 13), "pending"),
        (utc(2026, 12, 2, 13), "cancelled"),
    ]


def test_finished_series_is_not_swept(ctx):
    organizer = make_user()
    event = make_event(organizer, utc(2026, 11, 1, 13), rrule=build_rule("DAILY", count=3))
    event.rrule_until = series_end(event)
    assert reminders.series_to_plan(AT) == []


def test_all_day_event_reminds_at_nine_in_each_attendees_zone(ctx):
    paris = make_user(timezone="Europe/Paris", email_reminders=False)
    montreal = make_user(timezone="America/Montreal", email_reminders=False)
    # 3 December in Paris: local midnight is 23:00 UTC the day before.
    event = make_event(
        paris, utc(2026, 12, 2, 23), minutes=24 * 60, all_day=True, attendees=[montreal]
    )
    reminders.schedule_event(event, AT)
    assert {(r.user_id, r.remind_at) for r in rows()} == {
        (paris.id, utc(2026, 12, 3, 8)),  # 09:00 in Paris
        (montreal.id, utc(2026, 12, 3, 14)),  # 09:00 in Montreal
    }


def test_task_reminder_follows_the_task(ctx):
    owner = make_user(email_reminders=False)
    other = make_user(email_reminders=False)
    task = make_task(owner, utc(2026, 12, 1, 15))
    reminders.schedule_task(task, AT)
    assert keys(rows()) == {(owner.id, utc(2026, 12, 1, 15), "in_app", "pending")}
    assert rows()[0].remind_at == utc(2026, 12, 1, 14, 45)

    task.assignee = other
    reminders.schedule_task(task, AT)
    assert {(r.user_id, r.status) for r in rows()} == {
        (owner.id, "cancelled"),
        (other.id, "pending"),
    }

    task.status = "done"
    reminders.schedule_task(task, AT)
    assert {r.status for r in rows()} == {"cancelled"}

    task.status = "open"
    reminders.schedule_task(task, AT)
    assert {(r.user_id, r.status) for r in rows()} == {
        (owner.id, "cancelled"),
        (other.id, "pending"),
    }

    task.due_at = None
    reminders.schedule_task(task, AT)
    assert {r.status for r in rows()} == {"cancelled"}


def test_all_day_task_reminds_at_nine_local_on_its_day(ctx):
    owner = make_user(timezone="Asia/Tokyo", email_reminders=False)
    # Due on 2 December in Tokyo: stored at local midnight, 15:00 UTC the day before.
    task = make_task(owner, utc(2026, 12, 1, 15), all_day=True)
    reminders.schedule_task(task, AT)
    assert [r.remind_at for r in rows()] == [utc(2026, 12, 2, 0)]  # 09:00 in Tokyo


def test_reminder_text_in_the_recipients_language_and_zone_across_the_october_change(ctx, data_app):
    # Weekly on Saturdays at 14:30 in Paris; clocks go back on Sunday 25 October 2026.
    paris = make_user(timezone="Europe/Paris", locale="fr", email_reminders=False)
    london = make_user(timezone="Europe/London", locale="en", email_reminders=False)
    event = make_event(
        paris,
        utc(2026, 10, 24, 12, 30),  # 14:30 CEST
        title="Revue hebdo",
        attendees=[london],
        rrule=build_rule("WEEKLY", weekdays=["SA", "MO"]),
    )
    reminders.schedule_event(event, utc(2026, 10, 24, 6))
    reminders.schedule_event(event, utc(2026, 10, 25, 9))
    found = rows(user_id=paris.id)
    # Saturday 24 at 12:30 UTC, Monday 26 (the day after the change) at 13:30 UTC.
    assert [r.occurrence_start for r in found] == [
        utc(2026, 10, 24, 12, 30),
        utc(2026, 10, 26, 13, 30),
    ]
    assert [r.remind_at for r in found] == [utc(2026, 10, 24, 12, 15), utc(2026, 10, 26, 13, 15)]

    with data_app.test_request_context("/"):
        paris_texts = [notifications.reminder_text(r).title for r in found]
        london_texts = [notifications.reminder_text(r).title for r in rows(user_id=london.id)]
    # The sentence is translated with the catalog; the day and the clock are babel's French.
    assert all(text.startswith("Revue hebdo") and "14:30" in text for text in paris_texts)
    assert "lundi 26 octobre 2026" in paris_texts[1]
    # London is an hour behind Paris on both sides of the change: 1:30 PM.
    assert all("1:30" in text and "PM" in text for text in london_texts)
    assert "Monday, October 26, 2026" in london_texts[1]


def test_a_reminder_links_to_the_occurrence_or_the_task_it_is_about(ctx, data_app):
    person = make_user(email_reminders=False)
    series = make_event(person, utc(2030, 1, 7, 9), rrule=build_rule("WEEKLY"))
    single = make_event(person, utc(2030, 1, 8, 9))
    task = make_task(person, utc(2030, 1, 9, 9))
    for event in (series, single):
        reminders.schedule_event(event, utc(2030, 1, 7, 6))
    reminders.schedule_task(task, utc(2030, 1, 7, 6))
    with data_app.test_request_context("/"):
        urls = {notifications.reminder_text(r).url for r in rows(user_id=person.id)}
    assert urls == {
        f"/agenda/events/{series.id}@2030-01-07T09:00:00Z",
        f"/agenda/events/{single.id}",
        f"/tasks/{task.id}",
    }
