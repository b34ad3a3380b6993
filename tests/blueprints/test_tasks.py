"""Tasks: my tasks grouped in the viewer's zone, quick-add, one-click completion with undo,
inline edit, delete, record panels, the follow-up proposed after a call, the start page."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from crm.extensions import db
from crm.models import Task
from crm.models.agenda import Reminder
from crm.services.reminders import now
from tests.conftest import htmx_headers
from tests.factories import make_company, make_contact, make_event, make_task, make_team, make_user


def _group(html: str, name: str) -> list[str]:
    match = re.search(rf'class="task-group group-{name}">(.*?)</section>', html, re.S)
    return re.findall(r'class="task-title"[^>]*>([^<]+)</a>', match.group(1)) if match else []


@pytest.fixture
def rep(as_role):
    return as_role("sales", timezone="Europe/Paris")


def test_my_tasks_are_grouped_overdue_today_upcoming_no_date(rep):
    client, me = rep
    moment = now()
    make_task(me, moment - timedelta(hours=2), title="Call back Anne")
    make_task(me, None, title="Read the brochure")
    make_task(me, moment + timedelta(days=3), title="Send the quote")
    make_task(make_user(), moment, title="Somebody elses")
    make_task(me, moment - timedelta(days=1), title="Done already", status="done")
    db.session.commit()

    html = client.get("/tasks").text

    assert _group(html, "overdue") == ["Call back Anne"]
    assert _group(html, "upcoming") == ["Send the quote"]
    assert _group(html, "no_date") == ["Read the brochure"]
    assert "Somebody else" not in html and "Done already" not in html
    done = client.get("/tasks?status=done", headers=htmx_headers("div#task-groups")).text
    assert "<html" not in done and "Done already" in done


def test_each_group_shows_its_soonest_and_the_rest_a_page_at_a_time(rep, monkeypatch, app):
    from crm.services import tasks as task_service

    monkeypatch.setattr(task_service, "GROUP_FIRST", 3)
    monkeypatch.setitem(app.config, "PAGE_SIZE", 2)
    client, me = rep
    moment = now()
    for day in range(6):
        make_task(me, moment + timedelta(days=day + 1), title=f"Call {day}")
    make_task(me, moment - timedelta(hours=1), title="Late")
    db.session.commit()

    html = client.get("/tasks").text

    assert _group(html, "overdue") == ["Late"]
    assert _group(html, "upcoming") == ["Call 0", "Call 1", "Call 2"]
    # The group's count is all of it; its last row asks for the rest, as one scrolls to it.
    assert re.search(r'group-upcoming">\s*<h2>Upcoming <span class="badge">6</span>', html)
    more = re.search(
        r'<li id="more-upcoming"[^>]*><a href="([^"]+)"[^>]*hx-trigger="click, revealed"[^>]*>\+3 more</a>',
        html,
    )
    assert more and 'id="more-overdue"' not in html
    url = more.group(1).replace("&amp;", "&")

    page = client.get(url, headers=htmx_headers("li#more-upcoming"))
    assert "<html" not in page.text and "<section" not in page.text
    assert re.findall(r'class="task-title"[^>]*>([^<]+)</a>', page.text) == ["Call 3", "Call 4"]
    last = re.search(r'<li id="more-upcoming"[^>]*><a href="([^"]+)"[^>]*>\+1 more</a>', page.text)
    page = client.get(last.group(1).replace("&amp;", "&"), headers=htmx_headers("li#more-upcoming"))
    assert re.findall(r'class="task-title"[^>]*>([^<]+)</a>', page.text) == ["Call 5"]
    assert "more-upcoming" not in page.text

    # Without JavaScript the link opens the page, that group going on from there.
    whole = client.get(url).text
    assert _group(whole, "upcoming") == ["Call 3", "Call 4"] and _group(whole, "overdue") == [
        "Late"
    ]


def test_groups_are_counted_in_the_database_as_they_are_decided_in_python(as_role):
    """A team across zones: each group's tasks by SQL are those group_open_tasks() puts
    there, tasks due at a time by the viewer's clock, tasks due on a day by their
    assignee's calendar."""
    from zoneinfo import ZoneInfo

    from crm.services import tasks as task_service
    from crm.services.recurrence import local_midnight

    team = make_team()
    client, manager = as_role("manager", team=team, timezone="Europe/Paris")
    far = make_user(team=team, timezone="Pacific/Auckland")
    west = make_user(team=team, timezone="America/Los_Angeles")
    paris = ZoneInfo("Europe/Paris")
    moment = now()
    for person in (manager, far, west):
        zone = ZoneInfo(person.timezone)
        today = moment.astimezone(zone).date()
        for days in (-1, 0, 1, 2):
            make_task(person, local_midnight(today + timedelta(days=days), zone), all_day=True)
        for hours in (-30, -2, 1, 5, 20, 40):
            make_task(person, moment + timedelta(hours=hours))
        make_task(person, None)
    db.session.commit()

    groups = task_service.open_task_groups(manager, "team", paris, at=moment, first=100)
    everything = db.session.scalars(select(Task).where(Task.status == "open")).all()
    expected = task_service.group_open_tasks(everything, paris, moment)
    for group in groups:
        want = sorted(t.id for t in getattr(expected, group.name))
        assert sorted(t.id for t in group.tasks) == want, group.name
        assert group.count == len(want), group.name
    assert sum(group.count for group in groups) == len(everything) == 33


