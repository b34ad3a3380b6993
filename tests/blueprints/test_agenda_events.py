"""Event routes: create in one form (422 on bad input, nothing saved), conflicts as a
warning, edit rights, drag moves, series occurrences, answers and the meeting report."""

import json
import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from crm.extensions import db
from crm.models import Activity, Event, EventAttendee, Reminder
from tests.conftest import htmx_headers
from tests.factories import make_contact, make_event, make_team, make_user

PARIS = ZoneInfo("Europe/Paris")
MONDAY = date(2026, 12, 7)  # ahead of the tests' "now" (events not started)
AGENDA = f"http://localhost/agenda?view=week&date={MONDAY.isoformat()}"


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=PARIS).astimezone(UTC)


def from_agenda(target: str = "div#event-dialog-body") -> dict:
    return {**htmx_headers(target), "HX-Current-URL": AGENDA}


def form(**fields) -> dict:
    data = {
        "title": "Demo",
        "kind": "meeting",
        "start_date": MONDAY.isoformat(),
        "start_time": "10:00",
        "end_time": "11:00",
        "reminder": "",
        "repeat": "",
        "ends": "never",
    }
    data.update(fields)
    return data


def events() -> list[Event]:
    db.session.expire_all()
    return list(db.session.scalars(db.select(Event).order_by(Event.id)))


def stored(event_id: int) -> Event:
    db.session.expire_all()
    return db.session.get(Event, event_id)


def toast(response) -> dict:
    return json.loads(response.headers["HX-Trigger"])["crm:toast"]


# ---- create ---------------------------------------------------------------------------------


def test_the_form_opens_with_the_times_of_the_slot(as_role):
    client, me = as_role("sales", timezone="Europe/Paris")
    response = client.get(
        "/agenda/events/new?start=2026-12-08T14:15&end=2026-12-08T15:45",
        headers=htmx_headers("div#event-dialog-body"),
    )
    assert response.status_code == 200
    assert "<html" not in response.text
    assert 'value="2026-12-08"' in response.text
    assert 'value="14:15"' in response.text and 'value="15:45"' in response.text
    assert "autofocus" in response.text


def test_create_saves_in_utc_in_the_organizers_zone_and_redraws_the_agenda(as_role):
    client, me = as_role("sales", timezone="Europe/Paris")
    colleague = make_user(name="Colin Colleague")
    contact = make_contact("Ada", "Lovelace")
    db.session.commit()
    response = client.post(
        "/agenda/events",
        data=form(users=[colleague.id], contacts=[contact.id], location="Lyon"),
        headers=from_agenda(),
    )
    assert response.status_code == 200
    assert toast(response)["message"] == "Event created."
    assert "agenda:saved" in json.loads(response.headers["HX-Trigger"])
    assert '<hx-partial hx-target="#agenda"' in response.text
    assert "Demo" in response.text  # the redrawn week shows it
    (event,) = events()
    assert (event.starts_at, event.ends_at) == (at(MONDAY, 10), at(MONDAY, 11))
    assert event.organizer_id == me.id and event.timezone == "Europe/Paris"
    assert {a.user_id for a in event.attendees if a.user_id} == {colleague.id}
    assert {a.contact_id for a in event.attendees if a.contact_id} == {contact.id}
    # Reminders are planned in the same transaction, for the organizer and the colleague.
    reminded = {r.user_id for r in db.session.scalars(db.select(Reminder))}
    assert reminded == {me.id, colleague.id}


def test_create_a_weekly_series_stores_its_rule_and_end(as_role):
    client, me = as_role("sales", timezone="Europe/Paris")
    response = client.post(
        "/agenda/events",
        data=form(repeat="WEEKLY", weekdays=["MO", "TH"], ends="count", count="4"),
        headers=from_agenda(),
    )
    assert response.status_code == 200
    (event,) = events()
    assert event.rrule == "FREQ=WEEKLY;BYDAY=MO,TH;COUNT=4"
    assert event.rrule_until == at(MONDAY + timedelta(days=10), 11)  # Thursday of the 2nd week


