"""The dashboard and a report in Chromium, the way a manager uses them, counting clicks:
open the dashboard, look at the team, switch the period, read a chart's figures; build a
report by changing selects, open a figure's list, download the CSV."""

import csv
import io
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from crm.models.types import utcnow
from tests import factories
from tests.browser.conftest import Clicks

pytestmark = pytest.mark.browser


@pytest.fixture
def team_data(seed):
    team = factories.make_team("North")
    manager = factories.make_user(role="manager", name="Mia Manager", team=team)
    ann = factories.make_user(role="sales", name="Ann Able", team=team)
    pipeline = factories.make_pipeline("New business")
    pipeline.is_default = True
    stages = pipeline.stages
    now = utcnow()
    for i, stage in enumerate([stages[0], stages[0], stages[3], stages[4]]):
        factories.make_deal(
            pipeline,
            stage=stage,
            owner=ann,
            amount="1500",
            title=f"Deal {i}",
            created_at=now - timedelta(days=3),
        )
    for days in (0.2, 2, 12, 40):
        factories.make_incident(
            status="open", priority="high", created_at=now - timedelta(days=days)
        )
    seed.commit()
    return manager, ann, stages


def test_a_manager_reads_the_dashboard(page: Page, clicks: Clicks, signed_in, team_data):
    manager, _ann, _stages = team_data
    signed_in(page, manager)
    page.goto("/")
    with clicks.task("open the team dashboard, switch period, read a chart's figures", 5):
        clicks.click(page.locator("nav.sidebar").get_by_role("link", name="Dashboard"))
        expect(page.get_by_role("heading", name="My day")).to_be_visible()
        clicks.click(page.locator(".dashboard-tabs").get_by_role("link", name="Team"))
        expect(page.locator("#pipeline-table tfoot")).to_contain_text("4")
        # Choosing a period in the select: one click to open it, counted as one.
        page.get_by_label("Period").select_option("last_quarter")
        clicks.count += 1
        page.wait_for_url("**/dashboard?*period=last_quarter*")
        expect(page.get_by_label("Period")).to_have_value("last_quarter")
        # Open deals are today's whatever the period: still 4.
        expect(page.locator("#pipeline-table tfoot")).to_contain_text("4")
        clicks.click(page.locator(".dashboard-tabs").get_by_role("link", name="Support"))
        page.wait_for_url("**tab=support*period=last_quarter*")
        figures = page.locator("#chart-backlog details")
        clicks.click(figures.get_by_text("Show the figures"))
        expect(figures.locator("table")).to_be_visible()
        expect(figures.locator("tbody tr")).to_have_count(5)
        expect(figures.locator("tbody tr").first).to_contain_text("1")
    # The chart is an image with a name, for screen readers.
    expect(page.locator("#chart-backlog svg[role=img]")).to_have_attribute(
        "aria-label", "Backlog by age"
    )
    # Reload: the address alone brings the same dashboard back.
    page.reload()
    expect(page.get_by_label("Period")).to_have_value("last_quarter")
    expect(page.locator(".dashboard-tabs a.current")).to_have_text("Support")


def test_a_report_built_with_selects_then_downloaded(
    page: Page, clicks: Clicks, signed_in, team_data
):
    manager, ann, stages = team_data
    signed_in(page, manager)
    page.goto("/")
    with clicks.task("build a report and download it", 4):
        clicks.click(page.locator("nav.sidebar").get_by_role("link", name="Reports"))
        expect(page.locator("#report-table")).to_be_visible()
        page.get_by_label("Group by").select_option("stage")
        clicks.count += 1
        page.wait_for_url("**group=stage*")
        page.get_by_label("Then by").select_option("owner")
        clicks.count += 1
        page.wait_for_url("**group2=owner*")
        table = page.locator("#report-table")
        expect(table.locator("thead")).to_contain_text("Ann Able")
        expect(table.locator("tfoot")).to_contain_text("4")
        with page.expect_download() as download_info:
            clicks.click(page.get_by_role("link", name="Download CSV"))
    download = download_info.value
    rows = list(csv.reader(io.StringIO(Path(download.path()).read_text(encoding="utf-8"))))
    assert rows[0] == ["Stage / Owner", "Ann Able", "Total"]
    assert rows[1] == ["Prospection", "2", "2"] and rows[-1] == ["Total", "4", "4"]
    # A figure opens the deal list filtered the same way.
    table.get_by_role("row", name="Prospection").get_by_role("link").first.click()
    page.wait_for_url(f"**/deals/list?*stage={stages[0].id}*")
    expect(page.locator("#deal-rows tr")).to_have_count(2)
