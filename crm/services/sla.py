"""Service levels of incidents: due times in business time, the pause while waiting
on the customer, and what the clock shows.

Interface used by the incident routes (call inside the transaction, before commit):
- start_clock(incident, at=None): set the due times from the priority's policy.
- status_changed(incident, old_status, at=None): pause, resume (due times move by
  the business time spent waiting), stop on resolved/closed, restart on reopen.
- first_response(incident, at=None): record the first reply to the customer.
- priority_changed(incident, at=None): due times from the new policy.
"""


def start_clock(incident, at=None) -> None:
    """Set first-response and resolution due times from the incident's priority."""


def status_changed(incident, old_status: str, at=None) -> None:
    """Pause, resume, stop or restart the clock after a status change."""


def first_response(incident, at=None) -> None:
    """Record the first reply to the customer (meets the first-response target)."""


def priority_changed(incident, at=None) -> None:
    """Recompute the due times from the new priority's policy."""
