"""Sales pipelines, their stages, deals with product lines, and sales targets."""

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Date,
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
from crm.models.contacts import Company, Contact, Timestamps
from crm.models.types import UTCDateTime, utcnow
from crm.models.users import Team, User

STAGE_KINDS = ("open", "won", "lost")
# Which stage stands for the meeting and the proposal in the conversion report.
MILESTONES = ("meeting", "proposal")
PERIOD_KINDS = ("month", "quarter")

Money = Numeric(14, 2)


@audited()
class Pipeline(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    position: Mapped[int] = mapped_column(default=0)
    is_default: Mapped[bool] = mapped_column(default=False)

    stages: Mapped[list["Stage"]] = relationship(
        back_populates="pipeline", order_by="Stage.position", cascade="all, delete-orphan"
    )

    def __str__(self) -> str:
        return self.name


@audited()
class Stage(db.Model):
    __table_args__ = (
        CheckConstraint(f"kind IN {STAGE_KINDS!r}", name="kind"),
        CheckConstraint("probability BETWEEN 0 AND 100", name="probability"),
        CheckConstraint(f"milestone IS NULL OR milestone IN {MILESTONES!r}", name="milestone"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    pipeline_id: Mapped[int] = mapped_column(
        ForeignKey("pipeline.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(80))
    position: Mapped[int] = mapped_column(default=0)
    probability: Mapped[int] = mapped_column(default=10)
    kind: Mapped[str] = mapped_column(String(10), default="open")
    milestone: Mapped[str | None] = mapped_column(String(20))
    # A deal resting here longer than this many days is flagged as stalled.
    stall_days: Mapped[int | None]

    pipeline: Mapped[Pipeline] = relationship(back_populates="stages")

    @property
    def is_closed(self) -> bool:
        return self.kind != "open"

    def __str__(self) -> str:
        return self.name


@audited(exclude=("name_key",))
class Product(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    name_key: Mapped[str] = mapped_column(String(250), default="", index=True)
    unit_price: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    # What one unit costs us: the margin a rep sees is price minus this.
    unit_cost: Mapped[Decimal | None] = mapped_column(Money)
    active: Mapped[bool] = mapped_column(default=True)

    def __str__(self) -> str:
        return f"{self.code} · {self.name}"


@audited(exclude=("title_key", "stage_entered_at"))
class Deal(Timestamps, db.Model):
    __table_args__ = (
        Index("ix_deal_stage_updated", "stage_id", "stage_entered_at"),
        Index("ix_deal_owner_close", "owner_id", "expected_close"),
        # The deal list's default order (last updated first), walked by keyset pagination.
        Index("ix_deal_updated_id", "updated_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    title_key: Mapped[str] = mapped_column(String(200), default="")
    pipeline_id: Mapped[int] = mapped_column(ForeignKey("pipeline.id"), index=True)
    stage_id: Mapped[int] = mapped_column(ForeignKey("stage.id"))
    amount: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    expected_close: Mapped[date | None] = mapped_column(Date)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    # Who saved last: named in the "changed by someone else" message.
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contact.id", ondelete="SET NULL"), index=True
    )
    company_id: Mapped[int | None] = mapped_column(
        ForeignKey("company.id", ondelete="SET NULL"), index=True
    )
    source: Mapped[str | None] = mapped_column(String(60))
    lost_reason: Mapped[str | None] = mapped_column(Text)
    # The incident (a complaint) this deal is the commercial follow-up of.
    incident_id: Mapped[int | None] = mapped_column(
        ForeignKey("incident.id", ondelete="SET NULL"), index=True
    )
    stage_entered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Optimistic locking: an UPDATE names the version it read, so the second of
    # two concurrent saves matches no row and is refused instead of overwriting.
    version_id: Mapped[int] = mapped_column(default=1)
    custom_fields: Mapped[dict | None] = mapped_column(JSON, default=dict)
    # The campaign the deal is attributed to (revenue per campaign, return on investment).
    campaign_id: Mapped[int | None] = mapped_column(
        ForeignKey("campaign.id", ondelete="SET NULL"), index=True
    )

    pipeline: Mapped[Pipeline] = relationship()
    stage: Mapped[Stage] = relationship()
    owner: Mapped[User | None] = relationship(foreign_keys=[owner_id])
    updated_by: Mapped[User | None] = relationship(foreign_keys=[updated_by_id])
    contact: Mapped[Contact | None] = relationship()
    company: Mapped[Company | None] = relationship()
    lines: Mapped[list["DealLine"]] = relationship(
        back_populates="deal", order_by="DealLine.position", cascade="all, delete-orphan"
    )

    __mapper_args__ = {"version_id_col": version_id}

    @property
    def weighted_amount(self) -> Decimal:
        return (self.amount * self.stage.probability / 100).quantize(Decimal("0.01"))

    def __str__(self) -> str:
        return self.title


@audited()
class DealLine(db.Model):
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity"),
        CheckConstraint("discount_percent BETWEEN 0 AND 100", name="discount"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    deal_id: Mapped[int] = mapped_column(ForeignKey("deal.id", ondelete="CASCADE"), index=True)
    product_id: Mapped[int | None] = mapped_column(ForeignKey("product.id"))
    description: Mapped[str] = mapped_column(String(300))
    quantity: Mapped[Decimal] = mapped_column(Numeric(12, 2), default=Decimal("1"))
    unit_price: Mapped[Decimal] = mapped_column(Money)
    # Copied from the product when the line is added: later price changes do not rewrite history.
    unit_cost: Mapped[Decimal | None] = mapped_column(Money)
    discount_percent: Mapped[Decimal] = mapped_column(Numeric(5, 2), default=Decimal("0"))
    position: Mapped[int] = mapped_column(default=0)

    deal: Mapped[Deal] = relationship(back_populates="lines")
    product: Mapped[Product | None] = relationship()

    @property
    def total(self) -> Decimal:
        gross = self.quantity * self.unit_price
        return (gross * (100 - self.discount_percent) / 100).quantize(Decimal("0.01"))

    @property
    def margin(self) -> Decimal | None:
        if self.unit_cost is None:
            return None
        return (self.total - self.quantity * self.unit_cost).quantize(Decimal("0.01"))


class DealStageHistory(db.Model):
    """Every move of a deal between stages: cycle lengths and conversion come from here."""

    __table_args__ = (Index("ix_deal_stage_history_deal_time", "deal_id", "changed_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    deal_id: Mapped[int] = mapped_column(ForeignKey("deal.id", ondelete="CASCADE"))
    from_stage_id: Mapped[int | None] = mapped_column(ForeignKey("stage.id", ondelete="SET NULL"))
    to_stage_id: Mapped[int | None] = mapped_column(
        ForeignKey("stage.id", ondelete="SET NULL"), index=True
    )
    changed_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    deal: Mapped[Deal] = relationship()
    from_stage: Mapped[Stage | None] = relationship(foreign_keys=[from_stage_id])
    to_stage: Mapped[Stage | None] = relationship(foreign_keys=[to_stage_id])


@audited()
class Quota(db.Model):
    """A revenue target for one rep or one team over a month or a quarter."""

    __table_args__ = (
        CheckConstraint(f"period_kind IN {PERIOD_KINDS!r}", name="period_kind"),
        CheckConstraint("(user_id IS NULL) <> (team_id IS NULL)", name="one_owner"),
        UniqueConstraint(
            "user_id", "team_id", "period_kind", "period_start", name="uq_quota_target"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("team.id", ondelete="CASCADE"))
    period_kind: Mapped[str] = mapped_column(String(10), default="month")
    period_start: Mapped[date] = mapped_column(Date)
    target: Mapped[Decimal] = mapped_column(Money)

    user: Mapped[User | None] = relationship()
    team: Mapped[Team | None] = relationship()
