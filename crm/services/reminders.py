"""Reminders of events and tasks: planned as rows, delivered by the worker.

Interface used by the agenda and task services (call inside the transaction that
changes the event or task, before commit):
- schedule_event(event): (re)plan the pending reminders of an event or series.
- schedule_task(task): (re)plan the pending reminder of a task.
- replan_for_user(user): after a change of their time zone or email choice.

The rows are the truth (DESIGN.md §6). Planning computes the reminders an event
or task should have, inserts the missing ones (a unique index per subject makes
a second planning harmless, even when two processes plan at once), moves the
pending ones whose time changed and cancels the pending ones that no longer
apply. A series is planned over a horizon only; the sweeper (crm/jobs/reminders.py)
plans it again every minute, so the horizon moves with time.

Delivery: claim() moves a due row from pending to sending with a compare-and-set,
so that one worker only delivers it; a row left in "sending" by a worker that
died counts as abandoned after REMINDER_CLAIM_TIMEOUT_SECONDS and may be claimed
again. The in-app channel inserts its Notification and marks the row sent in one
transaction, and a Notification is unique per reminder: a second delivery cannot
raise a second one. The email channel sends with a Message-ID fixed per reminder.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import and_, inspect, or_, select, update
from sqlalchemy.orm import selectinload

from crm.extensions import db
from crm.i18n import DEFAULT_TIMEZONE
from crm.models import Event, EventAttendee, Task, User
from crm.models.agenda import DEFAULT_REMINDER_MINUTES, NO_REMINDER, Reminder
from crm.services.recurrence import expand, from_local_naive, involving

# How far ahead the occurrences of a series get their reminder rows.
PLANNING_HORIZON = timedelta(hours=48)
# All-day events and tasks due "on a day" are reminded of at this local time.
ALL_DAY_REMINDER_TIME = time(9, 0)
# Delivery attempts before a reminder is given up as failed.
MAX_ATTEMPTS = 4
# Seconds before each retry after a temporary failure (RQ Retry intervals).
RETRY_INTERVALS = (30, 120, 600)


@dataclass(frozen=True)
class Planned:
    user_id: int
    occurrence_start: datetime
    channel: str
    remind_at: datetime


def now() -> datetime:
    return datetime.now(UTC)


def user_zone(user: User) -> ZoneInfo:
    try:
        return ZoneInfo(user.timezone or DEFAULT_TIMEZONE)
    except (KeyError, ValueError):
        return ZoneInfo(DEFAULT_TIMEZONE)


def channels(user: User) -> tuple[str, ...]:
    if user.email_reminders and user.email:
        return ("in_app", "email")
    return ("in_app",)


def _is_gone(obj) -> bool:
    state = inspect(obj)
    return state.deleted or state.was_deleted


# ---- planning: events ------------------------------------------------------


def _event_recipients(event: Event) -> list[User]:
    """The organizer and the user attendees who have not declined, once each."""
    people = {}
    if event.organizer is not None:
        people[event.organizer.id] = event.organizer
    for attendee in event.attendees:
        if attendee.user is not None and attendee.response != "declined":
            people[attendee.user.id] = attendee.user
        elif attendee.user is not None:
            people.pop(attendee.user.id, None)
    return [user for user in people.values() if user.active]


def _event_remind_at(event: Event, start: datetime, user: User) -> datetime:
    if event.all_day and event.reminder_minutes is None:
        day = start.astimezone(ZoneInfo(event.timezone)).date()
        return from_local_naive(datetime.combine(day, ALL_DAY_REMINDER_TIME), user_zone(user))
    minutes = (
        event.reminder_minutes if event.reminder_minutes is not None else DEFAULT_REMINDER_MINUTES
    )
    return start - timedelta(minutes=minutes)


def _event_closed(event: Event) -> bool:
    if _is_gone(event) or event.status == "cancelled":
        return True
    return event.parent is not None and event.parent.status == "cancelled"


def planned_for_event(event: Event, at: datetime | None = None) -> list[Planned]:
    """The reminders `event` should have from `at` on (its occurrences in the horizon)."""
    at = at or now()
    if _event_closed(event) or event.reminder_minutes == NO_REMINDER:
        return []
    recipients = _event_recipients(event)
    if not recipients:
        return []
    if event.rrule:
        occurrences = [o.start for o in expand(event, at, at + PLANNING_HORIZON)]
    else:
        occurrences = [event.starts_at]
    planned = []
    for start in occurrences:
        for user in recipients:
            remind_at = _event_remind_at(event, start, user)
            # A reminder is worth sending while the occurrence is still ahead.
            if max(start, remind_at) <= at:
                continue
            planned.extend(
                Planned(user.id, start, channel, remind_at) for channel in channels(user)
            )
    return planned


def schedule_event(event: Event, at: datetime | None = None) -> None:
    """Plan the reminders of `event`; pending ones that no longer apply are cancelled.

    A series also re-plans its moved occurrences (override rows), which are
    events of their own.
    """
    at = at or now()
    db.session.flush()
    _apply(Reminder.event_id, event.id, planned_for_event(event, at), at, _event_closed(event))
    if event.rrule and not _is_gone(event):
        for override in event.overrides:
            planned = planned_for_event(override, at)
            _apply(Reminder.event_id, override.id, planned, at, _event_closed(override))


# ---- planning: tasks -------------------------------------------------------


def planned_for_task(task: Task, at: datetime | None = None) -> list[Planned]:
    at = at or now()
    user = task.assignee
    if _is_gone(task) or task.status != "open" or task.due_at is None:
        return []
    if user is None or not user.active or task.reminder_minutes == NO_REMINDER:
        return []
    if task.all_day:
        zone = user_zone(user)
        day = task.due_at.astimezone(zone).date()
        remind_at = from_local_naive(datetime.combine(day, ALL_DAY_REMINDER_TIME), zone)
    else:
        minutes = task.reminder_minutes
        remind_at = task.due_at - timedelta(
            minutes=minutes if minutes is not None else DEFAULT_REMINDER_MINUTES
        )
    if max(task.due_at, remind_at) <= at:
        return []
    return [Planned(user.id, task.due_at, channel, remind_at) for channel in channels(user)]


def schedule_task(task: Task, at: datetime | None = None) -> None:
    """Plan the reminder of `task`; cancelled when the task is done or has no due time."""
    at = at or now()
    db.session.flush()
    closed = _is_gone(task) or task.status != "open" or task.due_at is None
    _apply(Reminder.task_id, task.id, planned_for_task(task, at), at, closed)


# ---- planning: after a change of the person ---------------------------------


def replan_for_user(user: User, at: datetime | None = None) -> None:
    """Plan again the reminders of `user`'s coming events and open tasks.

    Called when the user changes their time zone (an all-day reminder is at 09:00 on
    their clock) or turns email reminders on or off (the email rows come or go).
    Everything that may still remind them: single events and moved occurrences from
    yesterday on (an all-day event of today reminds at 09:00), series still running,
    open tasks due from yesterday on.
    """
    at = at or now()
    since = at - timedelta(days=1)
    events = db.session.scalars(
        select(Event)
        .where(
            involving([user.id]),
            Event.status != "cancelled",
            or_(
                and_(Event.rrule.is_(None), Event.starts_at > since),
                and_(
                    Event.rrule.is_not(None),
                    Event.starts_at < at + PLANNING_HORIZON,
                    or_(Event.rrule_until.is_(None), Event.rrule_until > at),
                ),
            ),
        )
        .options(
            selectinload(Event.organizer),
            selectinload(Event.attendees).selectinload(EventAttendee.user),
            selectinload(Event.overrides),
        )
    ).all()
    for event in events:
        schedule_event(event, at)
    tasks = db.session.scalars(
        select(Task).where(Task.assignee_id == user.id, Task.status == "open", Task.due_at > since)
    ).all()
    for task in tasks:
        schedule_task(task, at)


# ---- planning: rows --------------------------------------------------------


def _apply(
    subject_column, subject_id: int | None, planned: list[Planned], at: datetime, closed: bool
) -> None:
    """Make the reminder rows of one subject match `planned`; `closed`: cancel all the rest."""
    if subject_id is None:
        return
    existing = {
        (row.user_id, row.occurrence_start, row.channel): row
        for row in db.session.scalars(select(Reminder).where(subject_column == subject_id))
    }
    wanted = {(p.user_id, p.occurrence_start, p.channel): p for p in planned}
    missing = []
    for key, plan in wanted.items():
        row = existing.get(key)
        if row is None:
            missing.append(plan)
        elif row.status == "pending" and row.remind_at != plan.remind_at:
            row.remind_at = plan.remind_at
        elif row.status == "cancelled":
            # Invited again, or the event was confirmed again: the reminder is back.
            row.status, row.remind_at, row.attempts, row.last_error = (
                "pending",
                plan.remind_at,
                0,
                None,
            )
    for key, row in existing.items():
        # Unless the subject is closed, a past occurrence keeps its pending row: a
        # worker running late may still deliver it.
        if key not in wanted and row.status == "pending" and (closed or row.occurrence_start > at):
            row.status = "cancelled"
    if missing:
        field = subject_column.key
        _insert_ignoring_duplicates(
            [
                {
                    "user_id": p.user_id,
                    field: subject_id,
                    "occurrence_start": p.occurrence_start,
                    "channel": p.channel,
                    "remind_at": p.remind_at,
                    "status": "pending",
                    "attempts": 0,
                    "created_at": at,
                }
                for p in missing
            ]
        )
    db.session.flush()


def dialect_insert(model):
    """The database's own INSERT, for ON CONFLICT DO NOTHING (PostgreSQL and SQLite alike)."""
    if db.session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(model)