def test_all_day_task_due_today_in_the_viewers_zone(as_role):
    client, me = as_role("sales", timezone="Pacific/Auckland")
    from zoneinfo import ZoneInfo

    from crm.services.recurrence import local_midnight

    today_there = now().astimezone(ZoneInfo("Pacific/Auckland")).date()
    make_task(
        me,
        local_midnight(today_there, ZoneInfo("Pacific/Auckland")),
        all_day=True,
        title="Today there",
    )
    db.session.commit()
    assert _group(client.get("/tasks").text, "today") == ["Today there"]


def test_quick_add_with_time_link_and_reminder(rep):
    client, me = rep
    contact = make_contact("Anne", "Martin")
    db.session.commit()
    response = client.post(
        "/tasks",
        data={
            "title": "Send the offer",
            "due_date": "2030-03-04",
            "due_time": "14:30",
            "assignee": str(me.id),
            "link": f"contact:{contact.id}",
            "context": "list",
        },
        headers=htmx_headers("form#task-quick-add"),
    )
    assert response.status_code == 200
    assert "crm:toast" in response.headers["HX-Trigger"]
    assert 'hx-target="#task-groups"' in response.text and "Send the offer" in response.text
    task = db.session.scalars(select(Task)).one()
    # 14:30 in Paris in March (winter time) is 13:30 UTC.
    assert task.due_at == datetime(2030, 3, 4, 13, 30, tzinfo=UTC) and not task.all_day
    assert (task.assignee_id, task.created_by_id, task.contact_id) == (me.id, me.id, contact.id)
    reminders = db.session.scalars(select(Reminder).where(Reminder.task_id == task.id)).all()
    assert {r.channel for r in reminders} == {"in_app", "email"}
    assert {r.remind_at for r in reminders} == {datetime(2030, 3, 4, 13, 15, tzinfo=UTC)}


def test_quick_add_errors_answer_422_beside_the_fields(rep):
    client, me = rep
    response = client.post(
        "/tasks",
        data={"title": "", "due_time": "10:00", "assignee": str(me.id), "context": "list"},
        headers=htmx_headers("form#task-quick-add"),
    )
    assert response.status_code == 422
    assert (
        "This field is required." in response.text and "Give a day for this time." in response.text
    )
    assert db.session.scalars(select(Task)).all() == []


