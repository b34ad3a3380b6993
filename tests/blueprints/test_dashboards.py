"""The dashboard page: tabs per role, no amounts for support, bad parameters answered with a
clear message (never a 500), htmx fragments, and a bounded number of SQL queries."""

import re
from datetime import UTC, datetime, timedelta

import pytest

from crm.extensions import db
from crm.models.types import utcnow
from tests.conftest import htmx_headers
from tests.factories import (
    make_activity,
    make_contact,
    make_deal,
    make_incident,
    make_intervention,
    make_pipeline,
    make_task,
    make_team,
    make_user,
)

AMOUNT = "987654.00"
AMOUNT_FORMS = re.compile(r"987[\s,.\u00a0\u202f]?654")


def tab_links(page: str) -> list[str]:
    nav = re.search(r'<nav class="segmented-links dashboard-tabs".*?</nav>', page, re.S)
    return list(dict.fromkeys(re.findall(r"tab=(\w+)", nav.group(0)))) if nav else []


@pytest.mark.parametrize(
    ("role", "tabs"),
    [
        ("admin", ["day", "team", "support"]),
        ("manager", ["day", "team", "support"]),
        ("sales", []),  # one tab: no tab bar
        ("support", ["day", "support"]),
        ("technician", []),
    ],
)
def test_each_role_gets_its_tabs_and_the_navigation_entry(as_role, role, tabs):
    client, _ = as_role(role, team=make_team())
    page = client.get("/dashboard")
    assert page.status_code == 200
    assert tab_links(page.text) == tabs
    assert 'href="/dashboard"' in page.text  # in the side bar, for everybody
    for tab in ("team", "support"):
        status = client.get(f"/dashboard?tab={tab}").status_code
        assert status == (200 if tab in tabs else 403), (role, tab)


def test_the_days_tab_shows_tasks_deals_to_move_and_targets(as_role):
    client, rep = as_role("sales")
    make_task(assignee=rep, title="Call back Durand", due=utcnow() - timedelta(hours=2))
    make_deal(owner=rep, title="Silent deal", created_at=utcnow() - timedelta(days=30))
    db.session.commit()
    page = client.get("/dashboard").text
    assert "Call back Durand" in page
    assert "Silent deal" in page and "No activity for 30 days" in page
    assert "My targets" in page


def test_a_technician_sees_their_week_and_no_deal(as_role):
    client, technician = as_role("technician", name="Tom Tech")
    make_intervention(technicians=[technician], start=datetime.now(UTC) + timedelta(hours=1))
    make_deal(amount=AMOUNT)
    db.session.commit()
    page = client.get("/dashboard").text
    assert "My interventions this week" in page
    assert "Deals to move" not in page and not AMOUNT_FORMS.search(page)


def test_support_never_sees_an_amount_and_the_manager_does(as_role):
    team = make_team()
    rep = make_user(role="sales", team=team)
    make_deal(owner=rep, amount=AMOUNT)
    make_incident(status="new", priority="urgent")
    db.session.commit()
    support, _ = as_role("support")
    for url in (
        "/dashboard",
        "/dashboard?tab=support",
        "/dashboard?tab=support&period=last_quarter",
    ):
        for headers in ({}, htmx_headers("div#dashboard")):
            response = support.get(url, headers=headers)
            assert response.status_code == 200
            assert not AMOUNT_FORMS.search(response.text), url
    manager, _ = as_role("manager", team=team)
    assert AMOUNT_FORMS.search(manager.get("/dashboard?tab=team").text)


def test_the_support_tab_links_its_figures_to_the_queue(as_role):
    client, _ = as_role("support")
    make_incident(status="open", priority="high")
    db.session.commit()
    page = client.get("/dashboard?tab=support").text
    assert 'href="/incidents?view=all&amp;status=open&amp;priority=high">1</a>' in page
    assert "Show the figures" in page  # the backlog chart's table


def test_a_period_switch_under_htmx_answers_the_dashboard_only(as_role):
    client, _ = as_role("manager", team=make_team())
    response = client.get(
        "/dashboard?tab=team&period=last_month", headers=htmx_headers("div#dashboard")
    )
    assert response.status_code == 200
    assert "<html" not in response.text
    assert '<option value="last_month" selected>' in response.text
    # Tab links keep the period.
    assert "period=last_month" in re.search(r'href="([^"]*tab=support[^"]*)"', response.text)[1]


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("tab=nope", 400, "There is no such dashboard"),
        ("tab=team&period=forever", 422, "Choose a period from the list."),
        ("tab=team&period=custom&from=2026-13-01&to=2026-12-31", 422, "Enter a date such as"),
        (
            "tab=support&period=custom&from=2026-03-10&to=2026-03-01",
            422,
            "The end date comes before",
        ),
        ("tab=team&period=custom&from=2026-03-10", 422, "Enter both dates"),
        ("tab=team&team=999999", 422, "Choose a team from the list."),
        ("tab=team&team=abc", 422, "Choose a team from the list."),
    ],
)
def test_bad_parameters_get_a_clear_message_not_a_500(as_role, query, status, message):
    client, _ = as_role("admin")
    for headers in ({}, htmx_headers("div#dashboard")):
        response = client.get(f"/dashboard?{query}", headers=headers)
        assert response.status_code == status, query
        assert message in response.text


def test_custom_dates_start_from_this_month_when_first_chosen(as_role):
    client, _ = as_role("manager", team=make_team())
    page = client.get("/dashboard?tab=team&period=custom").text
    today = datetime.now(UTC).date()  # the user's zone is Europe/Paris: the same month but at night
    assert f'name="from" value="{today.replace(day=1).isoformat()}"'[:28] in page


def _fill(team, count: int, seq: int) -> None:
    """Deals, activities, tasks, incidents and interventions: every widget has rows."""
    pipeline = make_pipeline()
    reps = [make_user(role="sales", team=team) for _ in range(3)]
    contact = make_contact()
    technician = make_user(role="technician")
    now = utcnow()
    for i in range(count):
        rep = reps[i % 3]
        stage = pipeline.stages[i % len(pipeline.stages)]
        deal = make_deal(pipeline, stage=stage, owner=rep, created_at=now - timedelta(days=i % 40))
        make_activity(contact, ("call", "note", "email", "meeting")[i % 4], author=rep, deal=deal)
        make_incident(status=("new", "open", "waiting")[i % 3], created_at=now - timedelta(days=i))
        make_task(assignee=rep, due=now)
    for i in range(min(count, 5)):
        make_intervention(
            technicians=[technician], start=now + timedelta(days=seq * 20 + i, hours=1)
        )
    db.session.commit()


def _queries(client, url: str) -> int:
    response = client.get(url)
    assert response.status_code == 200, url
    return int(response.headers["X-SQL-Queries"])


def test_each_tab_runs_a_bounded_number_of_queries(as_role):
    team = make_team()
    client, manager = as_role("manager", team=team)
    make_deal(owner=manager, created_at=utcnow() - timedelta(days=30))
    db.session.commit()
    urls = [
        "/dashboard",
        "/dashboard?tab=team",
        "/dashboard?tab=team&period=last_quarter",
        "/dashboard?tab=support",
    ]
    _fill(team, 6, 0)
    small = {url: _queries(client, url) for url in urls}
    _fill(team, 120, 1)
    large = {url: _queries(client, url) for url in urls}
    assert large == small
    assert max(large.values()) <= 22, large