def test_no_reminder_chosen_means_none_planned_and_stays_chosen(as_role):
    client, me = as_role("sales", timezone="Europe/Paris")
    response = client.post("/agenda/events", data=form(reminder="none"), headers=from_agenda())
    assert response.status_code == 200
    (event,) = events()
    assert db.session.scalars(db.select(Reminder)).all() == []
    edit = client.get(f"/agenda/events/{event.id}/edit", headers=from_agenda()).text
    assert re.search(r'<option selected value="none">|<option value="none" selected>', edit)

    # Back to the default: the reminders are planned again.
    response = client.post(
        f"/agenda/events/{event.id}", data=form(reminder=""), headers=from_agenda()
    )
    assert response.status_code == 200
    assert {r.user_id for r in db.session.scalars(db.select(Reminder))} == {me.id}


def test_create_an_all_day_event_spans_whole_local_days(as_role):
    client, me = as_role("sales", timezone="Europe/Paris")
    client.post(
        "/agenda/events",
        data=form(
            all_day="y",
            end_date=(MONDAY + timedelta(days=1)).isoformat(),
            start_time="",
            end_time="",
        ),
        headers=from_agenda(),
    )
    (event,) = events()
    assert event.all_day
    assert event.starts_at == at(MONDAY, 0)
    assert event.ends_at == at(MONDAY + timedelta(days=2), 0)


def test_bad_input_answers_422_with_the_form_and_saves_nothing(as_role):
    client, me = as_role("sales")
    other = make_contact()
    db.session.commit()
    cases = [
        (form(end_time="09:00"), "The end is before the start."),
        (form(title=""), "This field is required."),
        (form(users=["999999"]), "is not a valid choice"),
        (form(contacts=["999999"]), "Unknown contact."),
        (form(linked_contact="Nobody (#999999)"), "Pick one from the list."),
        (
            form(repeat="WEEKLY", ends="until", until="2026-11-01"),
            "The series must end after it starts.",
        ),
        (form(start_time=""), "Give a start time, or tick All day."),
    ]
    for data, message in cases:
        response = client.post("/agenda/events", data=data, headers=from_agenda())
        assert response.status_code == 422, message
        assert message in response.text
        assert 'name="title"' in response.text
    assert events() == []
    assert other.id  # the contact exists but was never asked for


def test_a_sales_rep_cannot_plan_for_someone_else(as_role):
    client, me = as_role("sales")
    other = make_user()
    db.session.commit()
    response = client.post(
        "/agenda/events", data=form(organizer=str(other.id)), headers=from_agenda()
    )
    assert response.status_code == 422
    assert events() == []


def test_a_manager_plans_for_their_team_but_not_for_another(as_role):
    team, elsewhere = make_team(), make_team()
    client, manager = as_role("manager", team=team)
    rep = make_user(team=team)
    outsider = make_user(team=elsewhere)
    db.session.commit()
    assert (
        client.post(
            "/agenda/events", data=form(organizer=str(rep.id)), headers=from_agenda()
        ).status_code
        == 200
    )
    assert events()[0].organizer_id == rep.id
    response = client.post(
        "/agenda/events", data=form(organizer=str(outsider.id)), headers=from_agenda()
    )
    assert response.status_code == 422
    assert len(events()) == 1


def test_plan_a_meeting_from_a_contact_fills_the_link_and_the_invitation(as_role):
    client, me = as_role("sales")
    contact = make_contact("Grace", "Hopper")
    db.session.commit()
    page = client.get(f"/agenda/events/new?contact_id={contact.id}").text
    assert f"Grace Hopper (#{contact.id})" in page
    assert f'name="contacts" value="{contact.id}" checked' in page
    assert "Meeting with Grace Hopper" in page
    contact_page = client.get(f"/contacts/{contact.id}").text
    assert f'href="/agenda/events/new?contact_id={contact.id}"' in contact_page


def test_plan_a_meeting_from_a_deal_links_the_deal_and_its_contact(as_role):
    from tests.factories import make_deal

    client, me = as_role("sales")
    contact = make_contact("Alan", "Turing")
    deal = make_deal(owner=me, title="Enigma renewal", contact=contact)
    db.session.commit()
    assert f'href="/agenda/events/new?deal_id={deal.id}"' in client.get(f"/deals/{deal.id}").text
    page = client.get(f"/agenda/events/new?deal_id={deal.id}").text
    assert f"Enigma renewal (#{deal.id})" in page and f"Alan Turing (#{contact.id})" in page


