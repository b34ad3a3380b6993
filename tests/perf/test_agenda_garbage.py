"""The team week's items are freed when its page is written, not by the garbage collector.

A template's context is a reference cycle: whatever it was given only goes with a garbage
collection, and for a team's week (hundreds of items, cells and event rows) a full collection
every few requests was the slow tail of the page. The view lets go of its grids once written.
"""

import gc
from datetime import UTC, date, datetime, timedelta

from crm.extensions import db
from crm.services.agenda_views import AgendaItem, DayCell, TeamRow
from crm.services.recurrence import Occurrence
from tests.factories import make_event, make_task, make_team, make_user

MONDAY = date(2030, 3, 4)
BUILT_PER_REQUEST = (AgendaItem, DayCell, TeamRow, Occurrence)


def _fill_team_week(people) -> None:
    for person in people:
        for day in range(7):
            start = datetime(2030, 3, 4 + day, 8, tzinfo=UTC)
            make_event(person, start, attendees=[people[0]], title="Visit")
            make_event(person, start + timedelta(hours=2), rrule="FREQ=DAILY;COUNT=2")
            make_task(person, due=start + timedelta(hours=4), title="Call")
    db.session.commit()


def _cyclic_garbage_of(request) -> list:
    """What the garbage collector alone would free after `request`."""
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        request()
        gc.collect()
        return list(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


def test_the_team_week_leaves_no_items_to_the_garbage_collector(as_role):
    team = make_team()
    client, manager = as_role("manager", team=team)
    people = [manager] + [make_user(team=team) for _ in range(3)]
    _fill_team_week(people)
    url = f"/agenda?view=team&date={MONDAY}"

    def team_week():
        response = client.get(url)
        assert response.status_code == 200
        assert response.text.count('class="chip') >= 4 * 7 * 3

    team_week()  # templates compiled, caches warm
    garbage = _cyclic_garbage_of(team_week)
    left = [type(o).__name__ for o in garbage if isinstance(o, BUILT_PER_REQUEST)]
    assert left == []
