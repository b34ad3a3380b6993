"""Service levels of incidents: due times in business time, the pause while waiting
on the customer, and what the clock shows.

Interface used by the incident routes (call inside the transaction, before commit):
- start_clock(incident, at=None): set the due times from the priority's policy.
- status_changed(incident, old_status, at=None): pause, resume (due times move by
  the business time spent waiting), stop on resolved/closed, restart on reopen.
- first_response(incident, at=None): record the first reply to the customer.
- priority_changed(incident, at=None): due times from the new policy.

Two targets per incident: the first response and the resolution. A target is
"met" once first_responded_at / resolved_at is set. Due times are the truth:
a pause does not store a remaining duration, it moves the unmet due times
forward by the business time spent waiting when the clock resumes; a due time
already passed when the pause began stays passed (the breach happened).
Breach flags are set by the watch job (crm/jobs/sla.py) as a due time passes,
and here when a target is met late.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import inspect

from crm.models.support import RUNNING_STATUSES
from crm.services import business_time as bt
from crm.services import support_settings

TARGETS = ("first_response", "resolution")
STOPPED_STATUSES = ("resolved", "closed")


def _now() -> datetime:
    return datetime.now(UTC)


def _due(incident, target: str) -> datetime | None:
    return getattr(incident, f"{target}_due_at")


def _met_at(incident, target: str) -> datetime | None:
    return incident.first_responded_at if target == "first_response" else incident.resolved_at


def _target_minutes(policy, target: str) -> int:
    return (
        policy.first_response_minutes if target == "first_response" else policy.resolution_minutes
    )


def _forget_notices(incident, target: str, kinds=("warning", "breach")) -> None:
    notified = dict(incident.sla_notified or {})
    left = [k for k in notified.get(target, []) if k not in kinds]
    if left:
        notified[target] = left
    else:
        notified.pop(target, None)
    incident.sla_notified = notified or None  # a new object: JSON changes are tracked by value


# ---- the interface -------------------------------------------------------------


def start_clock(incident, at: datetime | None = None) -> None:
    """Set first-response and resolution due times from the incident's priority."""
    at = at or incident.created_at or _now()
    support_settings.ensure_policies()
    calendar = support_settings.load_calendar()
    policy = support_settings.policy_for(incident.priority)
    incident.first_response_due_at = bt.add_business_minutes(
        calendar, at, policy.first_response_minutes
    )
    incident.resolution_due_at = bt.add_business_minutes(calendar, at, policy.resolution_minutes)
    incident.paused_at = at if incident.status == "waiting" else None
    if incident.status in STOPPED_STATUSES:
        incident.resolved_at = incident.resolved_at or at
        if incident.status == "closed":
            incident.closed_at = incident.closed_at or at


def status_changed(incident, old_status: str, at: datetime | None = None) -> None:
    """Pause, resume, stop or restart the clock after a status change."""
    new_status = incident.status
    if new_status == old_status or incident.resolution_due_at is None:
        return
    at = at or _now()
    calendar = support_settings.load_calendar()
    if old_status in STOPPED_STATUSES and new_status not in STOPPED_STATUSES:
        _restart(incident, calendar, at)
    elif old_status == "waiting":
        _resume(incident, calendar, at)
    if new_status == "waiting":
        incident.paused_at = incident.paused_at or at
    elif new_status in STOPPED_STATUSES:
        _stop(incident, at, was_stopped=old_status in STOPPED_STATUSES)


def first_response(incident, at: datetime | None = None) -> None:
    """Record the first reply to the customer (meets the first-response target)."""
    if incident.first_responded_at is not None:
        return
    at = at or _now()
    incident.first_responded_at = at
    due = incident.first_response_due_at
    if due is None:
        return
    if incident.paused_at is not None and due > incident.paused_at:
        # Answered while waiting on the customer: the time waited so far does not count.
        calendar = support_settings.load_calendar()
        waited = bt.business_seconds_between(calendar, incident.paused_at, at)
        due = bt.add_business_time(calendar, due, timedelta(seconds=waited))
    if at > due:
        incident.first_response_breached = True


def priority_changed(incident, at: datetime | None = None, old_priority: str | None = None) -> None:
    """Recompute the due times from the new priority's policy.

    The business time already elapsed is kept: each unmet due time moves by the
    difference between the new target and the old one (earlier for a higher
    priority, possibly into the past: then it is overdue at once). The old
    priority comes from `old_priority`, else from the unflushed attribute history.
    """
    old_priority = old_priority or _previous_value(incident, "priority")
    if incident.resolution_due_at is None:
        start_clock(incident, at)
        return
    if not old_priority or old_priority == incident.priority:
        return
    at = at or _now()
    support_settings.ensure_policies()
    calendar = support_settings.load_calendar()
    old = support_settings.policy_for(old_priority)
    new = support_settings.policy_for(incident.priority)
    for target in TARGETS:
        due = _due(incident, target)
        if due is None or _met_at(incident, target) is not None:
            continue
        difference = _target_minutes(new, target) - _target_minutes(old, target)
        new_due = bt.add_business_minutes(calendar, due, difference)
        setattr(incident, f"{target}_due_at", new_due)
        reference = incident.paused_at or at
        if new_due > reference:
            # Not (or no longer) late under the new policy: its notices may come again.
            setattr(incident, f"{target}_breached", False)
            _forget_notices(incident, target)


