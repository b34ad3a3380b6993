"""Email out: send what the outbox holds (crm/services/outbox.py does the work)."""


def sweep_outbox() -> int:
    """Send or re-enqueue queued messages that are due; return how many. (Filled in by the email work.)"""
    return 0
