"""The agenda pages: each view renders, the URL holds the state, private events stay private,
and the number of queries does not grow with the data."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from crm.extensions import db
from crm.services.recurrence import local_midnight
from tests.conftest import htmx_headers
from tests.factories import make_event, make_task, make_team, make_user

PARIS = ZoneInfo("Europe/Paris")


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=PARIS).astimezone(UTC)


MONDAY = date(2026, 12, 7)


@pytest.mark.parametrize("view", ["week", "day", "month", "team"])
def test_each_view_renders_with_its_events(as_role, view):
    client, me = as_role("sales", timezone="Europe/Paris")
    make_event(me, at(MONDAY, 9), title="Kick-off with Acme")
    db.session.commit()
    response = client.get(f"/agenda?view={view}&date={MONDAY.isoformat()}")
    assert response.status_code == 200
    assert "Kick-off with Acme" in response.text
    assert 'id="agenda-grid"' in response.text


def test_week_places_an_event_on_its_rows_in_the_viewers_time_zone(as_role):
    client, me = as_role("sales", timezone="Europe/Paris")
    make_event(me, at(MONDAY, 9, 30), minutes=90, title="Review")
    db.session.commit()
    text = client.get(f"/agenda?date={MONDAY.isoformat()}").text
    # 9:30 is the 39th quarter of an hour of the day (row 39), 90 minutes are 6 rows.
    assert "ev at-39 len-6 lane-1-of-1" in text
    assert 'style="' not in text.split('id="agenda"')[1]


def test_the_url_holds_the_view_the_date_the_person_and_the_kinds(as_role):
    client, me = as_role("sales", timezone="Europe/Paris")
    other = make_user(name="Olivia Other")
    make_event(other, at(MONDAY, 9), title="Olivia call", kind="call")
    make_event(other, at(MONDAY, 11), title="Olivia visit", kind="visit")
    make_event(me, at(MONDAY, 9), title="My meeting")
    db.session.commit()
    text = client.get(f"/agenda?view=week&date=2026-12-09&user={other.id}&kind=call,task").text
    assert "Olivia call" in text
    assert "Olivia visit" not in text and "My meeting" not in text
    # Arrows and today keep the state; the kind chips toggle one kind each.
    assert f"/agenda?view=week&amp;date=2026-12-02&amp;user={other.id}&amp;kind=call,task" in text
    assert f"/agenda?view=week&amp;date=2026-12-16&amp;user={other.id}&amp;kind=call,task" in text
    assert (
        f"/agenda?view=week&amp;date=2026-12-09&amp;user={other.id}&amp;kind=meeting,call,task"
        in text
    )
    assert f"/agenda?view=day&amp;date=2026-12-09&amp;user={other.id}&amp;kind=call,task" in text
    month = client.get("/agenda?view=month&date=2026-12-09").text
    assert "/agenda?view=month&amp;date=2027-01-01" in month  # next month
    assert "/agenda?view=month&amp;date=2026-11-01" in month


def test_a_fragment_for_htmx_and_the_whole_page_otherwise(as_role):
    client, me = as_role("sales")
    fragment = client.get(f"/agenda?date={MONDAY}", headers=htmx_headers("div#agenda"))
    assert "<html" not in fragment.text and 'id="agenda-grid"' in fragment.text
    assert "<html" in client.get(f"/agenda?date={MONDAY}").text
    assert client.get("/agenda?view=nonsense&date=not-a-date").status_code == 200


def test_overlapping_events_sit_side_by_side_and_all_day_on_top(as_role):
    client, me = as_role("sales", timezone="Europe/Paris")
    make_event(me, at(MONDAY, 9), minutes=120, title="Long")
    make_event(me, at(MONDAY, 10), minutes=60, title="Overlap")
    make_event(me, at(MONDAY, 12), minutes=30, title="After")
    make_event(
        me,
        local_midnight(MONDAY, PARIS),
        title="Trade fair",
        all_day=True,
        ends_at=local_midnight(MONDAY + timedelta(days=2), PARIS),
    )
    db.session.commit()
    text = client.get(f"/agenda?date={MONDAY}").text
    assert "ev at-37 len-8 lane-1-of-2" in text  # 9:00, two hours, left half
    assert "ev at-41 len-4 lane-2-of-2" in text  # 10:00, right half
    assert "ev at-49 len-2 lane-1-of-1" in text  # 12:00, alone again
    allday = text.split('class="tg-allday"')[1].split('class="tg-scroll"')[0]
    assert allday.count('chip-title">Trade fair') == 2  # Monday and Tuesday


def test_tasks_show_at_their_due_time_when_asked_for(as_role):
    client, me = as_role("sales", timezone="Europe/Paris")
    task = make_task(me, due=at(MONDAY, 16), title="Send the quote")
    make_task(make_user(), due=at(MONDAY, 16), title="Someone else task")
    db.session.commit()
    text = client.get(f"/agenda?date={MONDAY}").text
    assert "Send the quote" in text and f"/tasks?focus={task.id}" in text
    assert "ev at-65 len-2" in text
    assert "Send the quote" not in client.get(f"/agenda?date={MONDAY}&kind=meeting").text


def test_team_view_shows_my_team_by_default_and_any_chosen_people(as_role):
    team = make_team("North")
    client, manager = as_role("manager", team=team)
    rep = make_user(name="Rita Rep", team=team)
    outsider = make_user(name="Oscar Outsider")
    make_event(rep, at(MONDAY, 9), title="Rita visit", kind="visit")
    make_event(outsider, at(MONDAY, 9), title="Oscar call", kind="call")
    db.session.commit()
    text = client.get(f"/agenda?view=team&date={MONDAY}").text
    assert "Rita Rep" in text and "Rita visit" in text
    assert "Oscar call" not in text
    # The manager may plan in their team's rows; in another person's row only look.
    assert f'data-person="{rep.id}" data-create="1"' in text
    text = client.get(f"/agenda?view=team&date={MONDAY}&user={outsider.id},{rep.id}").text
    assert "Oscar call" in text and "Rita visit" in text
    assert f'data-person="{outsider.id}" data-create=""' in text


def test_a_timed_event_of_more_than_a_day_sits_in_the_all_day_rows(as_role):
    """A conference from Monday 09:00 to Tuesday 17:00 is not an all-day event, but its
    length puts it with them: on both days, in every view (it made the agenda fail)."""
    team = make_team()
    client, manager = as_role("manager", team=team)
    make_event(manager, at(MONDAY, 9), minutes=32 * 60, title="Trade show")
    db.session.commit()
    for view in ("week", "team", "month", "day"):
        text = client.get(f"/agenda?view={view}&date={MONDAY}").text
        assert text.count('chip-title">Trade show') == (1 if view == "day" else 2), view


def _queries(client, url: str) -> int:
    response = client.get(url)
    assert response.status_code == 200, url
    return int(response.headers["X-SQL-Queries"])


def _add_week_of_events(people, count: int) -> None:
    for i in range(count):
        organizer = people[i % len(people)]
        guests = [people[(i + 1) % len(people)]]
        rule = "FREQ=DAILY;COUNT=30" if i % 5 == 0 else None
        make_event(
            organizer,
            at(MONDAY + timedelta(days=i % 7), 8 + i % 10),
            attendees=guests,
            rrule=rule,
            private=i % 3 == 0,
        )
        make_task(organizer, due=at(MONDAY + timedelta(days=i % 7), 12))
    db.session.commit()


def test_week_and_team_views_run_a_bounded_number_of_queries(as_role):
    team = make_team()
    client, manager = as_role("manager", team=team)
    people = [manager] + [make_user(team=team) for _ in range(3)]
    urls = [
        f"/agenda?date={MONDAY}",
        f"/agenda?view=team&date={MONDAY}",
        f"/agenda?view=month&date={MONDAY}",
    ]
    _add_week_of_events(people, 4)
    small = {url: _queries(client, url) for url in urls}
    _add_week_of_events(people, 120)
    large = {url: _queries(client, url) for url in urls}
    assert large == small
    assert max(large.values()) <= 14, large


def test_the_arrows_step_a_week_on_the_agenda_and_the_dispatch_board(as_role):
    import re

    client, _ = as_role("support")
    for path, previous, following in (
        ("/agenda?date=2026-12-02", "2026-11-25", "2026-12-09"),
        ("/interventions?date=2030-03-04", "2030-02-25", "2030-03-11"),
    ):
        page = client.get(path).text
        arrows = dict(
            re.findall(r'href="[^"]*date=([\d-]+)[^"]*"[^>]*rel="(prev|next)"', page, re.S)
        )
        assert arrows == {previous: "prev", following: "next"}, (path, arrows)
