"""Support settings in a browser: a refused service level shows its error beside the
field without losing the other inputs, an agent marked away in one click, and the
SLA badges on the queue."""

import os
from datetime import UTC, datetime, timedelta

from playwright.sync_api import expect

from crm.services import sla
from tests import factories

SHOTS = os.environ.get("CRM_SCREENSHOTS")  # a folder to keep the screenshots in, to look at


def test_settings_and_badges(page, seed, signed_in, clicks):
    team = factories.make_team("Support")
    manager = factories.make_user(role="manager", team=team, name="Maria Manager")
    agent = factories.make_user(role="support", team=team, name="Lucas Moreau")
    factories.make_user(role="support", team=team, name="Nadia Roux", max_open_incidents=5)
    now = datetime.now(UTC)
    for priority, age in (("urgent", 10 * 24), ("normal", 0), ("high", 1), ("low", 0)):
        incident = factories.make_incident(
            priority=priority,
            status="open",
            assignee=agent,
            team=team,
            created_at=now - timedelta(hours=age),
        )
        sla.start_clock(incident)
    seed.commit()
    signed_in(page, manager)

    page.goto("/incidents/settings")
    page.get_by_label("Urgent · first response minutes").fill("75")
    clicks.click(page.get_by_role("button", name="Save service levels"))
    expect(page.locator("#sla-policies .error")).to_contain_text("between 0 and 59")
    expect(page.get_by_label("Urgent · first response minutes")).to_have_value("75")

    row = page.locator(f"#agent-{agent.id}")
    row.get_by_label("Lucas Moreau · away until").fill((now + timedelta(days=5)).date().isoformat())
    clicks.click(row.get_by_role("button", name="Save"))
    expect(page.locator(".toast")).to_contain_text("Availability of Lucas Moreau saved")
    expect(page.locator(f"#agent-{agent.id} .badge")).to_have_text("away")
    if SHOTS:
        page.screenshot(path=f"{SHOTS}/support-settings.png", full_page=True)

    page.goto("/incidents?view=all")
    expect(page.locator(".sla-clock.sla-breached").first).to_contain_text("overdue")
    if SHOTS:
        page.screenshot(path=f"{SHOTS}/incident-queue-sla.png", full_page=True)
