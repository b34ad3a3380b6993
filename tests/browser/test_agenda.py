"""The agenda in Chromium: an event created with one click on an empty slot and a title
typed, then moved to another day by dragging it; the week and team views as a user sees them."""

import os
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Page, expect

from crm.extensions import db
from crm.models import Event
from tests import factories
from tests.browser.conftest import Clicks

pytestmark = pytest.mark.browser

PARIS = ZoneInfo("Europe/Paris")
# A Monday far enough ahead that nothing of the test has started yet.
MONDAY = date.today() + timedelta(days=7 - date.today().weekday() + 14)
SHOTS = os.environ.get("CRM_SCREENSHOTS")  # a folder to keep the screenshots in, to look at


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=PARIS).astimezone(UTC)


@pytest.fixture
def planner(seed):
    user = factories.make_user(role="sales", name="Sarah Connor", timezone="Europe/Paris")
    seed.commit()
    return user


def column(page: Page, day: date):
    return page.locator(f'.tg-col[data-date="{day.isoformat()}"]')


def slot_height(page: Page, day: date) -> float:
    return column(page, day).bounding_box()["height"] / 96


def stored(event_id: int) -> Event:
    db.session.expire_all()
    return db.session.get(Event, event_id)


def shoot(page: Page, tmp_path, name: str) -> None:
    folder = SHOTS or tmp_path
    page.screenshot(path=f"{folder}/{name}.png", full_page=True)


def test_create_an_event_by_clicking_a_slot(
    page: Page, clicks: Clicks, signed_in, planner, tmp_path
):
    signed_in(page, planner)
    page.goto(f"/agenda?view=week&date={MONDAY.isoformat()}")
    tuesday = MONDAY + timedelta(days=1)
    expect(column(page, tuesday)).to_be_visible()
    page.evaluate("window.__noReload = true")
    dialog = page.locator("#event-dialog")

    with clicks.task("create an event by clicking a slot (title typed, Enter)", budget=2):
        # 10:00 is the 41st quarter of an hour (row 40 counted from 0).
        clicks.click(
            column(page, tuesday), position={"x": 30, "y": 40 * slot_height(page, tuesday) + 4}
        )
        expect(dialog).to_be_visible()
        expect(dialog.locator(".topbar")).to_have_count(0)  # the form alone, not a page in a page
        title = dialog.get_by_placeholder("Add a title")
        expect(title).to_be_focused()
        expect(dialog.locator("input[name=start_time]")).to_have_value("10:00")
        expect(dialog.locator("input[name=end_time]")).to_have_value("11:00")
        shoot(page, tmp_path, "agenda-new-event")
        page.keyboard.insert_text("Demo with Acme")
        page.keyboard.press("Enter")
        expect(page.locator("#toasts .toast").filter(has_text="Event created.")).to_be_visible()
    expect(dialog).to_be_hidden()
    block = column(page, tuesday).locator(".ev", has_text="Demo with Acme")
    expect(block).to_be_visible()
    assert page.evaluate("window.__noReload === true"), "the page was reloaded"

    event = db.session.scalars(db.select(Event).where(Event.title == "Demo with Acme")).one()
    assert event.starts_at == at(tuesday, 10)
    assert event.ends_at == at(tuesday, 11)
    assert event.organizer_id == planner.id and event.timezone == "Europe/Paris"
    shoot(page, tmp_path, "agenda-week")


def test_drag_an_event_to_another_day(page: Page, clicks: Clicks, signed_in, planner, seed):
    event = factories.make_event(planner, at(MONDAY, 9), minutes=60, title="Weekly review")
    seed.commit()
    signed_in(page, planner)
    page.goto(f"/agenda?view=week&date={MONDAY.isoformat()}")
    wednesday = MONDAY + timedelta(days=2)
    block = column(page, MONDAY).locator(".ev", has_text="Weekly review")
    expect(block).to_be_visible()
    page.evaluate("window.__noReload = true")

    with clicks.task("move an event to another day (one drag)", budget=1):
        box = block.bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + 8
        target = column(page, wednesday).bounding_box()
        page.mouse.move(x, y)
        page.mouse.down()
        page.mouse.move(x + 10, y, steps=2)
        page.mouse.move(target["x"] + target["width"] / 2, y, steps=6)
        page.mouse.up()
        clicks.count += 1
        expect(page.locator("#toasts .toast").filter(has_text="Event moved.")).to_be_visible()
    expect(column(page, wednesday).locator(".ev", has_text="Weekly review")).to_be_visible()
    expect(column(page, MONDAY).locator(".ev", has_text="Weekly review")).to_have_count(0)
    expect(page.locator("#event-dialog")).to_be_hidden()  # the drop did not open the event
    assert page.evaluate("window.__noReload === true"), "the page was reloaded"
    assert stored(event.id).starts_at == at(wednesday, 9)
    assert stored(event.id).ends_at == at(wednesday, 10)

    page.reload()
    expect(column(page, wednesday).locator(".ev", has_text="Weekly review")).to_be_visible()