def test_plan_a_meeting_from_an_incident_links_it_and_invites_its_customer(as_role):
    from tests.factories import make_company, make_incident

    client, me = as_role("support", timezone="Europe/Paris")
    company = make_company("Acme Printing")
    contact = make_contact("Linus", "Torvalds", company=company)
    incident = make_incident(contact, subject="Printer jams every morning")
    db.session.commit()
    incident_page = client.get(f"/incidents/{incident.id}").text
    assert f'href="/agenda/events/new?incident_id={incident.id}"' in incident_page
    page = client.get(f"/agenda/events/new?incident_id={incident.id}").text
    reference = f"Printer jams every morning (#{incident.id})"
    # The incident is shown, not offered in a picker: a hidden field and a link to it.
    assert f'<input type="hidden" name="linked_incident" value="{reference}">' in page
    assert f'href="/incidents/{incident.id}">Incident #{incident.id} Printer jams' in page
    assert 'id="linked_incident"' not in page
    assert f"Linus Torvalds · Acme Printing (#{contact.id})" in page
    assert f'name="contacts" value="{contact.id}" checked' in page
    assert f"Acme Printing (#{company.id})" in page
    assert 'value="Printer jams every morning"' in page  # the title

    response = client.post(
        "/agenda/events",
        data=form(
            title="Printer jams every morning",
            linked_incident=reference,
            incident_fixed="1",
            linked_contact=f"Linus Torvalds · Acme Printing (#{contact.id})",
            linked_company=f"Acme Printing (#{company.id})",
            contacts=[str(contact.id)],
        ),
    )
    assert response.status_code in (200, 204, 303), response.text[:300]
    (event,) = events()
    assert (event.incident_id, event.contact_id, event.company_id) == (
        incident.id,
        contact.id,
        company.id,
    )
    assert [a.contact_id for a in event.attendees] == [contact.id]
    detail = client.get(f"/agenda/events/{event.id}").text
    assert f'href="/incidents/{incident.id}">Incident #{incident.id} Printer jams' in detail
    incident_page = client.get(f"/incidents/{incident.id}").text
    meetings_url = f"/agenda/incidents/{incident.id}/meetings"
    assert f'hx-get="{meetings_url}" hx-trigger="load"' in incident_page
    listed = client.get(meetings_url, headers=htmx_headers("div#incident-meetings")).text
    assert "<html" not in listed and "Upcoming" in listed
    assert f'href="/agenda/events/{event.id}">Printer jams every morning</a>' in listed


def test_a_meeting_links_only_an_incident_its_planner_may_see(as_role):
    from tests.factories import make_incident

    client, rep = as_role("sales")
    theirs = make_incident(make_contact(owner=make_user()), subject="Someone else's customer")
    mine = make_incident(make_contact(owner=rep), subject="My customer's complaint")
    db.session.commit()
    # Sales read their customers' incidents, and may plan a meeting about one.
    assert client.get(f"/agenda/events/new?incident_id={theirs.id}").status_code == 404
    assert client.get(f"/agenda/events/new?incident_id={mine.id}").status_code == 200
    assert client.get(f"/agenda/incidents/{theirs.id}/meetings").status_code == 404
    assert "complaint" not in client.get("/agenda/link-options?type=incident&q=someone").text
    options = client.get("/agenda/link-options?type=incident&q=complaint").text
    assert f"My customer&#39;s complaint (#{mine.id})" in options
    refused = client.post(
        "/agenda/events",
        data=form(linked_incident=f"Someone else's customer (#{theirs.id})", incident_fixed="1"),
    )
    assert refused.status_code == 422 and "Pick one from the list." in refused.text
    assert events() == []
    client.post("/agenda/events", data=form(linked_incident=f"#{mine.id}"))
    (event,) = events()
    assert event.incident_id == mine.id


