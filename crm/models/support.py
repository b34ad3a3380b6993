"""Customer service: incidents with service levels, their conversation, and on-site
interventions by technicians.

Service-level due times are computed in business time (crm/services/business_time.py)
against the support calendar: working hours per weekday and holidays, in one zone.
"""

from datetime import date, datetime, time

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    String,
    Text,
    Time,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm.extensions import db
from crm.models.audit import audited
from crm.models.contacts import Company, Contact, Timestamps
from crm.models.deals import Product
from crm.models.types import UTCDateTime, utcnow
from crm.models.users import Team, User

INCIDENT_KINDS = ("information", "technical", "complaint")
PRIORITIES = ("low", "normal", "high", "urgent")
INCIDENT_STATUSES = ("new", "open", "waiting", "resolved", "closed")
# The statuses in which the service-level clock runs ("waiting" on the customer pauses it).
RUNNING_STATUSES = ("new", "open")
CHANNELS = ("phone", "email", "web", "visit")
MESSAGE_KINDS = ("reply", "note", "inbound")
INTERVENTION_STATUSES = ("unscheduled", "planned", "en_route", "on_site", "done", "cancelled")
# A technician's booking counts against double-booking in these statuses.
BOOKED_STATUSES = ("planned", "en_route", "on_site")


@audited()
class SupportCalendar(db.Model):
    """When support works: the zone, the hours of each weekday and the holidays.

    One row (the default) for now; incidents keep no reference so that several
    calendars (per team or country) can come later without a data migration.
    """

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), default="Support")
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/Paris")

    hours: Mapped[list["BusinessHours"]] = relationship(
        back_populates="calendar",
        cascade="all, delete-orphan",
        order_by="(BusinessHours.weekday, BusinessHours.opens_at)",
    )
    holidays: Mapped[list["Holiday"]] = relationship(
        back_populates="calendar", cascade="all, delete-orphan", order_by="Holiday.day"
    )


