"""The agenda pages: each view renders, the URL holds the state, private events stay private,
and the number of queries does not grow with the data."""

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from crm.extensions import db
from tests.factories import make_event

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