def test_an_incident_link_the_organizer_cannot_see_stays_when_they_edit(as_role):
    from tests.factories import make_incident

    team = make_team()
    manager_client, manager = as_role("manager", team=team)
    rep_client, rep = as_role("sales", team=team)
    incident = make_incident(make_contact(owner=manager), subject="Manager's account")
    db.session.commit()
    manager_client.post(
        "/agenda/events",
        data=form(organizer=str(rep.id), linked_incident=f"#{incident.id}"),
    )
    (event,) = events()
    assert event.incident_id == incident.id and event.organizer_id == rep.id
    edit = rep_client.get(f"/agenda/events/{event.id}/edit").text
    assert f'value="#{incident.id}"' in edit and "Manager&#39;s account" not in edit
    detail = rep_client.get(f"/agenda/events/{event.id}").text
    assert f"Incident #{incident.id}" in detail and f'href="/incidents/{incident.id}"' not in detail
    saved = rep_client.post(
        f"/agenda/events/{event.id}",
        data=form(title="Renamed", organizer=str(rep.id), linked_incident=f"#{incident.id}"),
    )
    assert saved.status_code != 422, saved.text[:300]
    assert stored(event.id).title == "Renamed" and stored(event.id).incident_id == incident.id


# ---- conflicts ---------------------------------------------------------------------------


def test_a_conflict_warns_and_save_anyway_saves(as_role):
    client, me = as_role("sales", timezone="Europe/Paris")
    busy = make_user(name="Betty Busy")
    make_event(busy, at(MONDAY, 10, 30), minutes=60, title="Dentist", private=True)
    db.session.commit()
    response = client.post("/agenda/events", data=form(users=[busy.id]), headers=from_agenda())
    assert response.status_code == 200
    assert "Already busy then" in response.text and "Betty Busy" in response.text
    assert "Dentist" not in response.text  # who and when, never what
    assert "Save anyway" in response.text
    assert len(events()) == 1
    signature = re.search(r'name="confirm_conflicts" type="hidden" value="(\w+)"', response.text)
    response = client.post(
        "/agenda/events",
        data=form(users=[busy.id], confirm_conflicts=signature.group(1)),
        headers=from_agenda(),
    )
    assert toast(response)["message"] == "Event created."
    assert len(events()) == 2


def test_a_busy_occurrence_of_a_series_is_a_conflict_too(as_role):
    client, me = as_role("sales", timezone="Europe/Paris")
    make_event(me, at(MONDAY - timedelta(days=7), 10), title="Weekly", rrule="FREQ=WEEKLY")
    db.session.commit()
    response = client.post("/agenda/events", data=form(), headers=from_agenda())
    assert "Already busy then" in response.text
    declined = make_event(make_user(), at(MONDAY, 15), attendees=[me])
    declined.attendees[0].response = "declined"
    db.session.commit()
    response = client.post(
        "/agenda/events", data=form(start_time="15:00", end_time="16:00"), headers=from_agenda()
    )
    assert toast(response)["message"] == "Event created."  # declined: not busy


# ---- who may change what ---------------------------------------------------------------------


def test_others_events_are_refused_unless_manager_of_their_team_or_admin(as_role):
    team = make_team()
    organizer = make_user(team=team)
    event = make_event(organizer, at(MONDAY, 9))
    db.session.commit()
    move = {"start": "2026-12-08T09:00", "end": "2026-12-08T10:00"}
    for role, fields, allowed in [
        ("sales", {"team": team}, False),
        ("manager", {"team": make_team()}, False),
        ("manager", {"team": team}, True),
        ("admin", {}, True),
    ]:
        client, _ = as_role(role, **fields)
        response = client.post(f"/agenda/events/{event.id}/move", data=move, headers=from_agenda())
        assert (response.status_code != 403) is allowed, (role, fields)
        if not allowed:
            assert "Only the organizer" in response.text
            assert client.get(f"/agenda/events/{event.id}/edit").status_code == 403
            assert client.post(f"/agenda/events/{event.id}/delete").status_code == 403
    assert events()[0].starts_at == at(MONDAY + timedelta(days=1), 9)


def test_private_events_are_busy_blocks_for_everybody_but_their_people(as_role):
    owner = make_user(name="Olga Owner")
    guest = make_user()
    event = make_event(
        owner,
        at(MONDAY, 9),
        title="Job interview",
        private=True,
        attendees=[guest],
        location="Hotel",
        description="Confidential",
    )
    db.session.commit()
    client, viewer = as_role("manager")
    for url in (
        f"/agenda?date={MONDAY}&user={owner.id}",
        f"/agenda?view=month&date={MONDAY}&user={owner.id}",
        f"/agenda?view=team&date={MONDAY}&user={owner.id}",
        f"/agenda/events/{event.id}",
    ):
        text = client.get(url).text
        assert "Busy" in text, url
        assert "Job interview" not in text and "Hotel" not in text and "Confidential" not in text, (
            url
        )
    fragment = client.get(
        f"/agenda/events/{event.id}", headers=htmx_headers("div#event-dialog-body")
    ).text
    assert "Job interview" not in fragment and "Busy" in fragment
    colleague_client = as_role("sales")[0]
    assert "Job interview" not in colleague_client.get(f"/agenda/events/{event.id}").text