def _insert_ignoring_duplicates(rows: list[dict]) -> None:
    """INSERT ... ON CONFLICT DO NOTHING: two planners at once insert each row once."""
    db.session.flush()
    db.session.execute(dialect_insert(Reminder).values(rows).on_conflict_do_nothing())


def series_to_plan(at: datetime | None = None) -> list[Event]:
    """The series with occurrences in the horizon, ready to expand (for the sweeper)."""
    at = at or now()
    return list(
        db.session.scalars(
            select(Event)
            .where(
                Event.rrule.is_not(None),
                Event.status != "cancelled",
                Event.starts_at < at + PLANNING_HORIZON,
                or_(Event.rrule_until.is_(None), Event.rrule_until > at),
            )
            .options(
                selectinload(Event.organizer),
                selectinload(Event.attendees).selectinload(EventAttendee.user),
                selectinload(Event.overrides)
                .selectinload(Event.attendees)
                .selectinload(EventAttendee.user),
                selectinload(Event.overrides).selectinload(Event.organizer),
            )
        )
    )


# ---- delivery --------------------------------------------------------------


def claim_timeout() -> timedelta:
    return timedelta(seconds=current_app.config["REMINDER_CLAIM_TIMEOUT_SECONDS"])


def due_filter(at: datetime):
    """Rows a worker should be delivering now: due and pending, or abandoned in "sending"."""
    return or_(
        and_(Reminder.status == "pending", Reminder.remind_at <= at),
        and_(Reminder.status == "sending", Reminder.claimed_at < at - claim_timeout()),
    )


