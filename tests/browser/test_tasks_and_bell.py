"""Tasks and the bell in Chromium: a task is done in one click (and undone in one), a task is
added by typing and one click, and a reminder delivered by the worker shows in the bell
without a reload; opening it takes one more click.
"""

import re
from datetime import timedelta

import pytest
from playwright.sync_api import Page, expect
from rq import Queue

from crm.jobs.reminders import sweep_reminders
from crm.services.reminders import now, schedule_event, schedule_task
from tests import factories
from worker import InProcessWorker, worker_connection

pytestmark = pytest.mark.browser


def test_complete_a_task_in_one_click_and_undo(
    page: Page, seed, sales_user, signed_in, clicks, tmp_path
):
    task = factories.make_task(
        sales_user, now() + timedelta(hours=2), title="Call back Anne Martin"
    )
    factories.make_task(sales_user, now() - timedelta(days=1), title="Send the brochure")
    seed.commit()
    signed_in(page, sales_user)
    page.goto("/tasks")
    row = page.locator(f"#task-{task.id}")
    with clicks.task("complete a task", 1):
        clicks.click(row.get_by_role("button", name="Mark as done: Call back Anne Martin"))
        expect(row).to_have_class(re.compile(r"\bis-done\b"))
        expect(page.locator(".toast")).to_contain_text("Done: Call back Anne Martin")
    with clicks.task("undo a completed task", 1):
        clicks.click(row.get_by_role("button", name="Undo"))
        expect(row).not_to_have_class(re.compile(r"\bis-done\b"))
    expect(page.locator(".group-overdue")).to_contain_text("Send the brochure")
    page.screenshot(path=tmp_path / "tasks.png", full_page=True)


def test_quick_add_a_task_by_typing_and_one_click(page: Page, seed, sales_user, signed_in, clicks):
    signed_in(page, sales_user)
    page.goto("/tasks")
    with clicks.task("add a task due today", 1):
        page.locator("#task-list-title").focus()
        page.keyboard.insert_text("Prepare the demo")
        page.locator("#task-list-due_date").fill(now().astimezone().date().isoformat())
        clicks.click(page.get_by_role("button", name="Add task"))
        expect(page.locator("#task-groups")).to_contain_text("Prepare the demo")
    expect(page.locator("#task-list-title")).to_have_value("")


def test_reminder_arrives_in_the_bell_without_reload(
    page: Page, app, seed, sales_user, signed_in, clicks, csrf_app, monkeypatch, tmp_path
):
    monkeypatch.setitem(csrf_app.config, "NOTIFICATION_POLL_SECONDS", 1)
    organizer = factories.make_user(name="Marc Dubois")
    start = now().replace(second=0, microsecond=0) + timedelta(minutes=10)
    event = factories.make_event(
        organizer, start, title="Meeting with Acme", attendees=[sales_user]
    )
    schedule_event(event)
    seed.commit()
    signed_in(page, sales_user)
    page.goto("/tasks")
    expect(page.locator("#bell-count")).to_have_text("")

    # The sweeper finds the due reminders; a worker (in process here) delivers them.
    assert sweep_reminders()["enqueued"] == 4  # two people, in-app and email each
    connection = worker_connection(app)
    queues = [Queue(name, connection=connection) for name in ("default", "mail")]
    InProcessWorker(queues, connection=connection, app=app).work(burst=True)

    bell = page.locator("#bell-count")
    expect(bell).to_have_text("1")  # the poll brought it, no reload
    with clicks.task("open a reminder from the bell", 2):
        clicks.click(page.locator("#bell > summary"))
        menu = page.locator("#bell-panel")
        expect(menu).to_contain_text("Meeting with Acme at ")
        page.screenshot(path=tmp_path / "bell.png")
        clicks.click(menu.get_by_role("button", name=re.compile("Meeting with Acme")))
        # The reminder opens the meeting itself.
        expect(page).to_have_url(re.compile(r"/agenda/events/\d+$"))
        expect(page.locator("main")).to_contain_text("Meeting with Acme")
    expect(page.locator("#bell-count")).to_have_text("")


def test_task_reminder_also_reaches_the_bell(
    page: Page, app, seed, sales_user, signed_in, csrf_app, monkeypatch
):
    monkeypatch.setitem(csrf_app.config, "NOTIFICATION_POLL_SECONDS", 1)
    sales_user.email_reminders = False
    task = factories.make_task(sales_user, now() + timedelta(minutes=5), title="Call the bank")
    schedule_task(task)
    seed.commit()
    signed_in(page, sales_user)
    page.goto("/")
    expect(page.locator(".my-day")).to_contain_text("Call the bank")
    sweep_reminders()
    connection = worker_connection(app)
    InProcessWorker([Queue("default", connection=connection)], connection=connection, app=app).work(
        burst=True
    )
    expect(page.locator("#bell-count")).to_have_text("1")


def test_a_long_task_list_loads_the_rest_of_a_group_as_one_scrolls(
    page: Page, seed, sales_user, signed_in, clicks
):
    from crm.services.tasks import GROUP_FIRST

    moment = now()
    for day in range(GROUP_FIRST + 30):
        factories.make_task(sales_user, moment + timedelta(days=day + 1), title=f"Call {day}")
    for hour in range(GROUP_FIRST + 2):
        factories.make_task(sales_user, moment - timedelta(hours=hour + 1), title=f"Late {hour}")
    seed.commit()
    signed_in(page, sales_user)
    page.goto("/tasks")
    overdue = page.locator(".group-overdue .task-row")
    upcoming = page.locator(".group-upcoming .task-row")
    expect(overdue).to_have_count(GROUP_FIRST)
    expect(page.locator(".group-overdue .badge")).to_have_text(str(GROUP_FIRST + 2))
    # The last group goes on as one scrolls down to its end, page after page.
    expect(upcoming).to_have_count(GROUP_FIRST)
    # To the bottom of the page, as a user scrolls (not by the loading row itself: htmx may
    # already be swapping it out when it comes into view). The next page may follow the
    # first at once, when its loading row lands in view: only the first step is waited for.
    page.keyboard.press("End")
    expect(upcoming).not_to_have_count(GROUP_FIRST)
    page.keyboard.press("End")
    expect(upcoming).to_have_count(GROUP_FIRST + 30)
    expect(page.locator("#more-upcoming")).to_have_count(0)
    expect(upcoming.last).to_contain_text(f"Call {GROUP_FIRST + 29}")
    # A group above others waits for a click, so that scrolling reaches the groups below.
    expect(overdue).to_have_count(GROUP_FIRST)
    with clicks.task("see the rest of the overdue tasks", 1):
        clicks.click(page.get_by_role("link", name="+2 more"))
        expect(overdue).to_have_count(GROUP_FIRST + 2)
    # What came in works as the rest: done in one click.
    clicks.click(overdue.last.get_by_role("button", name=re.compile("Mark as done")))
    expect(overdue.last).to_have_class(re.compile(r"\bis-done\b"))