def test_an_attendee_sees_a_private_event(app, login, ctx):
    owner, guest = make_user(), make_user()
    event = make_event(owner, at(MONDAY, 9), title="Job interview", private=True, attendees=[guest])
    db.session.commit()
    client = login(app.test_client(), guest)
    assert "Job interview" in client.get(f"/agenda/events/{event.id}").text
    assert "Job interview" in client.get(f"/agenda?date={MONDAY}&user={owner.id}").text


# ---- moves --------------------------------------------------------------------------------


def test_a_drag_moves_the_event_and_warns_of_a_conflict(as_role):
    client, me = as_role("sales", timezone="Europe/Paris")
    event = make_event(me, at(MONDAY, 9))
    make_event(me, at(MONDAY + timedelta(days=1), 14), title="Other")
    db.session.commit()
    response = client.post(
        f"/agenda/events/{event.id}/move",
        data={"start": "2026-12-08T14:30", "end": "2026-12-08T15:30"},
        headers=from_agenda(),
    )
    assert response.status_code == 200
    assert toast(response)["level"] == "warning"
    assert "already busy" in toast(response)["message"]
    moved = stored(event.id)
    assert (moved.starts_at, moved.ends_at) == (
        at(MONDAY + timedelta(days=1), 14, 30),
        at(MONDAY + timedelta(days=1), 15, 30),
    )
    assert moved.sequence == 1
    assert '<hx-partial hx-target="#agenda"' in response.text


def test_a_drop_on_another_day_of_the_month_keeps_the_time(as_role):
    client, me = as_role("sales", timezone="Europe/Paris")
    event = make_event(me, at(MONDAY, 9, 45), minutes=30)
    db.session.commit()
    response = client.post(
        f"/agenda/events/{event.id}/move", data={"day": "2026-12-18"}, headers=from_agenda()
    )
    assert toast(response)["message"] == "Event moved."
    moved = stored(event.id)
    assert (moved.starts_at, moved.ends_at) == (
        at(date(2026, 12, 18), 9, 45),
        at(date(2026, 12, 18), 10, 15),
    )


def test_a_move_without_times_is_refused(as_role):
    client, me = as_role("sales")
    event = make_event(me, at(MONDAY, 9))
    db.session.commit()
    response = client.post(
        f"/agenda/events/{event.id}/move", data={"start": "soon"}, headers=from_agenda()
    )
    assert response.status_code == 422
    response = client.post(
        f"/agenda/events/{event.id}/move",
        data={"start": "2026-12-08T10:00", "end": "2026-12-08T09:00"},
        headers=from_agenda(),
    )
    assert response.status_code == 422
    assert stored(event.id).starts_at == at(MONDAY, 9)


# ---- series occurrences ---------------------------------------------------------------------


def test_moving_one_occurrence_of_a_series_detaches_it(as_role):
    client, me = as_role("sales", timezone="Europe/Paris")
    series = make_event(me, at(MONDAY, 9), title="Standup", rrule="FREQ=DAILY;COUNT=5")
    db.session.commit()
    key = f"{series.id}@{at(MONDAY + timedelta(days=1), 9).strftime('%Y-%m-%dT%H:%M:%SZ')}"
    response = client.post(
        f"/agenda/events/{key}/move",
        data={"start": "2026-12-08T11:00", "end": "2026-12-08T12:00"},
        headers=from_agenda(),
    )
    assert response.status_code == 200
    root, override = events()
    assert override.parent_id == root.id and override.recurrence_id == at(
        MONDAY + timedelta(days=1), 9
    )
    assert override.starts_at == at(MONDAY + timedelta(days=1), 11)
    assert override.ical_uid == root.ical_uid
    week = client.get(f"/agenda?date={MONDAY}").text
    assert week.count("Standup") == 5  # four from the rule, the moved one on its own


