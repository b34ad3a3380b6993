"""A lead from the website to the rep, in Chromium: a visitor sends the hosted web form
(one click), the lead is scored and routed; the rep it went to finds it at the top of the
hot list with the rules that made its score, opens it (two clicks from anywhere) and has
the call-back task and the routing reason in front of them."""

import re

import pytest
from playwright.sync_api import Page, expect
from rq import Queue
from sqlalchemy import select

from crm.models import Contact, ScoringRule
from crm.models.types import utcnow
from crm.services import leads
from tests import factories
from worker import InProcessWorker, worker_connection

pytestmark = pytest.mark.browser


def test_a_visitor_sends_the_form_and_the_routed_rep_calls_back(
    page: Page, browser, app, seed, signed_in, clicks, base_url, tmp_path
):
    team = factories.make_team("Sales France")
    other = factories.make_user(role="sales", team=team, name="Ada Byron", email="ada@example.com")
    rep = factories.make_user(role="sales", team=team, name="Sarah Connor")
    other.last_lead_assigned_at = utcnow()  # Ada had the last lead: Sarah's turn
    factories.make_company("Radium SA", employees=120)
    seed.add_all(
        [
            ScoringRule(
                name="Sent a web form",
                points=15,
                position=0,
                condition={"type": "activity", "kind": "web_form", "within_days": 30},
            ),
            ScoringRule(
                name="Company of 50 or more",
                points=20,
                position=1,
                condition={"type": "field", "field": "company.employees", "op": "gt", "value": 49},
            ),
        ]
    )
    web_form = leads.create_lead_form("Contact us", "web_form", None, True)
    seed.commit()

    # The visitor: a browser of their own, not signed in.
    visitor = browser.new_context(base_url=base_url).new_page()
    visitor.set_default_timeout(5_000)
    visitor.goto(f"/leads/f/{web_form.token}")
    with clicks.task("send the web form (visitor)", 1):
        visitor.get_by_label("Name").fill("Marie Curie")
        visitor.get_by_label("Email").fill("marie@radium.example")
        visitor.get_by_label("Company").fill("Radium SA")
        visitor.get_by_label("Message").fill("Could you call me about a quote?")
        clicks.click(visitor.get_by_role("button", name="Send"))
        expect(visitor.locator("h1")).to_have_text("Thank you")
    visitor.context.close()

    # The rescore the capture enqueued runs in the worker (in process here).
    connection = worker_connection(app)
    InProcessWorker([Queue("default", connection=connection)], connection=connection, app=app).work(
        burst=True
    )
    seed.expire_all()
    lead = seed.scalars(select(Contact).where(Contact.email == "marie@radium.example")).one()
    assert lead.owner_id == rep.id and lead.score == 35

    signed_in(page, rep)
    page.goto("/")
    expect(page.locator("#bell-count")).to_have_text("1")
    with clicks.task("open the new lead from the hot list", 2):
        clicks.click(page.locator("nav.sidebar").get_by_role("link", name="Leads"))
        first_row = page.locator("#lead-rows tr").first
        expect(first_row).to_contain_text("Marie Curie")
        expect(first_row).to_contain_text("35")
        expect(first_row).to_contain_text("Sent a web form +15")
        expect(first_row).to_contain_text("Company of 50 or more +20")
        page.screenshot(path=tmp_path / "hot-leads.png", full_page=True)
        clicks.click(first_row.get_by_role("link", name="Marie Curie"))
        expect(page).to_have_url(re.compile(rf"/contacts/{lead.id}$"))
    panel = page.locator("#lead-score")
    expect(panel).to_contain_text("Sent a web form")
    expect(panel).to_contain_text("Routed: No rule matched: round-robin in Sales France")
    expect(page.locator("#tasks-panel")).to_contain_text("Call new lead Marie Curie")
    expect(page.locator("#timeline")).to_contain_text("Could you call me about a quote?")
    page.screenshot(path=tmp_path / "lead.png", full_page=True)
    assert seed.get(Contact, lead.id).source == "web_form"


def test_an_admin_adds_a_routing_rule_and_tries_a_lead(
    page: Page, seed, signed_in, clicks, tmp_path
):
    admin = factories.make_user(role="admin", name="Alice Admin")
    factories.make_user(role="sales", name="Lyon Rep")
    seed.commit()
    signed_in(page, admin)
    page.goto("/leads/routing")
    with clicks.task("add a routing rule by region", 1):
        form = page.locator("#routing-panel details.rule-add form")
        form.get_by_label("Name").fill("Rhône-Alpes")
        form.get_by_label("French regions").select_option("ARA")
        form.get_by_label("Give to").select_option(label="Lyon Rep")
        clicks.click(form.get_by_role("button", name="Add the rule"))
        expect(page.locator("#routing-panel .rule-list")).to_contain_text("Rhône-Alpes")
    with clicks.task("try a sample lead in the dry run", 1):
        dry = page.locator("#dry-run")
        dry.get_by_label("Country").fill("France")
        dry.get_by_label("Postcode").fill("69003")
        clicks.click(dry.get_by_role("button", name="Try"))
        expect(dry.locator(".dry-run-result")).to_contain_text("Would go to Lyon Rep")
        expect(dry.locator(".dry-run-result")).to_contain_text("Rhône-Alpes")
    page.screenshot(path=tmp_path / "routing.png", full_page=True)
    page.goto("/leads/scoring")
    page.screenshot(path=tmp_path / "scoring.png", full_page=True)
