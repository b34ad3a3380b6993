"""The shared agenda: events, tasks, the reminders they raise and in-app notifications.

Times are aware UTC. An event also keeps the time zone it was planned in, so that
a weekly 9:00 meeting stays at 9:00 local time on both sides of a daylight-saving
change (crm/services/recurrence.py expands it in that zone).
"""

import secrets
import uuid
from datetime import datetime

from sqlalchemy import (
    JSON,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm.extensions import db
from crm.models.audit import audited
from crm.models.contacts import Company, Contact, Timestamps
from crm.models.types import UTCDateTime, utcnow
from crm.models.users import Team, User

EVENT_KINDS = ("meeting", "call", "visit")
# What the agenda filter offers: the event kinds plus tasks shown at their due time.
AGENDA_KINDS = (*EVENT_KINDS, "task")
EVENT_STATUSES = ("confirmed", "cancelled")
RESPONSES = ("needs_action", "accepted", "declined", "tentative")
TASK_STATUSES = ("open", "done", "cancelled")
REMINDER_CHANNELS = ("in_app", "email")
# pending → sending → sent | failed; cancelled when the event or task went away.
REMINDER_STATUSES = ("pending", "sending", "sent", "failed", "cancelled")
DEFAULT_REMINDER_MINUTES = 15
# Stored in reminder_minutes when the organizer chose "No reminder".
NO_REMINDER = -1


def new_ical_uid() -> str:
    return f"{uuid.uuid4()}@crm"


def new_feed_token() -> str:
    return secrets.token_urlsafe(32)


@audited(exclude=("rrule_until", "sequence"))
class Event(Timestamps, db.Model):
    """A meeting, call or visit; a series when `rrule` is set.

    One occurrence of a series that was moved or edited is its own row with
    `parent_id` and `recurrence_id` (the occurrence's original start), as RFC 5545
    does with RECURRENCE-ID; an occurrence removed from a series is listed in
    `exdates` (original starts, ISO UTC).
    """

    __table_args__ = (
        CheckConstraint(f"kind IN {EVENT_KINDS!r}", name="kind"),
        CheckConstraint(f"status IN {EVENT_STATUSES!r}", name="status"),
        CheckConstraint("ends_at >= starts_at", name="ends_after_start"),
        # The agenda asks "what overlaps this range": start bound first, end checked after.
        Index("ix_event_range", "starts_at", "ends_at"),
        Index("ix_event_organizer_start", "organizer_id", "starts_at"),
        # Series are few and expanded in Python: found by this partial-friendly index.
        Index("ix_event_series", "rrule_until", "starts_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20), default="meeting")
    status: Mapped[str] = mapped_column(String(20), default="confirmed")
    description: Mapped[str | None] = mapped_column(Text)
    location: Mapped[str | None] = mapped_column(String(300))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # All-day events span whole local days: starts_at is the first day's local
    # midnight, ends_at the midnight after the last day (exclusive, as in ICS).
    all_day: Mapped[bool] = mapped_column(default=False)
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/Paris")
    # Private events show as "busy" to everybody but their attendees.
    private: Mapped[bool] = mapped_column(default=False)
    # RFC 5545 RRULE without the "RRULE:" prefix, e.g. "FREQ=WEEKLY;BYDAY=MO,WE".
    rrule: Mapped[str | None] = mapped_column(String(500))
    # End of the series' last occurrence (None: endless), kept so that a range
    # query can skip finished series without expanding them (recurrence.series_end).
    rrule_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    exdates: Mapped[list | None] = mapped_column(JSON)
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("event.id", ondelete="CASCADE"), index=True
    )
    recurrence_id: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ical_uid: Mapped[str] = mapped_column(String(255), default=new_ical_uid, index=True)
    # ICS SEQUENCE: bumped on every change so calendar clients take the update.
    sequence: Mapped[int] = mapped_column(default=0)
    # None: the default (DEFAULT_REMINDER_MINUTES); 0 or more: minutes before the start;
    # NO_REMINDER: none at all.
    reminder_minutes: Mapped[int | None]
    organizer_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contact.id", ondelete="SET NULL"), index=True
    )
    company_id: Mapped[int | None] = mapped_column(
        ForeignKey("company.id", ondelete="SET NULL"), index=True
    )
    deal_id: Mapped[int | None] = mapped_column(
        ForeignKey("deal.id", ondelete="SET NULL"), index=True
    )
    incident_id: Mapped[int | None] = mapped_column(
        ForeignKey("incident.id", ondelete="SET NULL"), index=True
    )
    # The meeting report, written by the organizer after the meeting; it is also
    # written to the linked records' timelines as an Activity.
    report: Mapped[str | None] = mapped_column(Text)
    report_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    organizer: Mapped[User | None] = relationship()
    contact: Mapped[Contact | None] = relationship()
    company: Mapped[Company | None] = relationship()
    deal: Mapped["Deal | None"] = relationship()  # noqa: F821  (crm.models.deals)
    incident: Mapped["Incident | None"] = relationship()  # noqa: F821  (crm.models.support)
    parent: Mapped["Event | None"] = relationship(remote_side=[id], back_populates="overrides")
    overrides: Mapped[list["Event"]] = relationship(
        back_populates="parent", cascade="all, delete-orphan"
    )
    attendees: Mapped[list["EventAttendee"]] = relationship(
        back_populates="event", cascade="all, delete-orphan"
    )

    @property
    def is_series(self) -> bool:
        return bool(self.rrule)

    def __repr__(self) -> str:
        return f"<Event {self.id} {self.title!r} {self.starts_at:%Y-%m-%d %H:%M}>"


class EventAttendee(db.Model):
    """A user or a contact invited to an event (exactly one of the two)."""

    __table_args__ = (
        CheckConstraint("(user_id IS NULL) <> (contact_id IS NULL)", name="one_attendee"),
        CheckConstraint(f"response IN {RESPONSES!r}", name="response"),
        UniqueConstraint("event_id", "user_id", name="uq_event_attendee_user"),
        UniqueConstraint("event_id", "contact_id", name="uq_event_attendee_contact"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("event.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("user.id", ondelete="CASCADE"), index=True
    )
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contact.id", ondelete="CASCADE"), index=True
    )
    response: Mapped[str] = mapped_column(String(20), default="needs_action")

    event: Mapped[Event] = relationship(back_populates="attendees")
    user: Mapped[User | None] = relationship()
    contact: Mapped[Contact | None] = relationship()


@audited()
class Task(Timestamps, db.Model):
    """A to-do with a due time, an assignee and a linked record."""

    __table_args__ = (
        CheckConstraint(f"status IN {TASK_STATUSES!r}", name="status"),
        # "My tasks": open ones of one assignee by due time.
        Index("ix_task_assignee_status_due", "assignee_id", "status", "due_at"),
        Index("ix_task_due", "due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    notes: Mapped[str | None] = mapped_column(Text)
    # Aware UTC. A task due "on a day" (all_day) is stored at that day's local
    # midnight in the assignee's zone and becomes overdue when the day is over.
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    all_day: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(20), default="open")
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reminder_minutes: Mapped[int | None]
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contact.id", ondelete="CASCADE"), index=True
    )
    company_id: Mapped[int | None] = mapped_column(
        ForeignKey("company.id", ondelete="CASCADE"), index=True
    )
    deal_id: Mapped[int | None] = mapped_column(
        ForeignKey("deal.id", ondelete="CASCADE"), index=True
    )
    # The incident (a complaint) this task is the commercial follow-up of.
    incident_id: Mapped[int | None] = mapped_column(
        ForeignKey("incident.id", ondelete="SET NULL"), index=True
    )
    # The logged call (or other activity) this task follows up.
    source_activity_id: Mapped[int | None] = mapped_column(
        ForeignKey("activity.id", ondelete="SET NULL")
    )

    assignee: Mapped[User | None] = relationship(foreign_keys=[assignee_id])
    created_by: Mapped[User | None] = relationship(foreign_keys=[created_by_id])
    contact: Mapped[Contact | None] = relationship()
    company: Mapped[Company | None] = relationship()
    deal: Mapped["Deal | None"] = relationship()  # noqa: F821  (crm.models.deals)

    @property
    def is_open(self) -> bool:
        return self.status == "open"


class Reminder(db.Model):
    """One reminder to one user on one channel, for an event occurrence or a task.

    The row is the truth (DESIGN.md §6): the sweeper enqueues due rows and
    re-enqueues rows stuck in "sending"; a worker claims a row by moving it from
    pending to sending with a compare-and-set, so only one delivers it.
    """

    __table_args__ = (
        CheckConstraint(f"channel IN {REMINDER_CHANNELS!r}", name="channel"),
        CheckConstraint(f"status IN {REMINDER_STATUSES!r}", name="status"),
        CheckConstraint("(event_id IS NULL) <> (task_id IS NULL)", name="one_subject"),
        # One reminder per occurrence, person and channel, however often it is planned.
        # Two partial indexes rather than one constraint over (event_id, task_id): one
        # of the two is always NULL, and NULLs never collide in a unique constraint.
        Index(
            "uq_reminder_event",
            "user_id",
            "event_id",
            "occurrence_start",
            "channel",
            unique=True,
            sqlite_where=text("event_id IS NOT NULL"),
            postgresql_where=text("event_id IS NOT NULL"),
        ),
        Index(
            "uq_reminder_task",
            "user_id",
            "task_id",
            "occurrence_start",
            "channel",
            unique=True,
            sqlite_where=text("task_id IS NOT NULL"),
            postgresql_where=text("task_id IS NOT NULL"),
        ),
        Index("ix_reminder_status_due", "status", "remind_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"))
    event_id: Mapped[int | None] = mapped_column(
        ForeignKey("event.id", ondelete="CASCADE"), index=True
    )
    task_id: Mapped[int | None] = mapped_column(
        ForeignKey("task.id", ondelete="CASCADE"), index=True
    )
    # The occurrence reminded of (the event's start, or the task's due time).
    # Part of the unique key; never NULL so that the key works on every database.
    occurrence_start: Mapped[datetime] = mapped_column(UTCDateTime)
    remind_at: Mapped[datetime] = mapped_column(UTCDateTime)
    channel: Mapped[str] = mapped_column(String(10), default="in_app")
    status: Mapped[str] = mapped_column(String(10), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    user: Mapped[User] = relationship()
    event: Mapped[Event | None] = relationship()
    task: Mapped[Task | None] = relationship()


class Notification(db.Model):
    """An in-app message under the bell. A reminder raises at most one."""

    __table_args__ = (Index("ix_notification_user_read", "user_id", "read_at", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(30), default="reminder")
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str | None] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(String(500))
    # Unique: delivering the same reminder twice cannot raise a second notification.
    reminder_id: Mapped[int | None] = mapped_column(
        ForeignKey("reminder.id", ondelete="SET NULL"), unique=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()


@audited(exclude=("token", "last_fetched_at"))
class CalendarFeed(db.Model):
    """A private ICS address for a user's or a team's agenda.

    The token in the URL is the only key, as with any calendar subscription;
    revoking sets revoked_at and a new row gives a new address.
    """

    __table_args__ = (CheckConstraint("(user_id IS NULL) <> (team_id IS NULL)", name="one_owner"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    token: Mapped[str] = mapped_column(String(64), unique=True, default=new_feed_token)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("user.id", ondelete="CASCADE"), index=True
    )
    team_id: Mapped[int | None] = mapped_column(
        ForeignKey("team.id", ondelete="CASCADE"), index=True
    )
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_fetched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User | None] = relationship(foreign_keys=[user_id])
    team: Mapped[Team | None] = relationship()