def test_edit_this_occurrence_or_the_whole_series(as_role):
    client, me = as_role("sales", timezone="Europe/Paris")
    series = make_event(me, at(MONDAY, 9), title="Standup", rrule="FREQ=DAILY;COUNT=5")
    db.session.commit()
    tuesday = MONDAY + timedelta(days=1)
    key = f"{series.id}@{at(tuesday, 9).strftime('%Y-%m-%dT%H:%M:%SZ')}"
    page = client.get(f"/agenda/events/{key}/edit").text
    assert "This occurrence" in page and "The whole series" in page
    data = form(
        title="Standup (moved)",
        start_date=tuesday.isoformat(),
        start_time="09:30",
        end_time="10:30",
        scope="this",
        repeat="DAILY",
        ends="count",
        count="5",
    )
    assert client.post(f"/agenda/events/{key}", data=data, headers=from_agenda()).status_code == 200
    root, override = events()
    assert root.title == "Standup" and override.title == "Standup (moved)"
    assert override.starts_at == at(tuesday, 9, 30) and override.rrule is None

    wednesday = MONDAY + timedelta(days=2)
    key = f"{series.id}@{at(wednesday, 9).strftime('%Y-%m-%dT%H:%M:%SZ')}"
    data = form(
        title="Daily",
        start_date=wednesday.isoformat(),
        start_time="08:00",
        end_time="08:30",
        scope="series",
        repeat="DAILY",
        ends="count",
        count="5",
    )
    assert client.post(f"/agenda/events/{key}", data=data, headers=from_agenda()).status_code == 200
    root = events()[0]
    assert root.title == "Daily"
    assert (root.starts_at, root.ends_at) == (
        at(MONDAY, 8),
        at(MONDAY, 8, 30),
    )  # the series moved by the same


def test_delete_one_occurrence_or_the_series(as_role):
    client, me = as_role("sales", timezone="Europe/Paris")
    series = make_event(me, at(MONDAY, 9), title="Standup", rrule="FREQ=DAILY;COUNT=5")
    db.session.commit()
    tuesday = at(MONDAY + timedelta(days=1), 9).strftime("%Y-%m-%dT%H:%M:%SZ")
    response = client.post(
        f"/agenda/events/{series.id}@{tuesday}/delete",
        data={"scope": "this"},
        headers=from_agenda(),
    )
    assert toast(response)["message"] == "Event deleted."
    assert events()[0].exdates == [tuesday]
    assert client.get(f"/agenda?date={MONDAY}").text.count("Standup") == 4
    client.post(
        f"/agenda/events/{series.id}@{tuesday}/delete",
        data={"scope": "series"},
        headers=from_agenda(),
    )
    assert (
        client.get(f"/agenda/events/{series.id}@{tuesday}").status_code == 404
    )  # not in the series any more
    client.post(
        f"/agenda/events/{series.id}/delete", data={"scope": "series"}, headers=from_agenda()
    )
    assert events() == []


# ---- answers and reports ------------------------------------------------------------------------


def test_an_invited_colleague_accepts_in_one_click(app, login, ctx):
    owner, guest = make_user(), make_user()
    event = make_event(owner, at(MONDAY, 9), attendees=[guest])
    db.session.commit()
    client = login(app.test_client(), guest)
    assert "Going?" in client.get(f"/agenda/events/{event.id}").text
    response = client.post(
        f"/agenda/events/{event.id}/respond", data={"response": "accepted"}, headers=from_agenda()
    )
    assert response.status_code == 200
    assert '<hx-partial hx-target="#agenda"' in response.text
    db.session.expire_all()
    assert db.session.scalars(db.select(EventAttendee.response)).one() == "accepted"
    outsider = login(app.test_client(), make_user())
    db.session.commit()
    assert (
        outsider.post(
            f"/agenda/events/{event.id}/respond", data={"response": "accepted"}
        ).status_code
        == 403
    )


