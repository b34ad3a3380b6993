"""Start page, personal settings, areas still to come."""

import re

from crm.extensions import db
from crm.models import User
from tests.conftest import htmx_headers
from tests.factories import make_contact


def test_start_page_shows_my_leads(as_role):
    client, me = as_role("sales")
    make_contact("Mine", "Lead", owner=me, stage="lead")
    make_contact("Theirs", "Lead", stage="lead")
    db.session.commit()
    page = client.get("/").text
    assert "Mine Lead" in page and "Theirs Lead" not in page


def test_technician_start_page_has_no_address_book(as_role):
    client, _ = as_role("technician")
    page = client.get("/").text
    assert 'href="/contacts"' not in page
    assert 'href="/interventions"' in page


def test_navigation_shows_only_what_the_role_may_open(as_role):
    expectations = {
        "admin": {"/contacts": True, "/deals": True, "/admin/users": True, "/reports": True},
        "sales": {
            "/contacts": True,
            "/deals": True,
            "/admin/users": False,
            "/interventions": False,
        },
        "support": {"/contacts": True, "/deals": False, "/incidents": True, "/interventions": True},
        "technician": {
            "/contacts": False,
            "/deals": False,
            "/interventions": True,
            "/agenda": True,
        },
    }
    for role, links in expectations.items():
        client, _ = as_role(role)
        nav = client.get("/").text.split('<nav class="sidebar"')[1].split("</nav>")[0]
        for href, shown in links.items():
            assert (f'href="{href}"' in nav) is shown, (role, href)


def test_settings_save_language_and_time_zone(as_role):
    client, me = as_role("sales")
    response = client.post("/settings", data={"locale": "fr", "timezone": "America/Montreal"})
    assert response.status_code == 303
    db.session.expire_all()
    user = db.session.get(User, me.id)
    assert (user.locale, user.timezone) == ("fr", "America/Montreal")
    assert '<html lang="fr">' in client.get("/").text


def test_settings_turn_email_reminders_off_and_on_and_move_all_day_ones(as_role):
    from datetime import UTC, date, datetime, time, timedelta
    from zoneinfo import ZoneInfo

    from crm.models import Reminder
    from crm.services import reminders
    from tests.factories import make_event, make_task

    client, me = as_role("sales", timezone="Europe/Paris", email="rep@example.com")
    paris, tokyo = ZoneInfo("Europe/Paris"), ZoneInfo("Asia/Tokyo")
    soon = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    day = date.today() + timedelta(days=5)
    holiday = make_event(me, datetime.combine(day, time(), paris), minutes=24 * 60, all_day=True)
    for event in (make_event(me, soon), holiday):
        reminders.schedule_event(event)
    reminders.schedule_task(make_task(me, soon + timedelta(hours=1)))
    on_a_day = make_task(me, datetime.combine(day, time(), paris), all_day=True)
    reminders.schedule_task(on_a_day)
    db.session.commit()

    def pending():
        db.session.expire_all()
        found = db.session.scalars(db.select(Reminder).where(Reminder.status == "pending"))
        return {(r.event_id, r.task_id, r.channel, r.remind_at) for r in found}

    nine_in_paris = datetime.combine(day, time(9), paris).astimezone(UTC)
    assert len(pending()) == 8  # four subjects, in the bell and by email
    page = client.get("/settings").text
    assert re.search(r'<input checked[^>]* name="email_reminders"', page)

    # Unticked: the email reminders go, the bell's stay.
    response = client.post("/settings", data={"locale": "", "timezone": "Europe/Paris"})
    assert response.status_code == 303
    assert {channel for _event, _task, channel, _at in pending()} == {"in_app"}
    assert len(pending()) == 4 and db.session.get(User, me.id).email_reminders is False

    # Ticked again, in Tokyo now: email rows are back, the all-day one at 09:00 in Tokyo.
    client.post("/settings", data={"locale": "", "timezone": "Asia/Tokyo", "email_reminders": "y"})
    assert len(pending()) == 8
    nine_in_tokyo = datetime.combine(day, time(9), tokyo).astimezone(UTC)
    all_day = {at for event, _task, _channel, at in pending() if event == holiday.id}
    assert all_day == {nine_in_tokyo} != {nine_in_paris}
    # The task due on that day is still due on that day, now a Tokyo day.
    db.session.refresh(on_a_day)
    assert on_a_day.due_at == datetime.combine(day, time(), tokyo)
    assert {at for _event, task, _channel, at in pending() if task == on_a_day.id} == {
        nine_in_tokyo
    }
    # Westwards, a day's midnight kept from Tokyo would be the day before in New York.
    new_york = ZoneInfo("America/New_York")
    client.post(
        "/settings", data={"locale": "", "timezone": "America/New_York", "email_reminders": "y"}
    )
    db.session.refresh(on_a_day)
    assert on_a_day.due_at.astimezone(new_york) == datetime.combine(day, time(), new_york)


def test_settings_refuse_an_unknown_time_zone(as_role):
    client, me = as_role("sales")
    response = client.post("/settings", data={"locale": "en", "timezone": "Mars/Olympus"})
    assert response.status_code == 422
    db.session.expire_all()
    assert db.session.get(User, me.id).timezone is None


def test_times_are_shown_in_the_users_time_zone(as_role):
    from datetime import UTC, datetime

    from tests.factories import make_activity

    client, me = as_role("sales", timezone="Asia/Tokyo", locale="en")
    contact = make_contact()
    make_activity(
        contact, "note", body="x", author=me, occurred_at=datetime(2020, 1, 15, 23, 30, tzinfo=UTC)
    )
    db.session.commit()
    page = client.get(f"/contacts/{contact.id}").text
    assert "1/16/20, 8:30" in page  # 23:30 UTC is 08:30 the next day in Tokyo


def test_reports_are_no_longer_coming_soon(as_role):
    client, _ = as_role("manager")
    assert "Coming soon" not in client.get("/reports").text


def test_forbidden_under_htmx_is_a_clear_toast_not_a_blank_swap(as_role):
    client, _ = as_role("sales")
    response = client.get("/admin/users", headers=htmx_headers("main#main"))
    assert response.status_code == 403
    assert response.headers["HX-Retarget"] == "#toasts"
    assert "You do not have access to this." in response.text