def test_team_view_shows_each_person_and_plans_for_them(
    page: Page, clicks: Clicks, signed_in, seed, tmp_path
):
    team = factories.make_team("Sales West")
    manager = factories.make_user(
        role="manager", name="Maria Manager", team=team, timezone="Europe/Paris"
    )
    reps = [
        factories.make_user(role="sales", name=name, team=team, timezone="Europe/Paris")
        for name in ("Ann Archer", "Bob Baker", "Cid Carter")
    ]
    factories.make_event(reps[0], at(MONDAY, 9), title="Visit Globex", kind="visit")
    factories.make_event(
        reps[1], at(MONDAY + timedelta(days=1), 14), title="Call Initech", kind="call"
    )
    factories.make_event(reps[2], at(MONDAY + timedelta(days=2), 11), title="Secret", private=True)
    seed.commit()
    signed_in(page, manager)
    page.goto(f"/agenda?view=team&date={MONDAY.isoformat()}")
    expect(page.locator(".tm-person")).to_have_count(4)
    expect(page.locator(".chip", has_text="Visit Globex")).to_be_visible()
    expect(page.locator(".chip", has_text="Busy")).to_be_visible()
    expect(page.locator(".chip", has_text="Secret")).to_have_count(0)

    # Plan for Bob on Thursday: one click on his empty cell, a title, Enter.
    thursday = MONDAY + timedelta(days=3)
    with clicks.task("plan an event for a team member (team view)", budget=2):
        clicks.click(
            page.locator(
                f'.tm-cell[data-person="{reps[1].id}"][data-date="{thursday.isoformat()}"]'
            )
        )
        dialog = page.locator("#event-dialog")
        expect(dialog).to_be_visible()
        expect(dialog.locator("select[name=organizer]")).to_have_value(str(reps[1].id))
        page.keyboard.insert_text("Pipeline review")
        page.keyboard.press("Enter")
        expect(page.locator("#toasts .toast").filter(has_text="Event created.")).to_be_visible()
    cell = page.locator(f'.tm-cell[data-person="{reps[1].id}"][data-date="{thursday.isoformat()}"]')
    expect(cell.locator(".chip", has_text="Pipeline review")).to_be_visible()
    created = db.session.scalars(db.select(Event).where(Event.title == "Pipeline review")).one()
    assert created.organizer_id == reps[1].id
    assert created.starts_at == at(thursday, 9)
    shoot(page, tmp_path, "agenda-team")