def test_the_report_lands_on_the_timelines_once(as_role):
    client, me = as_role("sales", timezone="Europe/Paris")
    contact = make_contact("Ada", "Lovelace")
    past = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    event = make_event(
        me, past, title="Discovery call", kind="call", contact=contact, company=contact.company
    )
    future = make_event(me, at(MONDAY, 9), contact=contact)
    db.session.commit()
    early = client.post(f"/agenda/events/{future.id}/report", data={"report": "Too soon"})
    assert early.status_code == 422 and "once the meeting has started" in early.text
    client.post(f"/agenda/events/{event.id}/report", data={"report": "Wants a quote."})
    client.post(f"/agenda/events/{event.id}/report", data={"report": "Wants a quote for 20 seats."})
    (activity,) = db.session.scalars(db.select(Activity).where(Activity.event_id == event.id)).all()
    assert activity.body == "Wants a quote for 20 seats." and activity.contact_id == contact.id
    assert activity.kind == "call" and activity.occurred_at == past
    assert stored(event.id).report == "Wants a quote for 20 seats."
    assert "Wants a quote for 20 seats." in client.get(f"/contacts/{contact.id}").text


def test_the_report_of_a_meeting_about_an_incident_lands_on_it_once(as_role):
    from crm.models import IncidentMessage
    from tests.factories import make_incident

    client, me = as_role("support", timezone="Europe/Paris")
    contact = make_contact("Ada", "Lovelace")
    incident = make_incident(contact, subject="Engine overheats")
    past = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    event = make_event(
        me, past, title="Visit about the engine", kind="visit", contact=contact, incident=incident
    )
    db.session.commit()
    client.post(f"/agenda/events/{event.id}/report", data={"report": "Fan is worn."})
    client.post(f"/agenda/events/{event.id}/report", data={"report": "Fan is worn: replace it."})
    db.session.expire_all()
    (note,) = db.session.scalars(
        db.select(IncidentMessage).where(IncidentMessage.incident_id == incident.id)
    ).all()
    assert note.kind == "note" and note.author_id == me.id
    assert note.body == "Meeting report: Visit about the engine\n\nFan is worn: replace it."
    (activity,) = db.session.scalars(db.select(Activity).where(Activity.event_id == event.id)).all()
    assert activity.incident_id == incident.id and activity.contact_id == contact.id
    assert activity.body == "Fan is worn: replace it."
    incident_page = client.get(f"/incidents/{incident.id}").text
    assert incident_page.count("Fan is worn: replace it.") == 1
    listed = client.get(f"/agenda/incidents/{incident.id}/meetings").text
    assert "Recent" in listed and "report written" in listed
    contact_page = client.get(f"/contacts/{contact.id}").text
    assert contact_page.count("Fan is worn: replace it.") == 1
    # Unlinked from the incident, the meeting's report leaves it.
    event = stored(event.id)
    event.incident = None
    db.session.commit()
    client.post(f"/agenda/events/{event.id}/report", data={"report": "Fan is worn."})
    db.session.expire_all()
    assert (
        db.session.scalars(
            db.select(IncidentMessage).where(IncidentMessage.incident_id == incident.id)
        ).all()
        == []
    )


def test_an_incidents_meetings_are_read_in_a_bounded_number_of_queries(as_role):
    from tests.factories import make_incident

    client, me = as_role("support")
    incident = make_incident(make_contact(), subject="Leaking valve")
    now = datetime.now(UTC).replace(microsecond=0)
    url = f"/agenda/incidents/{incident.id}/meetings"
    counts = []
    for total in (2, 14):
        while len(events()) < total:
            n = len(events())
            make_event(
                make_user(),
                now + timedelta(days=n - 7),
                title=f"Meeting {n}",
                incident=incident,
                private=n % 3 == 0,
                attendees=[me] if n % 6 == 0 else [],
                report="Done." if n < 7 else None,
            )
        db.session.commit()
        response = client.get(url, headers=htmx_headers("div#incident-meetings"))
        counts.append(int(response.headers["X-SQL-Queries"]))
    assert counts[0] == counts[1] <= 4, counts
    page = response.text
    # The next five in time order, then the last five, the latest first.
    shown = re.findall(r'href="/agenda/events/\d+">([^<]+)</a>', page)
    # Private: 3 and 9 (busy to me), 6 (I am invited to it).
    assert shown == [
        *("Meeting 7", "Meeting 8", "Busy", "Meeting 10", "Meeting 11"),
        *("Meeting 6", "Meeting 5", "Meeting 4", "Busy", "Meeting 2"),
    ]
    assert page.count("report written") == 4
