"""The one timeline: every exchange with a customer is an Activity row."""

from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm.extensions import db
from crm.models.contacts import Company, Contact
from crm.models.types import UTCDateTime, utcnow
from crm.models.users import User

KINDS = ("note", "call", "email", "meeting", "visit", "system")
CALL_OUTCOMES = ("reached", "voicemail", "no_answer", "wrong_number")


class Activity(db.Model):
    __table_args__ = (
        CheckConstraint(f"kind IN {KINDS!r}", name="kind"),
        Index("ix_activity_contact_time", "contact_id", "occurred_at"),
        Index("ix_activity_company_time", "company_id", "occurred_at"),
        # The start page: what I did lately.
        Index("ix_activity_author_time", "author_id", "occurred_at"),
        # The funnel's meeting step: the meetings held about each deal.
        Index(
            "ix_activity_meeting_deal",
            "deal_id",
            "occurred_at",
            postgresql_where=text("kind = 'meeting'"),
            sqlite_where=text("kind = 'meeting'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    subject: Mapped[str | None] = mapped_column(String(200))
    body: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str | None] = mapped_column(String(30))
    duration_minutes: Mapped[int | None]
    # Structured facts of a system event ({"from": "lead", "to": "prospect"}),
    # rendered in the reader's language rather than stored as text.
    data: Mapped[dict | None] = mapped_column(JSON)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contact.id", ondelete="CASCADE"))
    # Set from the contact's company at the time of the exchange, so the company
    # timeline is one indexed query and keeps what happened while they worked there.
    company_id: Mapped[int | None] = mapped_column(ForeignKey("company.id", ondelete="CASCADE"))
    deal_id: Mapped[int | None] = mapped_column(
        ForeignKey("deal.id", ondelete="CASCADE"), index=True
    )
    # The incident this entry belongs to (a reply, a note, an intervention report).
    incident_id: Mapped[int | None] = mapped_column(
        ForeignKey("incident.id", ondelete="SET NULL"), index=True
    )
    # The agenda event this entry reports on (a meeting report, a logged visit).
    event_id: Mapped[int | None] = mapped_column(
        ForeignKey("event.id", ondelete="SET NULL"), index=True
    )

    # The message this entry shows (kind "email"): one entry per linked contact or company.
    email_message_id: Mapped[int | None] = mapped_column(
        ForeignKey("email_message.id", ondelete="CASCADE"), index=True
    )

    author: Mapped[User | None] = relationship()
    contact: Mapped[Contact | None] = relationship()
    company: Mapped[Company | None] = relationship()
    deal: Mapped["Deal | None"] = relationship()  # noqa: F821  (crm.models.deals)
