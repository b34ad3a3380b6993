"""Lead scores recomputed in the worker (crm/services/lead_scoring.py does the work)."""


def rescore_stale_leads() -> int:
    """Recompute the scores that time changes; return how many. (Filled in by the leads work.)"""
    return 0