def test_cannot_link_a_record_out_of_scope_or_assign_outside_the_team(as_role):
    client, me = as_role("sales")
    deal_owner = make_user()
    from tests.factories import make_deal

    deal = make_deal(owner=deal_owner)
    db.session.commit()
    response = client.post(
        "/tasks",
        data={"title": "Spy", "assignee": str(me.id), "link": f"deal:{deal.id}", "context": "list"},
        headers=htmx_headers("form#task-quick-add"),
    )
    assert response.status_code == 422 and db.session.scalars(select(Task)).all() == []
    response = client.post(
        "/tasks", data={"title": "Push", "assignee": str(deal_owner.id), "context": "list"}
    )
    assert response.status_code == 422


def test_complete_in_one_click_then_undo(rep):
    client, me = rep
    task = make_task(me, now() + timedelta(hours=3), title="Ring Paul")
    from crm.services.reminders import schedule_task

    schedule_task(task)
    db.session.commit()

    response = client.post(f"/tasks/{task.id}/complete", headers=htmx_headers(f"li#task-{task.id}"))
    assert response.status_code == 200
    assert "is-done" in response.text and "Undo" in response.text
    assert "crm:toast" in response.headers["HX-Trigger"]
    db.session.expire_all()
    assert task.status == "done" and task.completed_at is not None
    assert {r.status for r in db.session.scalars(select(Reminder))} == {"cancelled"}
    # A second click (double submit) changes nothing.
    assert client.post(f"/tasks/{task.id}/complete", headers=htmx_headers()).status_code == 200

    response = client.post(f"/tasks/{task.id}/reopen", headers=htmx_headers(f"li#task-{task.id}"))
    db.session.expire_all()
    assert task.status == "open" and "task-check" in response.text
    assert {r.status for r in db.session.scalars(select(Reminder))} == {"pending"}


def test_inline_edit_and_delete(rep):
    client, me = rep
    task = make_task(me, None, title="Draft")
    db.session.commit()
    editor = client.get(f"/tasks/{task.id}/edit", headers=htmx_headers(f"li#task-{task.id}"))
    assert 'value="Draft"' in editor.text and "<html" not in editor.text
    assert "<html" in client.get(f"/tasks/{task.id}/edit").text  # a page of its own when opened

    bad = client.post(
        f"/tasks/{task.id}",
        data={"title": "", "assignee": str(me.id)},
        headers=htmx_headers(f"li#task-{task.id}"),
    )
    assert bad.status_code == 422
    saved = client.post(
        f"/tasks/{task.id}",
        data={"title": "Final", "due_date": "2030-01-02", "assignee": str(me.id), "reminder": "60"},
        headers=htmx_headers(f"li#task-{task.id}"),
    )
    assert saved.status_code == 200 and "Final" in saved.text
    db.session.expire_all()
    assert task.all_day and task.reminder_minutes == 60
    assert task.due_at == datetime(2030, 1, 1, 23, tzinfo=UTC)  # midnight in Paris

    response = client.post(f"/tasks/{task.id}/delete", headers=htmx_headers(f"li#task-{task.id}"))
    assert response.status_code == 200 and response.text == ""
    db.session.expire_all()
    assert db.session.scalars(select(Task)).all() == []


def test_another_users_task_is_a_404(rep, as_role):
    client, _me = rep
    other_task = make_task(make_user(), None)
    db.session.commit()
    assert client.post(f"/tasks/{other_task.id}/complete").status_code == 404
    assert client.get(f"/tasks/{other_task.id}/edit").status_code == 404


def test_manager_sees_the_team_filter(as_role):
    team = make_team()
    client, manager = as_role("manager", team=team)
    member = make_user(team=team)
    make_task(member, None, title="Member task")
    db.session.commit()
    assert "Member task" not in client.get("/tasks").text
    assert "Member task" in client.get("/tasks?assignee=team").text
    assert "Member task" in client.get(f"/tasks?assignee={member.id}").text