def due_reminders(at: datetime | None = None, limit: int = 500) -> list[tuple[int, str, str]]:
    """(id, channel, status) of the rows due for delivery, oldest first."""
    at = at or now()
    rows = db.session.execute(
        select(Reminder.id, Reminder.channel, Reminder.status)
        .where(due_filter(at))
        .order_by(Reminder.remind_at)
        .limit(limit)
    )
    return [tuple(row) for row in rows]


def upcoming_reminders(at: datetime, until: datetime) -> list[tuple[int, str, datetime]]:
    """(id, channel, remind_at) of the pending rows falling due in (at, until]."""
    rows = db.session.execute(
        select(Reminder.id, Reminder.channel, Reminder.remind_at)
        .where(Reminder.status == "pending", Reminder.remind_at > at, Reminder.remind_at <= until)
        .order_by(Reminder.remind_at)
    )
    return [tuple(row) for row in rows]


def claim(reminder_id: int, at: datetime | None = None) -> bool:
    """Compare-and-set pending (or abandoned sending) → sending; True when this caller won."""
    at = at or now()
    result = db.session.execute(
        update(Reminder)
        .where(Reminder.id == reminder_id, due_filter(at))
        .values(status="sending", claimed_at=at, attempts=Reminder.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return result.rowcount == 1


def mark_sent(reminder_id: int) -> None:
    db.session.execute(
        update(Reminder)
        .where(Reminder.id == reminder_id, Reminder.status == "sending")
        .values(status="sent", sent_at=now(), last_error=None)
        .execution_options(synchronize_session=False)
    )


def mark_cancelled(reminder_id: int, reason: str) -> None:
    db.session.execute(
        update(Reminder)
        .where(Reminder.id == reminder_id, Reminder.status == "sending")
        .values(status="cancelled", last_error=reason[:500])
        .execution_options(synchronize_session=False)
    )


def mark_failure(reminder_id: int, error: str, temporary: bool) -> bool:
    """Record a failed attempt; True when another attempt will follow."""
    reminder = db.session.get(Reminder, reminder_id)
    retry = temporary and reminder.attempts < MAX_ATTEMPTS
    db.session.execute(
        update(Reminder)
        .where(Reminder.id == reminder_id, Reminder.status == "sending")
        .values(status="pending" if retry else "failed", last_error=error[:500], claimed_at=None)
        .execution_options(synchronize_session=False)
    )
    return retry


def still_relevant(reminder: Reminder) -> str | None:
    """Why a claimed reminder must not go out any more, or None when it should."""
    if reminder.event is not None:
        event = reminder.event
        if event.status == "cancelled" or (event.parent and event.parent.status == "cancelled"):
            return "event cancelled"
    if reminder.task is not None and reminder.task.status != "open":
        return "task closed"
    if not reminder.user.active:
        return "user inactive"
    if reminder.channel == "email" and not (reminder.user.email_reminders and reminder.user.email):
        return "email reminders turned off"
    return None