@audited()
class BusinessHours(db.Model):
    """One working span of a weekday (0 = Monday); a day may have two (lunch break)."""

    __table_args__ = (
        CheckConstraint("weekday BETWEEN 0 AND 6", name="weekday"),
        CheckConstraint("closes_at > opens_at", name="closes_after_opening"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    calendar_id: Mapped[int] = mapped_column(
        ForeignKey("support_calendar.id", ondelete="CASCADE"), index=True
    )
    weekday: Mapped[int]
    opens_at: Mapped[time] = mapped_column(Time)
    closes_at: Mapped[time] = mapped_column(Time)

    calendar: Mapped[SupportCalendar] = relationship(back_populates="hours")


@audited()
class Holiday(db.Model):
    __table_args__ = (UniqueConstraint("calendar_id", "day", name="uq_holiday_day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    calendar_id: Mapped[int] = mapped_column(
        ForeignKey("support_calendar.id", ondelete="CASCADE"), index=True
    )
    day: Mapped[date] = mapped_column(Date)
    name: Mapped[str] = mapped_column(String(120))

    calendar: Mapped[SupportCalendar] = relationship(back_populates="holidays")


@audited()
class SlaPolicy(db.Model):
    """Service-level targets of one priority, in business minutes."""

    __table_args__ = (
        CheckConstraint(f"priority IN {PRIORITIES!r}", name="priority"),
        CheckConstraint("first_response_minutes > 0", name="first_response_positive"),
        CheckConstraint("resolution_minutes > 0", name="resolution_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    priority: Mapped[str] = mapped_column(String(10), unique=True)
    first_response_minutes: Mapped[int]
    resolution_minutes: Mapped[int]
    # Warn the assignee and the manager this many business minutes before a due time.
    warning_minutes: Mapped[int] = mapped_column(default=60)


@audited()
class EmailTemplate(Timestamps, db.Model):
    """A reusable message with {{contact.first_name}}-style placeholders.

    Support uses them as canned responses; the email and campaign issues send them.
    """

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    subject: Mapped[str] = mapped_column(String(300), default="")
    body: Mapped[str] = mapped_column(Text, default="")
    # Where it is offered: "support" (canned responses), "sales", or "all".
    usage: Mapped[str] = mapped_column(String(20), default="all")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))


@audited(exclude=("subject_key", "sla_notified"))
class Incident(Timestamps, db.Model):
    """A support ticket: an information request, a technical incident or a complaint."""

    __table_args__ = (
        CheckConstraint(f"kind IN {INCIDENT_KINDS!r}", name="kind"),
        CheckConstraint(f"priority IN {PRIORITIES!r}", name="priority"),
        CheckConstraint(f"status IN {INCIDENT_STATUSES!r}", name="status"),
        CheckConstraint(f"channel IN {CHANNELS!r}", name="channel"),
        # The queue: by status then the most urgent due time first.
        Index("ix_incident_status_due", "status", "resolution_due_at"),
        Index("ix_incident_assignee_status", "assignee_id", "status"),
        # The sweeper looks for running clocks about to pass or past their due times.
        Index("ix_incident_sla_watch", "status", "first_response_due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), default="technical")
    subject: Mapped[str] = mapped_column(String(200))
    subject_key: Mapped[str] = mapped_column(String(200), default="", index=True)
    description: Mapped[str | None] = mapped_column(Text)
    priority: Mapped[str] = mapped_column(String(10), default="normal")
    status: Mapped[str] = mapped_column(String(10), default="new")
    channel: Mapped[str] = mapped_column(String(10), default="phone")
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contact.id", ondelete="SET NULL"), index=True
    )
    company_id: Mapped[int | None] = mapped_column(
        ForeignKey("company.id", ondelete="SET NULL"), index=True
    )
    product_id: Mapped[int | None] = mapped_column(ForeignKey("product.id", ondelete="SET NULL"))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("team.id"), index=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    # Why the assignee got it: "round robin: least recently assigned of 3 available", ...
    assignment_reason: Mapped[str | None] = mapped_column(String(300))
    custom_fields: Mapped[dict | None] = mapped_column(JSON, default=dict)

    # Service level (aware UTC). Due times move forward by the business time spent
    # waiting on the customer; the *_at moments record when the target was met.
    first_response_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_responded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolution_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Notifications already sent, so the sweeper sends each once:
    # {"first_response": ["warning", "breach"], "resolution": ["warning"]}.
    sla_notified: Mapped[dict | None] = mapped_column(JSON)
    first_response_breached: Mapped[bool] = mapped_column(default=False)
    resolution_breached: Mapped[bool] = mapped_column(default=False)

    contact: Mapped[Contact | None] = relationship()
    company: Mapped[Company | None] = relationship()
    product: Mapped[Product | None] = relationship()
    assignee: Mapped[User | None] = relationship(foreign_keys=[assignee_id])
    created_by: Mapped[User | None] = relationship(foreign_keys=[created_by_id])
    team: Mapped[Team | None] = relationship()
    messages: Mapped[list["IncidentMessage"]] = relationship(
        back_populates="incident", order_by="IncidentMessage.created_at"
    )
    interventions: Mapped[list["Intervention"]] = relationship(back_populates="incident")

    @property
    def reference(self) -> str:
        return f"#{self.id}"


class IncidentMessage(db.Model):
    """A reply to the customer, an internal note, or a message from the customer.

    Replies are stored as outgoing with email_status "pending" until the email
    issue sends them through a mailbox.
    """

    __table_args__ = (CheckConstraint(f"kind IN {MESSAGE_KINDS!r}", name="kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incident.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(10), default="note")
    body: Mapped[str] = mapped_column(Text)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    email_status: Mapped[str | None] = mapped_column(String(20))
    # The mail this message was sent as (a reply) or came in as (from the customer).
    email_message_id: Mapped[int | None] = mapped_column(
        ForeignKey("email_message.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    incident: Mapped[Incident] = relationship(back_populates="messages")
    author: Mapped[User | None] = relationship()
    email: Mapped["EmailMessage | None"] = relationship()  # noqa: F821  (crm.models.mail)


@audited(exclude=("signature_png",))
class Intervention(Timestamps, db.Model):
    """An on-site visit by one or more technicians, for an incident or a deal."""

    __table_args__ = (
        CheckConstraint(f"status IN {INTERVENTION_STATUSES!r}", name="status"),
        CheckConstraint(
            "(starts_at IS NULL AND ends_at IS NULL) OR ends_at > starts_at", name="time_range"
        ),
        Index("ix_intervention_status_start", "status", "starts_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(12), default="unscheduled")
    incident_id: Mapped[int | None] = mapped_column(
        ForeignKey("incident.id", ondelete="SET NULL"), index=True
    )
    deal_id: Mapped[int | None] = mapped_column(
        ForeignKey("deal.id", ondelete="SET NULL"), index=True
    )
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contact.id", ondelete="SET NULL"), index=True
    )
    company_id: Mapped[int | None] = mapped_column(
        ForeignKey("company.id", ondelete="SET NULL"), index=True
    )
    # None while unscheduled (waiting on the dispatch board).
    starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    duration_minutes: Mapped[int] = mapped_column(default=60)
    address: Mapped[str | None] = mapped_column(String(400))
    skills: Mapped[list | None] = mapped_column(JSON)
    notes: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    # The report, written on site; saving it closes the intervention.
    work_done: Mapped[str | None] = mapped_column(Text)
    time_spent_minutes: Mapped[int | None]
    parts_used: Mapped[str | None] = mapped_column(Text)
    # The customer's signature as drawn on the screen: a PNG, base64 (a few KB).
    signature_png: Mapped[str | None] = mapped_column(Text)
    signed_by: Mapped[str | None] = mapped_column(String(200))
    status_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    incident: Mapped[Incident | None] = relationship(back_populates="interventions")
    deal: Mapped["Deal | None"] = relationship()  # noqa: F821  (crm.models.deals)
    contact: Mapped[Contact | None] = relationship()
    company: Mapped[Company | None] = relationship()
    created_by: Mapped[User | None] = relationship()
    bookings: Mapped[list["TechnicianBooking"]] = relationship(
        back_populates="intervention", cascade="all, delete-orphan"
    )


class TechnicianBooking(db.Model):
    """One technician on one intervention, with the time they are taken.

    The time is copied from the intervention so that the database itself can refuse
    two overlapping bookings of one technician: an exclusion constraint on
    PostgreSQL (migration 0006), a check inside BEGIN IMMEDIATE on SQLite
    (crm/services/bookings.py). Cancelled or done interventions free the slot
    (active = false).
    """

    __table_args__ = (
        UniqueConstraint("intervention_id", "technician_id", name="uq_booking_technician"),
        CheckConstraint("ends_at > starts_at", name="time_range"),
        Index("ix_booking_technician_start", "technician_id", "starts_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    intervention_id: Mapped[int] = mapped_column(
        ForeignKey("intervention.id", ondelete="CASCADE"), index=True
    )
    technician_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    active: Mapped[bool] = mapped_column(default=True)

    intervention: Mapped[Intervention] = relationship(back_populates="bookings")
    technician: Mapped[User] = relationship()
