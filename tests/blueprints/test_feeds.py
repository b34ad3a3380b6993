"""Calendar feed addresses over HTTP, their management, and the invitation import pages."""

import base64
import io
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from icalendar import Calendar
from sqlalchemy import func, select

from crm.extensions import db
from crm.models import CalendarFeed, Event
from crm.services import calendar_feed
from tests.conftest import htmx_headers
from tests.factories import make_contact, make_event, make_task, make_team, make_user

FIXTURES = Path(__file__).parent.parent / "fixtures" / "ics"


def _soon(hours: int = 24) -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=hours)


def _feed_of(user) -> CalendarFeed:
    feed = calendar_feed.create_user_feed(user)
    db.session.commit()
    return feed


# ---- the .ics address ---------------------------------------------------------------


def test_feed_is_an_icalendar_file_with_cache_headers(client, ctx):
    me = make_user(timezone="Europe/Paris")
    make_event(organizer=me, start=_soon(), title="Demo for Atlas")
    feed = _feed_of(me)

    response = client.get(f"/feeds/{feed.token}.ics")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/calendar; charset=utf-8"
    assert "private" in response.headers["Cache-Control"]
    assert response.headers["ETag"] and response.headers["Last-Modified"]
    calendar = Calendar.from_ical(response.data)
    assert [str(e["SUMMARY"]) for e in calendar.walk("VEVENT")] == ["Demo for Atlas"]
    assert "http://localhost/agenda/events/" in str(calendar.walk("VEVENT")[0]["URL"])
    db.session.expire_all()
    assert db.session.get(CalendarFeed, feed.id).last_fetched_at is not None