def test_resize_by_the_bottom_edge_and_move_in_the_month(
    page: Page, clicks: Clicks, signed_in, planner, seed, tmp_path
):
    event = factories.make_event(planner, at(MONDAY, 9), minutes=60, title="Workshop")
    seed.commit()
    signed_in(page, planner)
    page.goto(f"/agenda?view=week&date={MONDAY.isoformat()}")
    block = column(page, MONDAY).locator(".ev", has_text="Workshop")
    edge = block.locator(".ev-resize")
    box = edge.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    with clicks.task("make an event longer (drag its bottom edge)", budget=1):
        page.mouse.move(x, y)
        page.mouse.down()
        page.mouse.move(x, y + 10, steps=2)
        page.mouse.move(x, y + 2 * slot_height(page, MONDAY), steps=4)  # half an hour more
        page.mouse.up()
        clicks.count += 1
        expect(page.locator("#toasts .toast").filter(has_text="Event moved.")).to_be_visible()
    assert stored(event.id).ends_at == at(MONDAY, 10, 30)

    page.goto(f"/agenda?view=month&date={MONDAY.isoformat()}")
    chip = page.locator(f'.mg-cell[data-date="{MONDAY.isoformat()}"] .chip', has_text="Workshop")
    friday = page.locator(f'.mg-cell[data-date="{(MONDAY + timedelta(days=4)).isoformat()}"]')
    start, end = chip.bounding_box(), friday.bounding_box()
    with clicks.task("move an event to another day of the month (one drag)", budget=1):
        page.mouse.move(start["x"] + 20, start["y"] + 6)
        page.mouse.down()
        page.mouse.move(start["x"] + 30, start["y"] + 10, steps=2)
        page.mouse.move(end["x"] + end["width"] / 2, end["y"] + end["height"] / 2, steps=6)
        page.mouse.up()
        clicks.count += 1
        expect(page.locator("#toasts .toast").filter(has_text="Event moved.")).to_be_visible()
    expect(friday.locator(".chip", has_text="Workshop")).to_be_visible()
    moved = stored(event.id)
    assert (moved.starts_at, moved.ends_at) == (
        at(MONDAY + timedelta(days=4), 9),
        at(MONDAY + timedelta(days=4), 10, 30),
    )
    shoot(page, tmp_path, "agenda-month")

    # The event opens in the dialog with one click.
    clicks.click(friday.locator(".chip", has_text="Workshop"))
    dialog = page.locator("#event-dialog")
    expect(dialog.get_by_role("heading", name="Workshop")).to_be_visible()
    shoot(page, tmp_path, "agenda-event-dialog")


def test_plan_a_meeting_from_an_incident_page(
    page: Page, clicks: Clicks, signed_in, seed, tmp_path
):
    agent = factories.make_user(role="support", name="Sam Support", timezone="Europe/Paris")
    company = factories.make_company("Acme Printing")
    contact = factories.make_contact("Linus", "Torvalds", company=company)
    incident = factories.make_incident(contact, subject="Printer jams every morning")
    seed.commit()
    signed_in(page, agent)
    page.goto(f"/incidents/{incident.id}")
    meetings = page.locator("#incident-meetings")
    expect(meetings).to_contain_text("No meeting about this incident yet.")

    with clicks.task("plan a meeting from an incident's page (day and times typed)", budget=3):
        clicks.click(page.locator(".incident-meetings").get_by_role("link", name="Plan a meeting"))
        form = page.locator("form.event-form")
        expect(form.get_by_placeholder("Add a title")).to_have_value("Printer jams every morning")
        expect(form.locator(".linked-incident")).to_contain_text(
            f"Incident #{incident.id} Printer jams every morning"
        )
        expect(form.locator(".person-chip")).to_contain_text("Linus Torvalds")
        expect(form.locator("input[name=linked_company]")).to_have_value(
            f"Acme Printing (#{company.id})"
        )
        form.locator("input[name=start_date]").fill(MONDAY.isoformat())
        form.locator("input[name=start_time]").fill("10:00")
        form.locator("input[name=end_time]").fill("11:00")
        shoot(page, tmp_path, "agenda-meeting-from-incident")
        clicks.click(form.get_by_role("button", name="Save"))
        block = column(page, MONDAY).locator(".ev", has_text="Printer jams every morning")
        expect(block).to_be_visible()

    db.session.expire_all()
    event = db.session.scalars(db.select(Event)).one()
    assert (event.incident_id, event.contact_id, event.company_id) == (
        incident.id,
        contact.id,
        company.id,
    )
    assert (event.starts_at, event.ends_at) == (at(MONDAY, 10), at(MONDAY, 11))
    clicks.click(block)
    dialog = page.locator("#event-dialog")
    link = dialog.get_by_role("link", name=f"Incident #{incident.id} Printer jams every morning")
    expect(link).to_be_visible()
    clicks.click(link)
    expect(page.locator("#incident-header h1")).to_contain_text("Printer jams every morning")
    expect(meetings.get_by_role("link", name="Printer jams every morning")).to_be_visible()
    expect(meetings).to_contain_text("Upcoming")
    shoot(page, tmp_path, "incident-with-meeting")
