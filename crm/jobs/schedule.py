"""The periodic jobs `python worker.py cron` enqueues, and how often.

Each is a sweeper over rows of the database (the source of truth): idempotent, so a run
that comes twice or late changes nothing more.
"""

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class PeriodicJob:
    function: Callable
    queue: str
    every: int  # seconds
    timeout: int | None = None  # seconds; the period when None


def periodic_jobs(config) -> list[PeriodicJob]:
    from crm.jobs.campaigns import sweep_campaigns
    from crm.jobs.lead_scoring import rescore_stale_leads
    from crm.jobs.mail_sync import sync_all_mailboxes
    from crm.jobs.outbox import sweep_outbox
    from crm.jobs.reminders import sweep_reminders
    from crm.jobs.sla import watch_sla

    return [
        PeriodicJob(sweep_reminders, "default", config["REMINDER_SWEEP_SECONDS"]),
        # Service levels: warnings before due times, breaches flagged and announced.
        PeriodicJob(watch_sla, "default", config.get("SLA_WATCH_SECONDS", 60)),
        # Email in: each active mailbox's new messages since its watermark.
        PeriodicJob(sync_all_mailboxes, "mail", config.get("MAIL_SYNC_SECONDS", 60)),
        # Email out: queued messages whose next attempt is due, and sends a worker lost.
        PeriodicJob(sweep_outbox, "mail", config.get("OUTBOX_SWEEP_SECONDS", 60)),
        # Campaigns: deliveries and opens onto recipients, lost chains of sends restarted.
        PeriodicJob(sweep_campaigns, "mail", config.get("CAMPAIGN_SWEEP_SECONDS", 60)),
        # Lead scores that depend on time passing ("no activity in 30 days").
        PeriodicJob(rescore_stale_leads, "default", config.get("LEAD_RESCORE_SECONDS", 3600)),
    ]
