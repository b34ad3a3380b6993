"""Deals: creating them, moving them through a pipeline, their lines and amounts.

Every save names the version of the deal it was based on; a save based on an
older version raises StaleDeal, which the routes turn into a 409.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import joinedload, selectinload
from sqlalchemy.orm.exc import StaleDataError

from crm.extensions import db
from crm.models import Contact, User
from crm.models.deals import Deal, DealLine, DealStageHistory, Pipeline, Product, Stage
from crm.models.search_keys import fold
from crm.models.types import utcnow
from crm.services.timeline import record_activity

DEFAULT_PIPELINES = {
    "New business": [
        # name, probability, kind, milestone, stall_days
        ("Prospection", 10, "open", None, 14),
        ("First contact", 20, "open", None, 14),
        ("Demo", 40, "open", "meeting", 21),
        ("Proposal review", 70, "open", "proposal", 21),
        ("Won", 100, "won", None, None),
        ("Lost", 0, "lost", None, None),
    ],
    "Renewals": [
        ("Renewal due", 60, "open", None, 30),
        ("Proposal sent", 80, "open", "proposal", 21),
        ("Renewed", 100, "won", None, None),
        ("Churned", 0, "lost", None, None),
    ],
}


class StaleDeal(Exception):
    """Someone else saved the deal since this user loaded it."""

    def __init__(self, deal: Deal):
        super().__init__(f"deal {deal.id} changed")
        self.deal = deal


class LostReasonRequired(ValueError):
    """A deal does not go to a lost stage without saying why."""


def create_default_pipelines() -> list[Pipeline]:
    pipelines = []
    for position, (name, stages) in enumerate(DEFAULT_PIPELINES.items()):
        pipeline = Pipeline(name=name, position=position, is_default=position == 0)
        for index, (stage_name, probability, kind, milestone, stall_days) in enumerate(stages):
            pipeline.stages.append(
                Stage(
                    name=stage_name,
                    position=index,
                    probability=probability,
                    kind=kind,
                    milestone=milestone,
                    stall_days=stall_days,
                )
            )
        db.session.add(pipeline)
        pipelines.append(pipeline)
    return pipelines


def pipelines() -> list[Pipeline]:
    return list(db.session.scalars(select(Pipeline).order_by(Pipeline.position, Pipeline.id)))


def default_pipeline() -> Pipeline | None:
    query = select(Pipeline).order_by(Pipeline.is_default.desc(), Pipeline.position, Pipeline.id)
    return db.session.scalars(query).first()


def contact_deals(user: User, contact: Contact) -> list[Deal]:
    """The deals of a contact that `user` may see, open ones first."""
    from sqlalchemy.orm import joinedload

    from crm.permissions import visible_deals

    query = (
        visible_deals(user)
        .where(Deal.contact_id == contact.id)
        .join(Deal.stage)
        .options(joinedload(Deal.stage))
        .order_by((Stage.kind != "open"), Deal.expected_close, Deal.id)
        .limit(20)
    )
    return list(db.session.scalars(query))


def create_deal(
    actor: User,
    *,
    title: str,
    pipeline: Pipeline,
    stage: Stage | None = None,
    amount: Decimal | None = None,
    currency: str = "EUR",
    contact: Contact | None = None,
    company=None,
    owner: User | None = None,
    expected_close=None,
    source: str | None = None,
) -> Deal:
    stage = stage or pipeline.stages[0]
    if stage.pipeline is not pipeline:
        raise ValueError("stage of another pipeline")
    if company is None and contact is not None:
        company = contact.company
    deal = Deal(
        title=title.strip(),
        title_key=fold(title),
        pipeline=pipeline,
        stage=stage,
        amount=amount or Decimal("0"),
        currency=currency,
        contact=contact,
        company=company,
        owner=owner or actor,
        updated_by=actor,
        expected_close=expected_close,
        source=source,
        # First-touch attribution: the campaign that brought the contact in.
        campaign_id=contact.campaign_id if contact is not None else None,
    )
    db.session.add(deal)
    db.session.add(
        DealStageHistory(deal=deal, from_stage=None, to_stage=stage, changed_by_id=actor.id)
    )
    record_activity(
        actor,
        "system",
        contact=contact,
        company=company,
        deal=deal,
        data={"event": "deal_created", "deal": deal.title},
    )
    return deal


def check_version(deal: Deal, expected_version: int | None) -> None:
    if expected_version is not None and deal.version_id != expected_version:
        raise StaleDeal(deal)


def move_deal(
    actor: User,
    deal: Deal,
    stage: Stage,
    expected_version: int | None,
    lost_reason: str | None = None,
) -> bool:
    """Put the deal in `stage`; False when it already was there."""
    check_version(deal, expected_version)
    if stage.pipeline is not deal.pipeline:
        raise ValueError("stage of another pipeline")
    if stage is deal.stage:
        return False
    if stage.kind == "lost" and not (lost_reason or "").strip():
        raise LostReasonRequired()
    previous = deal.stage
    now = utcnow()
    db.session.add(
        DealStageHistory(
            deal=deal, from_stage=previous, to_stage=stage, changed_by_id=actor.id, changed_at=now
        )
    )
    deal.stage = stage
    deal.stage_entered_at = now
    deal.closed_at = now if stage.is_closed else None
    deal.lost_reason = lost_reason.strip() if stage.kind == "lost" else None
    deal.updated_by = actor
    data = {"event": "deal_stage", "deal": deal.title, "from": previous.name, "to": stage.name}
    if stage.kind == "lost":
        data["reason"] = deal.lost_reason
    record_activity(
        actor, "system", contact=deal.contact, company=deal.company, deal=deal, data=data
    )
    return True


def card_options() -> tuple:
    """What a moved card and its columns' heads read, joined into the deal's one query:
    its stage, owner and customer, the pipeline and all its stages (the card's <select>)."""
    return (
        joinedload(Deal.stage),
        joinedload(Deal.owner),
        joinedload(Deal.contact),
        joinedload(Deal.company),
        joinedload(Deal.pipeline).joinedload(Pipeline.stages),
    )


def page_options() -> tuple:
    """What a deal's page shows around the deal, joined into the deal's query: its
    customer, owner, stage, pipeline and the pipeline's stages (the stepper); the lines
    and their products come in a second query (many rows: not joined to the stages)."""
    return (
        joinedload(Deal.contact).joinedload(Contact.company),
        joinedload(Deal.company),
        joinedload(Deal.owner),
        joinedload(Deal.stage),
        joinedload(Deal.pipeline).joinedload(Pipeline.stages),
        selectinload(Deal.lines).joinedload(DealLine.product),
    )


def reload_for_page(deal_id: int) -> Deal:
    """The deal again after a commit, with what its page shows (see reload_for_card)."""
    query = select(Deal).where(Deal.id == deal_id).options(*page_options())
    return db.session.scalars(query.execution_options(populate_existing=True)).unique().one()


def reload_for_card(deal_id: int) -> Deal:
    """The deal again after a commit, which expired it and everything around it: one query
    instead of one per expired object (the deal, its stages, its owner) as each is read.
    By id: even reading `deal.id` of the expired deal would cost a query."""
    query = select(Deal).where(Deal.id == deal_id).options(*card_options())
    return db.session.scalars(query.execution_options(populate_existing=True)).unique().one()


def save(deal: Deal) -> None:
    """Commit; a concurrent save that got there first turns into StaleDeal.

    On PostgreSQL the loser's UPDATE waits for the winner's row lock, then
    matches no row (its version is gone): StaleDataError. On SQLite the loser's
    write is refused while the winner holds the database, or after it wrote: the
    same conflict, reported as a locked database.
    """
    try:
        db.session.commit()
    except StaleDataError:
        db.session.rollback()
        raise StaleDeal(deal) from None
    except OperationalError as error:
        if "locked" not in str(error).lower() and "busy" not in str(error).lower():
            raise
        db.session.rollback()
        raise StaleDeal(deal) from None


def add_line(
    deal: Deal,
    *,
    product: Product | None,
    description: str | None,
    quantity: Decimal,
    unit_price: Decimal | None,
    discount_percent: Decimal = Decimal("0"),
) -> DealLine:
    line = DealLine(
        product=product,
        description=(description or (product.name if product else "")).strip(),
        quantity=quantity,
        unit_price=unit_price
        if unit_price is not None
        else (product.unit_price if product else Decimal("0")),
        unit_cost=product.unit_cost if product else None,
        discount_percent=discount_percent,
        position=len(deal.lines),
    )
    deal.lines.append(line)
    follow_lines(deal)
    return line


def remove_line(deal: Deal, line: DealLine) -> None:
    deal.lines.remove(line)
    follow_lines(deal)


def follow_lines(deal: Deal) -> None:
    """With product lines, the amount is their sum; without, it is typed by hand."""
    if deal.lines:
        deal.amount = sum((line.total for line in deal.lines), Decimal("0"))


def margin(deal: Deal) -> Decimal | None:
    margins = [line.margin for line in deal.lines]
    if not margins or any(m is None for m in margins):
        return None
    return sum(margins, Decimal("0"))


def is_stalled(deal: Deal, now: datetime | None = None) -> bool:
    stall_days = deal.stage.stall_days
    if deal.stage.is_closed or not stall_days:
        return False
    return (now or utcnow()) - deal.stage_entered_at > timedelta(days=stall_days)


@dataclass
class StageColumn:
    stage: Stage
    deals: list[Deal]
    count: int
    total: Decimal
    weighted: Decimal
