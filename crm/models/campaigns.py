"""Segments and mailing campaigns, and what each campaign brought in.

A segment is a saved filter, evaluated when used (its count is live); a campaign sends one
template to a segment's contacts through the outbox, one CampaignRecipient row per person,
so a send interrupted anywhere resumes without sending anyone twice.
"""

from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    JSON,
    CheckConstraint,
    ForeignKey,
    Index,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm.extensions import db
from crm.models.audit import audited
from crm.models.contacts import Contact, Timestamps
from crm.models.types import UTCDateTime, utcnow
from crm.models.users import User

SEGMENT_ENTITIES = ("contact", "company")
CAMPAIGN_STATUSES = ("draft", "sending", "paused", "sent", "cancelled")
RECIPIENT_STATUSES = ("pending", "queued", "sent", "failed", "skipped")


@audited()
class Segment(Timestamps, db.Model):
    """Saved filters over contacts or companies (crm/services/segments.py reads `filters`)."""

    __table_args__ = (CheckConstraint(f"entity IN {SEGMENT_ENTITIES!r}", name="entity"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    entity: Mapped[str] = mapped_column(String(10), default="contact")
    # [{"field": "stage", "op": "in", "value": ["lead"]}, {"field": "score", "op": "gte", ...}]
    filters: Mapped[list] = mapped_column(JSON, default=list)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    # Shared segments are listed for everyone; others for their owner only.
    shared: Mapped[bool] = mapped_column(default=True)

    owner: Mapped[User | None] = relationship()


@audited(exclude=("sent_count",))
class Campaign(Timestamps, db.Model):
    __table_args__ = (CheckConstraint(f"status IN {CAMPAIGN_STATUSES!r}", name="status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(160))
    status: Mapped[str] = mapped_column(String(10), default="draft")
    segment_id: Mapped[int | None] = mapped_column(ForeignKey("segment.id", ondelete="SET NULL"))
    template_id: Mapped[int | None] = mapped_column(
        ForeignKey("email_template.id", ondelete="SET NULL")
    )
    mailbox_id: Mapped[int | None] = mapped_column(ForeignKey("mailbox.id", ondelete="SET NULL"))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    # The text sent, copied from the template when the campaign is prepared, then editable.
    subject: Mapped[str] = mapped_column(String(300), default="")
    body: Mapped[str] = mapped_column(Text, default="")
    track_opens: Mapped[bool] = mapped_column(default=True)
    # Sends per minute: the worker paces the outbox so mail servers do not throttle us.
    rate_per_minute: Mapped[int] = mapped_column(default=30)
    # Replies become a task for the contact's owner, or for the campaign owner.
    replies_to: Mapped[str] = mapped_column(String(14), default="contact_owner")
    # What the campaign cost (printing, ads, tools), for cost per lead and return on investment.
    cost: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=Decimal("0"))
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_count: Mapped[int] = mapped_column(default=0)

    segment: Mapped[Segment | None] = relationship()
    template: Mapped["EmailTemplate | None"] = relationship()  # noqa: F821  (crm.models.support)
    mailbox: Mapped["Mailbox | None"] = relationship()  # noqa: F821  (crm.models.mail)
    owner: Mapped[User | None] = relationship()


class CampaignRecipient(db.Model):
    __table_args__ = (
        CheckConstraint(f"status IN {RECIPIENT_STATUSES!r}", name="status"),
        UniqueConstraint("campaign_id", "contact_id", name="uq_campaign_recipient_contact"),
        Index("ix_campaign_recipient_status", "campaign_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"))
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contact.id", ondelete="SET NULL"), index=True
    )
    email: Mapped[str] = mapped_column(String(254), default="")
    status: Mapped[str] = mapped_column(String(8), default="pending")
    # Why nobody was sent to: "unsubscribed", "consent_refused", "no_email", "duplicate_email".
    skip_reason: Mapped[str | None] = mapped_column(String(20))
    email_message_id: Mapped[int | None] = mapped_column(
        ForeignKey("email_message.id", ondelete="SET NULL"), index=True
    )
    # The unsubscribe link's secret: /u/<token>, valid for every later campaign.
    unsubscribe_token: Mapped[str] = mapped_column(String(64), unique=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    replied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    campaign: Mapped[Campaign] = relationship()
    contact: Mapped[Contact | None] = relationship()
