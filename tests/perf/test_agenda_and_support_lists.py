"""Guards for the agenda's team view, the task list, the incident queue, the dispatch board and
the hot leads list: the same number of SQL statements, at most 10, whether there are a few
items or hundreds, and pages and fragments that stay small because what they show is bounded
(chips a cell, tasks a group, rows a page, cards in the tray) and each item is lean."""

import re
from datetime import UTC, date, datetime, timedelta

from crm.extensions import db
from crm.models.types import utcnow
from crm.services import dispatch_board
from crm.services import tasks as task_service
from tests.conftest import htmx_headers
from tests.factories import (
    make_contact,
    make_event,
    make_incident,
    make_intervention,
    make_task,
    make_team,
    make_user,
)

LIMIT = 10
MONDAY = date(2030, 3, 4)


def _get(client, url: str, target: str | None = None):
    response = client.get(url, headers=htmx_headers(target) if target else None)
    assert response.status_code == 200, (url, response.status_code)
    return response


def _queries(response) -> int:
    return int(response.headers["X-SQL-Queries"])


def _nine(day: date, hour: int) -> datetime:
    # Paris is UTC+1 in March.
    return datetime(day.year, day.month, day.day, hour - 1, tzinfo=UTC)


# ---- agenda, team view ----------------------------------------------------------------------


def _fill_team_week(people, per_day: int) -> None:
    for person in people:
        for day in range(7):
            for n in range(per_day):
                make_event(
                    person,
                    _nine(MONDAY + timedelta(days=day), 8 + n),
                    attendees=[people[0]] if n % 3 == 0 else (),
                    rrule="FREQ=WEEKLY;COUNT=3" if n == 0 and day == 0 else None,
                    private=n % 4 == 1,
                    title=f"Visit {n}",
                )
                make_task(person, due=_nine(MONDAY + timedelta(days=day), 12), title="Call")
    db.session.commit()


def test_the_team_week_runs_the_same_queries_and_stays_small_however_busy(as_role):
    team = make_team()
    client, manager = as_role("manager", team=team)
    people = [manager] + [make_user(team=team) for _ in range(4)]
    url = f"/agenda?view=team&date={MONDAY}"
    _fill_team_week(people, 1)
    few = _get(client, url)
    _fill_team_week(people, 6)
    many = _get(client, url)
    assert _queries(many) == _queries(few) <= LIMIT
    # A cell shows four chips and "+n more": 5 people x 7 days of them, lean each.
    chips = re.findall(r'<a class="chip[^"]*".*?</a>', many.text, re.S)
    assert len(chips) == 5 * 7 * 3
    assert sum(map(len, chips)) / len(chips) < 260, chips[:3]
    assert "hx-get" not in "".join(chips)  # agenda.js opens an event from its href


# ---- task list ------------------------------------------------------------------------------


def _fill_tasks(user, count: int) -> None:
    now = utcnow()
    contact = make_contact("Anne", "Martin", owner=user)
    for n in range(count):
        make_task(user, now + timedelta(hours=n * 7 - count * 2), contact=contact)
        make_task(user, None if n % 5 else now + timedelta(days=n), title=f"Undated {n}")
    db.session.commit()


def test_the_task_list_runs_the_same_queries_and_shows_a_bounded_page(as_role):
    client, rep = as_role("sales")
    _fill_tasks(rep, 3)
    few = _get(client, "/tasks")
    _fill_tasks(rep, 150)
    many = _get(client, "/tasks")
    assert _queries(many) == _queries(few) <= LIMIT
    rows = re.findall(r'<li id="task-\d+".*?</li>', many.text, re.S)
    assert len(rows) <= 4 * task_service.GROUP_FIRST
    assert sum(map(len, rows)) / len(rows) < 600, rows[:2]
    assert len(many.data) < 60 * 1024

    more = re.search(r'<li id="more-upcoming"[^>]*><a href="([^"]+)"', many.text)
    page = _get(client, more.group(1).replace("&amp;", "&"), "li#more-upcoming")
    assert _queries(page) <= 4  # the session, the counts of the rest, the page, (zones)


