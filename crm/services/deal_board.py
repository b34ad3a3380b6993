"""The kanban board of a pipeline: its columns, their totals, and the cards they show.

A board runs the same handful of queries whatever the number of deals: the
column totals come from one GROUP BY (stage, currency), and the cards from one
query that keeps the first CARD_LIMIT deals of each stage with a window
function. Won and lost columns only show what closed in the last CLOSED_DAYS.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import joinedload

from crm.extensions import db
from crm.models import Deal, Team, User
from crm.models.deals import Pipeline, Stage
from crm.models.types import utcnow
from crm.permissions import ADMIN, MANAGER, SALES, visible_deals
from crm.services.deal_filters import DealFilters
from crm.services.deals import StageColumn, is_stalled

# Fifty cards are already several screens of a column; the rest is one link away, in the list.
CARD_LIMIT = 50
CLOSED_DAYS = 30
DEFAULT_CURRENCY = "EUR"
CENT = Decimal("0.01")


@dataclass
class CurrencyTotal:
    currency: str
    count: int
    total: Decimal
    weighted: Decimal


@dataclass
class BoardColumn(StageColumn):
    """A stage with its cards; total and weighted are in `currency`, the column's main one.

    Amounts in other currencies are never added to those: they are in `others`.
    """

    currency: str = DEFAULT_CURRENCY
    others: list[CurrencyTotal] = field(default_factory=list)

    @property
    def more(self) -> int:
        """Deals of the column that are not shown as cards."""
        return max(self.count - len(self.deals), 0)


def closed_since(now: datetime | None = None) -> datetime:
    return (now or utcnow()) - timedelta(days=CLOSED_DAYS)


def board_query(
    user: User,
    pipeline: Pipeline,
    filters: DealFilters,
    *,
    today: date | None = None,
    now: datetime | None = None,
) -> Select:
    """The deals the board of `pipeline` shows to `user`: scoped, filtered, recent if closed."""
    open_stage_ids = [stage.id for stage in pipeline.stages if not stage.is_closed]
    query = visible_deals(user).where(
        Deal.pipeline_id == pipeline.id,
        or_(Deal.stage_id.in_(open_stage_ids), Deal.closed_at >= closed_since(now)),
    )
    return filters.apply(query, user, today)


def currency_totals(query: Select, stages: list[Stage]) -> dict[int, list[CurrencyTotal]]:
    """{stage id: totals per currency, most deals first}, from one GROUP BY."""
    probability = {stage.id: stage.probability for stage in stages}
    grouped = query.with_only_columns(
        Deal.stage_id, Deal.currency, func.count(Deal.id), func.sum(Deal.amount)
    ).group_by(Deal.stage_id, Deal.currency)
    totals: dict[int, list[CurrencyTotal]] = defaultdict(list)
    for stage_id, currency, count, amount in db.session.execute(grouped):
        amount = Decimal(amount or 0).quantize(CENT)
        weighted = (amount * probability.get(stage_id, 0) / 100).quantize(CENT)
        totals[stage_id].append(CurrencyTotal(currency, count, amount, weighted))
    for per_currency in totals.values():
        per_currency.sort(key=_main_first)
    return totals


def _main_first(total: CurrencyTotal):
    return (-total.count, total.currency != DEFAULT_CURRENCY, total.currency)


def make_column(stage: Stage, totals: list[CurrencyTotal], deals: list[Deal]) -> BoardColumn:
    main = totals[0] if totals else CurrencyTotal(DEFAULT_CURRENCY, 0, Decimal("0"), Decimal("0"))
    return BoardColumn(
        stage=stage,
        deals=deals,
        count=sum(t.count for t in totals),
        total=main.total,
        weighted=main.weighted,
        currency=main.currency,
        others=totals[1:],
    )


def card_deals(query: Select, limit: int = CARD_LIMIT) -> dict[int, list[Deal]]:
    """{stage id: its first `limit` deals}: soonest expected close first, undated last."""
    rank = (
        func.row_number()
        .over(
            partition_by=Deal.stage_id,
            order_by=(Deal.expected_close.nulls_last(), Deal.id),
        )
        .label("rank")
    )
    ranked = query.with_only_columns(Deal.id.label("deal_id"), rank).subquery()
    cards = (
        select(Deal)
        .join(ranked, ranked.c.deal_id == Deal.id)
        .where(ranked.c.rank <= limit)
        .options(joinedload(Deal.owner), joinedload(Deal.company), joinedload(Deal.contact))
        .order_by(Deal.stage_id, ranked.c.rank)
    )
    by_stage: dict[int, list[Deal]] = defaultdict(list)
    for deal in db.session.scalars(cards):
        by_stage[deal.stage_id].append(deal)
    return by_stage


def load_board(
    user: User,
    pipeline: Pipeline,
    filters: DealFilters,
    *,
    today: date | None = None,
    now: datetime | None = None,
    limit: int = CARD_LIMIT,
) -> list[BoardColumn]:
    """One column per stage of `pipeline`, in order, with totals and the first cards."""
    stages = list(pipeline.stages)
    query = board_query(user, pipeline, filters, today=today, now=now)
    totals = currency_totals(query, stages)
    cards = card_deals(query, limit) if stages else {}
    return [
        make_column(stage, totals.get(stage.id, []), cards.get(stage.id, [])) for stage in stages
    ]


def column_heads(
    user: User,
    pipeline: Pipeline,
    filters: DealFilters,
    stages: list[Stage],
    *,
    today: date | None = None,
    now: datetime | None = None,
) -> list[BoardColumn]:
    """The totals of a few columns (after a move), without their cards."""
    ids = [stage.id for stage in stages]
    query = board_query(user, pipeline, filters, today=today, now=now).where(Deal.stage_id.in_(ids))
    totals = currency_totals(query, stages)
    return [make_column(stage, totals.get(stage.id, []), []) for stage in stages]


def is_overdue(deal: Deal, today: date) -> bool:
    return (
        deal.expected_close is not None and deal.expected_close < today and not deal.stage.is_closed
    )


def card_flags(deal: Deal, today: date, now: datetime | None = None) -> dict[str, bool]:
    return {"stalled": is_stalled(deal, now), "overdue": is_overdue(deal, today)}


# ---- what the filters offer ---------------------------------------------------


def owner_choices(user: User) -> list[User]:
    """The people whose deals `user` may filter on: everyone for an admin, the team for a manager.

    A sales rep only sees their own deals, so the choice would be empty.
    """
    if user.role not in (ADMIN, MANAGER):
        return []
    query = select(User).where(User.active.is_(True), User.role.in_((ADMIN, MANAGER, SALES)))
    if user.role == MANAGER:
        query = (
            query.where(User.team_id == user.team_id)
            if user.team_id
            else query.where(User.id == user.id)
        )
    return list(db.session.scalars(query.order_by(User.name)))


def team_choices(user: User) -> list[Team]:
    """Only an admin sees several teams' deals."""
    if user.role != ADMIN:
        return []
    return list(db.session.scalars(select(Team).order_by(Team.name)))
