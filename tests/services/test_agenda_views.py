"""Building the grids: rows and lanes of the time grid, days of items, month and team cells."""

from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from werkzeug.datastructures import MultiDict

from crm.models.agenda import AGENDA_KINDS
from crm.services.agenda_views import (
    AgendaItem,
    AgendaQuery,
    Placed,
    assign_lanes,
    month_grid,
    time_grid,
    view_days,
)

PARIS = ZoneInfo("Europe/Paris")


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=PARIS).astimezone(UTC)


def item(start, end, all_day=False, key="1"):
    occurrence = SimpleNamespace(key=key, event=SimpleNamespace(parent_id=None), recurrence_id=None)
    return AgendaItem("meeting", start, end, all_day, frozenset({1}), occurrence=occurrence)


def test_query_reads_and_writes_the_url():
    today = date(2026, 12, 9)
    query = AgendaQuery.from_args(
        MultiDict({"view": "month", "date": "2026-12-20", "user": "3,4", "kind": "call,task"}),
        today,
    )
    assert (query.view, query.day, query.user_ids, query.kinds) == (
        "month",
        date(2026, 12, 20),
        (3, 4),
        ("call", "task"),
    )
    assert query.args() == {
        "view": "month",
        "date": "2026-12-20",
        "user": "3,4",
        "kind": "call,task",
    }
    assert query.step(1) == date(2027, 1, 1) and query.step(-1) == date(2026, 11, 1)
    assert query.toggled_kind("meeting") == ("meeting", "call", "task")
    fallback = AgendaQuery.from_args(
        MultiDict({"view": "year", "date": "nope", "kind": "nothing"}), today
    )
    assert (fallback.view, fallback.day) == ("week", today)
    assert fallback.kinds == ()  # asked for no known kind: nothing, as the URL says
    assert AgendaQuery.from_args(MultiDict(), today).kinds == AGENDA_KINDS


def test_view_days():
    assert view_days("week", date(2026, 12, 10))[0] == date(2026, 12, 7)  # Monday
    assert len(view_days("week", date(2026, 12, 10))) == 7
    month = view_days("month", date(2026, 2, 15))
    assert (month[0], len(month)) == (date(2026, 1, 26), 42)


def test_lanes_share_a_cluster_and_free_up_after_it():
    placed = [
        Placed(item(None, None, key=str(i)), row, span)
        for i, (row, span) in enumerate([(1, 8), (3, 2), (5, 4), (20, 2)])
    ]
    assign_lanes(placed)
    lanes = [(p.row, p.lane, p.lanes) for p in placed]
    # 1-9 and 3-5 overlap; 5-9 takes the lane 3-5 left; 20 is alone.
    assert lanes == [(1, 0, 2), (3, 1, 2), (5, 1, 2), (20, 0, 1)]


def test_time_grid_clips_an_event_across_midnight_and_rounds_to_quarters():
    monday = date(2026, 12, 7)
    days = [monday, monday + timedelta(days=1)]
    night = item(at(monday, 23), at(monday + timedelta(days=1), 1, 10))
    columns = time_grid([night], days, PARIS, today=monday)
    first, second = columns[0].timed[0], columns[1].timed[0]
    assert (first.row, first.span, first.ends_after) == (93, 4, True)
    assert (second.row, second.span, second.starts_before) == (1, 5, True)  # 00:00-01:15
    assert columns[0].is_today and not columns[1].is_today


def test_time_grid_in_the_viewers_zone_across_the_dst_change():
    # 25 October 2026: clocks go back in Paris. 10:00 local is 09:00 UTC that day.
    sunday = date(2026, 10, 25)
    event = item(at(sunday, 10), at(sunday, 11))
    (column,) = time_grid([event], [sunday], PARIS, today=sunday)
    assert column.timed[0].row == 41
    new_york = ZoneInfo("America/New_York")
    (column,) = time_grid([event], [sunday], new_york, today=sunday)
    assert column.timed[0].row == 5 * 4 + 1  # 05:00 in New York


def test_month_cells_keep_three_chips_then_say_how_many_more():
    first = date(2026, 12, 1)
    busy = [item(at(first, 8 + i), at(first, 9 + i), key=str(i)) for i in range(5)]
    fair = item(at(first, 0), at(first + timedelta(days=2), 0), all_day=True, key="fair")
    fair.first_day, fair.last_day = first, first + timedelta(days=1)
    weeks = month_grid([fair, *busy], view_days("month", first), PARIS, first, 12)
    cell = next(c for week in weeks for c in week if c.day == first)
    assert len(cell.items) == 6 and len(cell.shown) == 2 and cell.more == 4
    second = next(c for week in weeks for c in week if c.day == first + timedelta(days=1))
    assert [i.key for i in second.items] == ["fair"]
    assert not weeks[0][0].in_month  # 30 November