def _previous_value(incident, name: str):
    history = inspect(incident).attrs[name].history
    return history.deleted[0] if history.deleted else None


# ---- pause, resume, stop, restart ------------------------------------------------


def _resume(incident, calendar, at: datetime) -> None:
    paused_at = incident.paused_at
    incident.paused_at = None
    if paused_at is None:
        return
    waited = timedelta(seconds=bt.business_seconds_between(calendar, paused_at, at))
    if waited <= timedelta(0):
        return
    for target in TARGETS:
        due = _due(incident, target)
        if due is not None and _met_at(incident, target) is None and due > paused_at:
            setattr(incident, f"{target}_due_at", bt.add_business_time(calendar, due, waited))


def _stop(incident, at: datetime, was_stopped: bool) -> None:
    """Resolved or closed. The caller may have set resolved_at/closed_at already."""
    incident.paused_at = None
    if not was_stopped:
        stopped = incident.resolved_at or at
        incident.resolved_at = stopped
        if incident.resolution_due_at and stopped > incident.resolution_due_at:
            incident.resolution_breached = True
        due = incident.first_response_due_at
        if incident.first_responded_at is None and due and stopped > due:
            incident.first_response_breached = True
    if incident.status == "closed":
        incident.closed_at = incident.closed_at or at


def _restart(incident, calendar, at: datetime) -> None:
    """Reopened: the unmet targets go on from the business time they had left when
    the incident was resolved (overdue ones stay overdue by as much)."""
    # The caller may have cleared resolved_at already: the unflushed history has it.
    stopped = (
        incident.resolved_at
        or _previous_value(incident, "resolved_at")
        or incident.closed_at
        or _previous_value(incident, "closed_at")
        or at
    )
    for target in ("resolution",) + (
        ("first_response",) if incident.first_responded_at is None else ()
    ):
        due = _due(incident, target)
        if due is None:
            continue
        left = bt.business_seconds_between(calendar, stopped, due)
        setattr(
            incident,
            f"{target}_due_at",
            bt.add_business_time(calendar, at, timedelta(seconds=left)),
        )
        if left > 0 and not getattr(incident, f"{target}_breached"):
            _forget_notices(incident, target, kinds=("warning",))
    incident.resolved_at = None
    incident.closed_at = None
    incident.paused_at = None


# ---- what the clock shows -----------------------------------------------------------


@dataclass(frozen=True)
class ClockState:
    """The state of an incident's service level for display.

    target: "first_response" or "resolution" (the next one to meet), None when none;
    status: "ok", "warning", "breached", "paused", "met" or "none";
    minutes_left: business minutes to the due time (negative: overdue by as much).
    """

    status: str
    target: str | None = None
    due_at: datetime | None = None
    minutes_left: int | None = None

    @property
    def overdue_minutes(self) -> int:
        return -self.minutes_left if self.minutes_left is not None and self.minutes_left < 0 else 0


def next_target(incident) -> str | None:
    if incident.first_response_due_at is not None and incident.first_responded_at is None:
        return "first_response"
    if incident.resolution_due_at is not None:
        return "resolution"
    return None


def clock(incident, now: datetime, calendar, policies=None) -> ClockState:
    """Which target comes next, when it is due, how much business time is left."""
    target = next_target(incident)
    if target is None:
        return ClockState("none")
    due = _due(incident, target)
    if incident.status in STOPPED_STATUSES or incident.resolved_at is not None:
        met = incident.resolved_at or now
        late = incident.resolution_breached or met > incident.resolution_due_at
        if late:
            left = bt.business_minutes_between(calendar, incident.resolution_due_at, met)
            return ClockState("breached", "resolution", incident.resolution_due_at, -round(left))
        return ClockState("met", "resolution", incident.resolution_due_at, None)
    if incident.status == "waiting" or incident.paused_at is not None:
        reference = incident.paused_at or now
        left = round(bt.business_minutes_between(calendar, reference, due))
        return ClockState("paused", target, due, left)
    left = bt.business_minutes_between(calendar, now, due)
    minutes = int(left // 1) if left >= 0 else -round(-left)
    if now >= due:
        return ClockState("breached", target, due, min(minutes, 0))
    policy = (policies or support_settings.DEFAULT_POLICIES).get(incident.priority)
    warning = policy.warning_minutes if policy else 60
    status = "warning" if left <= warning else "ok"
    return ClockState(status, target, due, minutes)


def is_running(incident) -> bool:
    return incident.status in RUNNING_STATUSES and incident.resolution_due_at is not None