def test_feed_answers_304_while_nothing_changed(client, ctx):
    me = make_user()
    event = make_event(organizer=me, start=_soon(), title="Review")
    feed = _feed_of(me)
    first = client.get(f"/feeds/{feed.token}.ics")
    etag = first.headers["ETag"]

    again = client.get(f"/feeds/{feed.token}.ics", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""

    event.title = "Review moved"
    db.session.commit()
    changed = client.get(f"/feeds/{feed.token}.ics", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and b"Review moved" in changed.data


def test_unknown_revoked_and_regenerated_tokens(client, ctx):
    me = make_user()
    feed = _feed_of(me)
    assert client.get("/feeds/not-a-token.ics").status_code == 404
    fresh = calendar_feed.regenerate(feed, me)
    db.session.commit()
    assert client.get(f"/feeds/{feed.token}.ics").status_code == 404
    assert client.get(f"/feeds/{fresh.token}.ics").status_code == 200
    calendar_feed.revoke(fresh)
    db.session.commit()
    assert client.get(f"/feeds/{fresh.token}.ics").status_code == 404


def test_a_deactivated_users_feed_stops(client, ctx):
    me = make_user()
    feed = _feed_of(me)
    me.active = False
    db.session.commit()
    assert client.get(f"/feeds/{feed.token}.ics").status_code == 404


# ---- managing the addresses ---------------------------------------------------------


def _address_in(page: str) -> str:
    return re.search(r'value="(http://localhost/feeds/[^"]+\.ics)"', page).group(1)


def test_create_regenerate_and_revoke_my_address(as_role, app):
    client, me = as_role("sales")
    page = client.get("/feeds").text
    assert "Create my calendar address" in page

    created = client.post("/feeds/mine", headers=htmx_headers("section#calendar-feeds"))
    assert created.status_code == 200 and 'id="calendar-feeds"' in created.text
    url = _address_in(created.text)
    assert f'href="webcal://{url.split("://")[1]}"' in created.text
    assert client.get(url.replace("http://localhost", "")).status_code == 200

    feed = calendar_feed.active_feed_for_user(me)
    regenerated = client.post(
        f"/feeds/{feed.id}/regenerate", headers=htmx_headers("section#calendar-feeds")
    )
    new_url = _address_in(regenerated.text)
    assert new_url != url
    assert client.get(url.replace("http://localhost", "")).status_code == 404
    assert client.get(new_url.replace("http://localhost", "")).status_code == 200

    fresh = calendar_feed.active_feed_for_user(me)
    revoked = client.post(f"/feeds/{fresh.id}/revoke")
    assert revoked.status_code == 303
    assert client.get(new_url.replace("http://localhost", "")).status_code == 404
    assert "Create my calendar address" in client.get("/feeds").text


def test_nobody_manages_another_persons_feed(as_role):
    client, _me = as_role("manager")
    other = make_user()
    feed = _feed_of(other)
    assert client.post(f"/feeds/{feed.id}/regenerate").status_code == 404
    assert client.post(f"/feeds/{feed.id}/revoke").status_code == 404
    assert calendar_feed.find_by_token(feed.token) is not None


def test_team_feed_managed_by_the_manager_and_seen_by_members(as_role, login, app):
    team = make_team("Sales North")
    other_team = make_team("Sales South")
    db.session.commit()
    manager_client, manager = as_role("manager", team=team)
    rep_client, _rep = as_role("sales", team=team)

    assert rep_client.post(f"/feeds/teams/{team.id}").status_code == 403
    assert manager_client.post(f"/feeds/teams/{other_team.id}").status_code == 404
    assert "Create the team" in manager_client.get("/feeds").text
    assert manager_client.post(f"/feeds/teams/{team.id}").status_code == 303
    feed = calendar_feed.active_feed_for_team(team)

    rep_page = rep_client.get("/feeds").text
    assert f"/feeds/{feed.token}.ics" in rep_page
    assert f"/feeds/{feed.id}/regenerate" not in rep_page  # seen, not managed
    assert rep_client.post(f"/feeds/{feed.id}/regenerate").status_code == 404
    assert f"/feeds/{feed.id}/regenerate" in manager_client.get("/feeds").text

    admin_client, _admin = as_role("admin")
    admin_page = admin_client.get("/feeds").text
    assert "Sales North" in admin_page and "Sales South" in admin_page


def test_settings_page_loads_the_feed_section(as_role):
    client, _me = as_role("support")
    page = client.get("/settings").text
    assert 'hx-get="/feeds"' in page and 'id="calendar-feeds"' in page
    fragment = client.get("/feeds", headers=htmx_headers("section#calendar-feeds")).text
    assert fragment.lstrip().startswith(
        '<section class="card narrow calendar-feeds" id="calendar-feeds"'
    )
    assert "<html" not in fragment


# ---- importing an invitation ---------------------------------------------------------


def _upload(client, name: str, data: bytes | None = None, mimetype="text/calendar", **headers):
    content = data if data is not None else (FIXTURES / name).read_bytes()
    return client.post(
        "/agenda/import",
        data={"file": (io.BytesIO(content), name, mimetype)},
        content_type="multipart/form-data",
        headers=headers,
    )


def _events() -> int:
    return db.session.scalar(select(func.count(Event.id)))


def test_import_previews_then_imports_in_one_click(as_role):
    client, me = as_role("sales", email="sophie.laurent@crm.example")
    assert "Invitation file (.ics)" in client.get("/agenda/import").text

    preview = _upload(client, "google_request.ics")
    assert preview.status_code == 200
    assert "New event" in preview.text and "Déploiement terminaux" in preview.text
    assert "paul@elsewhere.example" in preview.text and _events() == 0
    payload = re.search(r'name="payload" type="hidden" value="([^"]+)"', preview.text).group(1)
    assert base64.b64decode(payload) == (FIXTURES / "google_request.ics").read_bytes()

    done = client.post("/agenda/import/confirm", data={"payload": payload})
    assert done.status_code == 303 and "/agenda?date=2027-03-09" in done.headers["Location"]
    [event] = db.session.scalars(select(Event)).all()
    assert event.organizer_id == me.id and event.ical_uid == "7kukuqrfedlm2f9t0vhsgs6mbk@google.com"

    # The same invitation again is an update of that event, not a second one.
    again = _upload(client, "google_update.ics", **htmx_headers("section#ics-import"))
    assert "Update of an event on your agenda" in again.text and "<html" not in again.text
    payload = re.search(r'name="payload" type="hidden" value="([^"]+)"', again.text).group(1)
    client.post("/agenda/import/confirm", data={"payload": payload})
    assert _events() == 1
    db.session.expire_all()
    assert db.session.get(Event, event.id).sequence == 1


def test_bad_files_are_refused_with_422_and_nothing_saved(as_role):
    client, _me = as_role("sales")
    cases = {
        "not_a_calendar.ics": "not a calendar invitation",
        "reply.ics": "answer to an invitation",
    }
    for name, message in cases.items():
        response = _upload(client, name)
        assert response.status_code == 422 and message in response.text, name
    too_big = _upload(client, "big.ics", b"BEGIN:VCALENDAR\r\n" + b"X" * (1024 * 1024))
    assert too_big.status_code == 422 and "1 MB" in too_big.text
    picture = _upload(client, "photo.png", b"\x89PNG\r\n", mimetype="image/png")
    assert picture.status_code == 422 and ".ics file" in picture.text
    empty = client.post("/agenda/import", data={}, content_type="multipart/form-data")
    assert empty.status_code == 422 and "Choose the .ics file" in empty.text
    forged = client.post("/agenda/import/confirm", data={"payload": "not base64!"})
    assert forged.status_code == 422
    assert _events() == 0


def test_feed_runs_the_same_few_queries_for_any_number_of_events(client, ctx):
    from crm.queues import redis_connection
    from crm.services.recurrence import build_rule

    team = make_team()
    me = make_user(team=team)
    colleague = make_user(team=team)
    feed = _feed_of(me)
    team_feed = calendar_feed.create_team_feed(team, me)
    db.session.commit()

    def add(count: int) -> None:
        customer = make_contact(email=None)
        for i in range(count):
            series = make_event(
                organizer=me if i % 2 else colleague,
                attendees=[me, colleague, customer] if i % 2 else [me, make_contact()],
                start=_soon(24 * (i % 30) + 2),
                rrule=build_rule("WEEKLY") if i % 5 == 0 else None,
                contact=customer,
            )
            if series.rrule:
                make_event(
                    organizer=me,
                    attendees=[colleague],
                    parent=series,
                    recurrence_id=series.starts_at + timedelta(weeks=1),
                    start=series.starts_at + timedelta(weeks=1, hours=1),
                )
            make_task(me, due=_soon(24 * (i % 30)))
        db.session.commit()

    def queries(token: str, cached: bool = False) -> int:
        if not cached:
            redis_connection().flushdb()  # the built files kept in Redis
        response = client.get(f"/feeds/{token}.ics")
        assert response.status_code == 200
        return int(response.headers["X-SQL-Queries"])

    add(3)
    queries(feed.token), queries(team_feed.token)  # the first fetch also records itself
    small = (queries(feed.token), queries(team_feed.token))
    add(60)
    large = (queries(feed.token), queries(team_feed.token))
    # Events, tasks, and (since issue 6) the interventions booked: one query more each for
    # the version and the file.
    assert large == small and max(large) <= 12, (small, large)
    # Polled again without a change: the file comes from Redis after the version check.
    queries(feed.token)
    assert queries(feed.token, cached=True) <= 5  # 4 before the interventions' version
