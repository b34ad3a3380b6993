"""Lead scores recomputed in the worker (crm/services/lead_scoring.py does the work).

All three jobs are idempotent: a score is computed from the rules and the data as they
are when the job runs, so running one twice, late, or after another gives the same score.
"""

from crm.extensions import db
from crm.services import lead_scoring


def rescore_contacts(contact_ids: list[int], company_ids: list[int] | None = None) -> int:
    """The contacts whose scored data changed (and the contacts of companies that did)."""
    ids = set(contact_ids or []) | set(lead_scoring.contacts_of_companies(company_ids or []))
    done = lead_scoring.recompute(ids)
    db.session.commit()
    return done


def rescore_all_leads() -> int:
    """Every lead and prospect, after the rules changed: batch by batch, committed as it goes."""
    done = 0
    for batch in lead_scoring.lead_ids():
        done += lead_scoring.recompute(batch)
        db.session.commit()
    return done


def rescore_stale_leads() -> int:
    """The leads not scored for a day: rules that count days change with time alone. Run
    hourly (crm/jobs/schedule.py); also catches up on a rescore lost with Redis."""
    stale_before = lead_scoring.now() - lead_scoring.STALE_AFTER
    done = 0
    for batch in lead_scoring.lead_ids(stale_before=stale_before):
        done += lead_scoring.recompute(batch)
        db.session.commit()
    return done
