"""The kanban board of a pipeline: its columns, their totals, and the cards they show.

A board runs the same handful of queries whatever the number of deals: the
column totals come from one GROUP BY (stage, currency), over every deal of each
column, and the cards from one query: the FIRST_CARDS first deals of each stage,
one LIMITed select per stage joined with UNION ALL (each walks its stage in order
and stops early, where a window over the whole pipeline read every deal). The rest
of a column comes NEXT_CARDS at a time as one scrolls down it (column_cards), after
the last card shown (keyset). Won and lost columns only show what closed in the
last CLOSED_DAYS.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import Date, Select, func, literal_column, or_, select, union_all
from sqlalchemy.orm import joinedload

from crm.extensions import db
from crm.models import Company, Contact, Deal, Team, User
from crm.models.deals import Pipeline, Stage
from crm.models.types import utcnow
from crm.permissions import ADMIN, MANAGER, SALES, visible_deals
from crm.services import keyset
from crm.services.deal_filters import DealFilters
from crm.services.deals import StageColumn, is_stalled

# A screen of cards per column when the board opens, then a few screens per scroll: the
# board stays light however many deals a column holds, and every card is one scroll away.
FIRST_CARDS = 7
NEXT_CARDS = 20
CLOSED_DAYS = 30
DEFAULT_CURRENCY = "EUR"
CENT = Decimal("0.01")

# The order of a column's cards: soonest expected close first, undated last, then by id. The
# date is written into the SQL, not bound: the index on (stage_id, this expression, id) that
# lets each column stop after its first cards must see the same expression in every plan.
_UNDATED = date(2999, 12, 31)
CARD_ORDER = keyset.SortKey(
    func.coalesce(Deal.expected_close, literal_column(f"'{_UNDATED.isoformat()}'", Date)), "date"
)


def card_sort_value(deal: Deal) -> date:
    return deal.expected_close or _UNDATED


@dataclass
class CurrencyTotal:
    currency: str
    count: int
    total: Decimal
    weighted: Decimal


@dataclass
class BoardColumn(StageColumn):
    """A stage with its first cards; total and weighted are in `currency`, the column's main one.

    Amounts in other currencies are never added to those: they are in `others`.
    """

    currency: str = DEFAULT_CURRENCY
    others: list[CurrencyTotal] = field(default_factory=list)

    @property
    def more(self) -> int:
        """Deals of the column that are not shown as cards yet."""
        return max(self.count - len(self.deals), 0)

    @property
    def next_cursor(self) -> str | None:
        """Where the next cards of the column start: after the last one shown."""
        if not self.more or not self.deals:
            return None
        last = self.deals[-1]
        return keyset.encode_cursor(card_sort_value(last), last.id)


@dataclass
class CardPage:
    """The next cards of a column, and where the ones after them start (None: no more)."""

    deals: list[Deal]
    next_cursor: str | None


def closed_since(now: datetime | None = None) -> datetime:
    return (now or utcnow()) - timedelta(days=CLOSED_DAYS)


def _scoped(user: User, pipeline_id: int, filters: DealFilters, today: date | None) -> Select:
    return filters.apply(visible_deals(user).where(Deal.pipeline_id == pipeline_id), user, today)


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
    return _scoped(user, pipeline.id, filters, today).where(
        or_(Deal.stage_id.in_(open_stage_ids), Deal.closed_at >= closed_since(now))
    )


def stage_query(
    user: User,
    stage: Stage,
    filters: DealFilters,
    *,
    today: date | None = None,
    now: datetime | None = None,
) -> Select:
    """The deals of one column of the board: the same as board_query, for one stage."""
    query = _scoped(user, stage.pipeline_id, filters, today).where(Deal.stage_id == stage.id)
    if stage.is_closed:
        query = query.where(Deal.closed_at >= closed_since(now))
    return query


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


def _with_card_parts(query: Select) -> Select:
    """What a card shows besides the deal, in the same query: its owner's name and its
    customer's, not their whole rows (a contact's is wide)."""
    return query.options(
        joinedload(Deal.owner).load_only(User.name),
        joinedload(Deal.company).load_only(Company.name),
        joinedload(Deal.contact).load_only(
            Contact.first_name, Contact.last_name, Contact.email, Contact.phone
        ),
    )


def _first_ids(query: Select, limit: int) -> Select:
    """The ids of the first `limit` cards of a column, as a subquery UNION ALL can join."""
    ordered = query.with_only_columns(Deal.id.label("deal_id"))
    ordered = ordered.order_by(*keyset.ordering(CARD_ORDER, Deal.id, False)).limit(limit)
    return select(ordered.subquery().c.deal_id)


def card_deals(queries: dict[int, Select], limit: int) -> dict[int, list[Deal]]:
    """{stage id: its first `limit` deals}, from one query, for {stage id: its deals' query}."""
    if not queries:
        return {}
    ids = union_all(*(_first_ids(query, limit) for query in queries.values())).subquery()
    cards = _with_card_parts(select(Deal).where(Deal.id.in_(select(ids.c.deal_id))))
    by_stage: dict[int, list[Deal]] = defaultdict(list)
    for deal in db.session.scalars(cards):
        by_stage[deal.stage_id].append(deal)
    for deals in by_stage.values():
        deals.sort(key=lambda deal: (card_sort_value(deal), deal.id))
    return by_stage


def column_cards(
    user: User,
    stage: Stage,
    filters: DealFilters,
    cursor: str | None,
    *,
    size: int | None = None,
    today: date | None = None,
    now: datetime | None = None,
) -> CardPage:
    """The cards of one column after `cursor` (the last card shown), NEXT_CARDS at a time."""
    size = size or NEXT_CARDS
    query = stage_query(user, stage, filters, today=today, now=now)
    query = keyset.paginate(_with_card_parts(query), CARD_ORDER, Deal.id, False, cursor, size)
    deals, next_cursor = keyset.split_page(list(db.session.scalars(query)), size, card_sort_value)
    return CardPage(deals, next_cursor)


def load_board(
    user: User,
    pipeline: Pipeline,
    filters: DealFilters,
    *,
    today: date | None = None,
    now: datetime | None = None,
    limit: int | None = None,
) -> list[BoardColumn]:
    """One column per stage of `pipeline`, in order, with totals and the first cards
    (FIRST_CARDS unless `limit` says)."""
    stages = list(pipeline.stages)
    query = board_query(user, pipeline, filters, today=today, now=now)
    totals = currency_totals(query, stages)
    per_stage = {
        stage.id: stage_query(user, stage, filters, today=today, now=now) for stage in stages
    }
    cards = card_deals(per_stage, limit or FIRST_CARDS)
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


def shows_owners(user: User) -> bool:
    """Whether the cards name their owner: a rep's board holds only the rep's own deals."""
    return user.role != SALES


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