def test_a_managers_team_tasks_run_the_same_queries(as_role):
    team = make_team()
    client, manager = as_role("manager", team=team)
    members = [make_user(team=team, timezone=zone) for zone in ("Asia/Tokyo", "America/Denver")]
    for member in members:
        _fill_tasks(member, 3)
    few = _queries(_get(client, "/tasks?assignee=team"))
    for member in members:
        _fill_tasks(member, 60)
    assert _queries(_get(client, "/tasks?assignee=team")) == few <= LIMIT


# ---- incident queue -------------------------------------------------------------------------


def _fill_queue(agent, count: int) -> None:
    for n in range(count):
        make_incident(
            make_contact(f"Ann{n}", "Durand"), assignee=agent, priority=("high", "low")[n % 2]
        )
    db.session.commit()


def test_a_page_of_the_queue_is_rows_only_and_lean(as_role, app):
    client, agent = as_role("support")
    _fill_queue(agent, 3)
    few = _get(client, "/incidents", "tbody#incident-rows")
    _fill_queue(agent, 60)
    many = _get(client, "/incidents", "tbody#incident-rows")
    # The session, the page of incidents, the support calendar and service levels: no form,
    # tab counts or teams for rows.
    assert _queries(many) == _queries(few) <= 5
    rows = re.findall(r"<tr class=\"priority-row.*?</tr>", many.text, re.S)
    assert len(rows) == app.config["PAGE_SIZE"]
    assert sum(map(len, rows)) / len(rows) < 650, rows[:2]
    assert _queries(_get(client, "/incidents?q=ann1", "tbody#incident-rows")) <= 5


# ---- dispatch board -------------------------------------------------------------------------


def _fill_board(technicians, incident, hours, waiting: int) -> None:
    for technician in technicians:
        for day in range(5):
            for n, hour in enumerate(hours):
                make_intervention(
                    incident,
                    technicians=[technician],
                    start=_nine(MONDAY + timedelta(days=day), hour),
                    skills=["gas"] if n % 2 else None,
                )
    for _ in range(waiting):
        make_intervention(incident, skills=["gas"])
    db.session.commit()


def test_the_dispatch_board_runs_the_same_queries_and_stays_small(as_role):
    client, _agent = as_role("support")
    technicians = [make_user(role="technician", skills=["gas"]) for _ in range(8)]
    incident = make_incident(make_contact("Marie", "Curie"))
    url = f"/interventions?date={MONDAY}"
    _fill_board(technicians, incident, [8], 2)
    few = _get(client, url)
    _fill_board(technicians, incident, [10, 12, 14], 120)
    many = _get(client, url)
    assert _queries(many) == _queries(few) <= LIMIT
    # Eight technicians, four visits a day each, a tray of 122: one menu, bare slots, a page
    # of the tray.
    assert many.text.count('class="iv-schedule"') == many.text.count('id="iv-menu"') == 1
    assert many.text.count('class="iv-card') == 8 * 5 * 4 + dispatch_board.TRAY_FIRST
    cards = re.findall(r"<article.*?</article>", many.text, re.S)
    assert sum(map(len, cards)) / len(cards) < 520, cards[:2]
    slots = re.findall(r"<td[^>]*>", many.text)
    assert len(slots) == 8 * 5 * 10 and sum(map(len, slots)) / len(slots) < 12

    more = re.search(r'<a id="tray-more"[^>]*href="([^"]+)"', many.text)
    cards = _get(client, more.group(1).replace("&amp;", "&"), "a#tray-more")
    assert _queries(cards) <= 4


# ---- hot leads ------------------------------------------------------------------------------


def test_the_hot_leads_run_the_same_queries(as_role):
    team = make_team()
    client, rep = as_role("sales", team=team)
    manager_client, _manager = as_role("manager", team=team)

    def leads(count: int) -> None:
        for n in range(count):
            make_contact(f"Lead{n}", "Hot", owner=rep, stage="lead", score=n)
        db.session.commit()

    urls = ["/leads", "/leads?scope=all", "/leads?min_score=3"]
    leads(3)
    few = [_queries(_get(client, url)) for url in urls]
    few.append(_queries(_get(manager_client, "/leads")))
    leads(80)
    many = [_queries(_get(client, url)) for url in urls]
    many.append(_queries(_get(manager_client, "/leads")))
    assert many == few and max(many) <= LIMIT
    fragment = _get(client, "/leads", "tbody#lead-rows")
    assert _queries(fragment) <= 3
