"""A manager mails a segment, in Chromium: builds the segment watching its live count,
prepares a campaign from it, checks the preview with a real contact, sends it; the worker
sends at the campaign's rate (two a minute here) through a real SMTP server, and the
results page follows without a reload."""

import pytest
from playwright.sync_api import Page, expect
from rq import Queue
from sqlalchemy import select, update

from crm.jobs import campaigns as campaign_jobs
from crm.models import Campaign, EmailMessage, EmailTemplate, Mailbox, Segment
from crm.models.types import utcnow
from tests import factories
from tests.smtp_server import Recorder, smtp_server
from worker import InProcessWorker, worker_connection

pytestmark = pytest.mark.browser


def _choose(clicks, select, label: str) -> None:
    """Picking an option in a select: one click for the person (the list opens on focus)."""
    select.select_option(label=label)
    clicks.count += 1


def test_a_manager_builds_a_segment_and_sends_a_campaign(page: Page, app, seed, signed_in, clicks):
    from datetime import timedelta

    recorder = Recorder()
    with smtp_server(recorder) as port:
        manager = factories.make_user(role="manager", name="Maud Manager")
        company = factories.make_company("Radium SA")
        for first in ("Marie", "Pierre", "Irene", "Paul"):
            factories.make_contact(
                first, email=f"{first.lower()}@radium.test", company=company, stage="lead"
            )
        for first in ("Ada", "Alan"):
            factories.make_contact(first, email=f"{first.lower()}@old.test", stage="customer")
        seed.add(
            EmailTemplate(
                name="Spring offer",
                subject="Our spring offer",
                body="Hello {{contact.first_name}},\n\nA month free for {{company.name}}.",
                usage="sales",
            )
        )
        seed.add(
            Mailbox(
                name="Marketing",
                address="news@crm.example",
                purpose="sales",
                smtp_host="127.0.0.1",
                smtp_port=port,
                smtp_security="none",
            )
        )
        seed.commit()
        signed_in(page, manager)
        page.goto("/segments")

        with clicks.task("build a segment, watching the live count", 5):
            clicks.click(page.get_by_role("link", name="New segment"))
            expect(page.locator("#segment-count")).to_have_text("6")
            page.get_by_label("Name").fill("Radium leads")
            _choose(clicks, page.get_by_label("Add a condition"), "Stage")
            expect(page.locator("#segment-count")).to_have_text("4")  # leads, the default
            clicks.click(page.get_by_label("Customer", exact=True))
            expect(page.locator("#segment-count")).to_have_text("6")
            clicks.click(page.get_by_label("Customer", exact=True))
            expect(page.locator("#segment-count")).to_have_text("4")
            expect(page.locator(".segment-preview")).to_contain_text("Marie")
            clicks.click(page.get_by_role("button", name="Save segment"))
            expect(page.locator("h1")).to_have_text("Radium leads")

        with clicks.task("prepare the campaign and send it", 5):
            clicks.click(page.get_by_role("link", name="Mail this segment"))
            expect(page.locator("h1")).to_have_text("New campaign")
            expect(page.get_by_label("Segment")).to_have_value(
                str(seed.scalars(select(Segment.id)).one())
            )
            page.get_by_label("Name").fill("Spring 2026")
            _choose(clicks, page.get_by_label("Template"), "Spring offer")
            _choose(clicks, page.get_by_label("Sent from"), "Marketing <news@crm.example>")
            page.get_by_label("Emails per minute").fill("2")
            page.get_by_label("Cost").fill("500")
            clicks.click(page.get_by_role("button", name="Prepare campaign"))
            expect(page.locator("#preview-body")).to_contain_text("A month free for Radium SA.")
            expect(page.locator("#preview-body")).to_contain_text("Hello ")
            expect(page.locator("#plan-to-send")).to_have_text("4")
            clicks.click(page.get_by_role("button", name="Send to 4 people"))
            expect(page.locator("#campaign-status")).to_have_text("Sending")

        # The worker: its first run sends two (the rate), the others wait for the next minute.
        connection = worker_connection(app)

        def work():
            worker = InProcessWorker(
                [Queue("mail", connection=connection)], connection=connection, app=app
            )
            worker.work(burst=True)

        work()
        assert len(recorder.messages) == 2
        expect(page.locator("#figure-sent")).to_have_text("2", timeout=12_000)
        expect(page.locator("#figure-waiting")).to_have_text("2")

        # A minute later (the clock moved on for the sends), the next run sends the rest.
        seed.execute(update(EmailMessage).values(created_at=utcnow() - timedelta(seconds=61)))
        seed.commit()
        campaign = seed.scalars(select(Campaign)).one()
        campaign_jobs.run_campaign(campaign.id)
        work()
        assert sorted(m["To"] for m in recorder.messages) == [
            "irene@radium.test",
            "marie@radium.test",
            "paul@radium.test",
            "pierre@radium.test",
        ]
        expect(page.locator("#figure-sent")).to_have_text("4", timeout=12_000)
        expect(page.locator("#recipient-rows tr")).to_have_count(4)
        page.reload()
        expect(page.locator("#campaign-status")).to_have_text("Sent")
        expect(page.locator("#figure-cost")).to_contain_text("500")