def test_record_panels_show_open_tasks_and_add_prefilled(rep):
    client, me = rep
    company = make_company("Acme")
    contact = make_contact("Anne", "Martin", company=company)
    make_task(me, None, title="Visit Acme", contact=contact, company=company)
    db.session.commit()
    for url in (f"/contacts/{contact.id}", f"/companies/{company.id}"):
        html = client.get(url).text
        assert 'id="tasks-panel"' in html and "Visit Acme" in html, url
    response = client.post(
        "/tasks",
        data={
            "title": "Second visit",
            "assignee": str(me.id),
            "link": f"company:{company.id}",
            "context": f"company:{company.id}",
        },
        headers=htmx_headers("section#tasks-panel"),
    )
    assert response.status_code == 200 and 'id="tasks-panel"' in response.text
    assert "Second visit" in response.text and "Visit Acme" in response.text


def test_link_picker_lists_matching_records(rep):
    client, _me = rep
    make_contact("Anne", "Martin")
    make_company("Martin & fils")
    db.session.commit()
    html = client.get("/tasks/links?link_q=martin").text
    assert html.count('type="radio" name="link"') == 3  # a contact, a company, and "None"


def test_follow_up_proposed_after_a_call_and_accepted(rep):
    client, me = rep
    contact = make_contact("Anne", "Martin")
    db.session.commit()
    response = client.post(
        f"/contacts/{contact.id}/activities",
        data={"kind": "call", "outcome": "reached", "body": "She wants a quote"},
        headers=htmx_headers("form#composer"),
    )
    assert response.status_code == 200
    assert 'hx-target="#follow-up-slot"' in response.text
    assert "Follow up: Anne Martin" in response.text
    activity_id = re.search(
        r'name="source_activity" type="hidden" value="(\d+)"', response.text
    ).group(1)
    due_date = re.search(r'name="due_date" type="date" value="([\d-]+)"', response.text).group(1)
    assert 'name="due_time" type="time" value="09:00"' in response.text
    link = re.search(r'id="[\w-]+" name="link" type="hidden" value="([^"]+)"', response.text).group(
        1
    )
    assert link == f"contact:{contact.id}"

    accepted = client.post(
        "/tasks",
        data={
            "title": "Follow up: Anne Martin",
            "due_date": due_date,
            "due_time": "09:00",
            "assignee": str(me.id),
            "source_activity": activity_id,
            "link": link,
            "context": f"followup:{contact.id}",
        },
        headers=htmx_headers("form#follow-up"),
    )
    assert accepted.status_code == 200
    assert "Follow-up planned" in accepted.text and 'hx-target="#tasks-panel"' in accepted.text
    task = db.session.scalars(select(Task)).one()
    assert task.source_activity_id == int(activity_id) and task.contact_id == contact.id
    assert task.due_at.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Paris")).hour == 9
    assert task.due_at.astimezone(UTC).weekday() < 5

    note = client.post(
        f"/contacts/{contact.id}/activities",
        data={"kind": "note", "body": "x"},
        headers=htmx_headers("form#composer"),
    )
    assert "follow-up-slot" not in note.text


def test_follow_up_due_skips_the_weekend():
    from crm.services.tasks import add_working_days

    friday = datetime(2030, 3, 8).date()
    assert add_working_days(friday, 2) == datetime(2030, 3, 12).date()  # Tuesday


def test_start_page_shows_my_day(rep):
    client, me = rep
    make_task(me, now() - timedelta(days=1), title="Late task")
    make_task(me, now() + timedelta(days=5), title="Later task")
    start = now().replace(second=0, microsecond=0) + timedelta(minutes=1)
    make_event(make_user(), start, title="Team sync", attendees=[me])
    make_event(make_user(), start, title="Not mine")
    db.session.commit()
    html = client.get("/").text
    assert "My day" in html and "Late task" in html and "Later task" not in html
    # The event may fall tomorrow if the suite runs a minute before midnight in Paris.
    local = start.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Paris"))
    if local.date() == now().astimezone(local.tzinfo).date():
        assert "Team sync" in html
    assert "Not mine" not in html
