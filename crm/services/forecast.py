"""Forecasts and objectives: the weighted pipeline, won revenue, targets, margin, conversion.

Every figure is computed from the deals a user may see (`visible_deals`), so that a total on the
forecast page is the sum of the deals listed behind it. The database does the sums (GROUP BY
queries, in whole cents rounded deal by deal: crm.sql_exact), so the page runs the same few
queries however many deals there are. Money stays `Decimal` and is grouped per
currency: an `Amounts` maps a currency code to a sum, and EUR is never added to USD.

Rules the figures follow:

- A deal's weighted amount is its amount times its stage's probability, rounded to the cent per
  deal (as `Deal.weighted_amount` does), so that a bucket equals the sum of its deals.
- The open pipeline is bucketed by expected close month relative to today: overdue (expected
  close before today), this month and the five next, later, and without a date.
- The forecast of a period is what was won in it (deals in a won stage, by `closed_at` in the
  user's time zone) plus the weighted amount of the open deals expected to close from today to the
  end of the period. An overdue deal counts in no forecast until its date is moved: it is listed
  among the deals at risk instead.
- Quotas carry no currency: a target is read in the quota currency (EUR by default) and only
  deals in that currency count towards it; the others are shown beside it, never converted.
"""

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from typing import NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import (
    BigInteger,
    Boolean,
    ColumnElement,
    Select,
    and_,
    case,
    false,
    func,
    literal,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import aliased
from sqlalchemy.sql.visitors import InternalTraversal

from crm.extensions import db
from crm.i18n import DEFAULT_TIMEZONE
from crm.models import Company, Deal, DealLine, DealStageHistory, Quota, Stage, Team, User
from crm.permissions import ADMIN, MANAGER, SALES, visible_deals
from crm.sql_exact import div_half_even, epoch_microseconds, hundredths, wide_hundredths

ZERO = Decimal("0")
CENT = Decimal("0.01")
TENTH = Decimal("0.1")
DEFAULT_QUOTA_CURRENCY = "EUR"
PIPELINE_MONTHS = 6  # this month and the five after it
WON_MONTHS = 6
# The deals at risk listed: the worst first, as many as one looks through at a sitting
# (the count says how many more there are).
AT_RISK_LIMIT = 25
# Who carries a target and owns deals: the rows of the team table and of the quotas page.
SELLING_ROLES = (SALES, MANAGER)


# ---- money and periods -------------------------------------------------------------------


class Amounts(dict):
    """Sums per currency: {"EUR": Decimal("1200.00"), "USD": ...}."""

    def add(self, currency: str, value: Decimal) -> None:
        self[currency] = self.get(currency, ZERO) + value

    def of(self, currency: str) -> Decimal:
        return self.get(currency, ZERO)

    def merged(self, other: "Amounts") -> "Amounts":
        result = Amounts(self)
        for currency, value in other.items():
            result.add(currency, value)
        return result

    def items_sorted(self) -> list[tuple[str, Decimal]]:
        return sorted(self.items())

    def others(self, currency: str) -> "Amounts":
        """Every currency but `currency`: what a target in `currency` does not count."""
        return Amounts({c: v for c, v in self.items() if c != currency and v})


def add_months(day: date, months: int) -> date:
    """The first day of the month `months` after (or before) the month of `day`."""
    years, month_index = divmod(day.month - 1 + months, 12)
    return date(day.year + years, month_index + 1, 1)


MIN_YEAR, MAX_YEAR = 1970, 2999  # what a URL may ask for: far enough, and no date overflow
_PERIOD_KEY = re.compile(r"^(\d{4})-(?:(0[1-9]|1[0-2])|Q([1-4]))$")


@dataclass(frozen=True)
class Period:
    """A calendar month or quarter: [start, end)."""

    kind: str  # "month" | "quarter"
    start: date

    @classmethod
    def containing(cls, kind: str, day: date) -> "Period":
        if kind == "quarter":
            return cls("quarter", date(day.year, 3 * ((day.month - 1) // 3) + 1, 1))
        return cls("month", day.replace(day=1))

    @classmethod
    def parse(cls, text: str | None, today: date) -> "Period":
        """'2026-03' is March 2026, '2026-Q1' its quarter; anything else the current month."""
        match = _PERIOD_KEY.match((text or "").strip())
        if not match or not MIN_YEAR <= int(match.group(1)) <= MAX_YEAR:
            return cls.containing("month", today)
        year = int(match.group(1))
        if match.group(3):
            return cls("quarter", date(year, 3 * (int(match.group(3)) - 1) + 1, 1))
        return cls("month", date(year, int(match.group(2)), 1))

    @property
    def length(self) -> int:
        return 3 if self.kind == "quarter" else 1

    @property
    def end(self) -> date:
        return add_months(self.start, self.length)

    @property
    def key(self) -> str:
        if self.kind == "quarter":
            return f"{self.start.year}-Q{(self.start.month - 1) // 3 + 1}"
        return f"{self.start.year}-{self.start.month:02d}"

    @property
    def previous(self) -> "Period":
        return Period(self.kind, add_months(self.start, -self.length))

    @property
    def next(self) -> "Period":
        return Period(self.kind, add_months(self.start, self.length))

    @property
    def quarter(self) -> "Period":
        return Period.containing("quarter", self.start)

    def as_month(self, today: date) -> "Period":
        """The month to show when switching a quarter to months: today's if inside, else the first."""
        return Period.containing("month", today if self.contains(today) else self.start)

    def contains(self, day: date | None) -> bool:
        return day is not None and self.start <= day < self.end

    def months(self) -> list[date]:
        return [add_months(self.start, i) for i in range(self.length)]

    def utc_bounds(self, tz: ZoneInfo) -> tuple[datetime, datetime]:
        """The period as aware UTC datetimes, its days being those of time zone `tz`."""
        return _local_midnight(self.start, tz), _local_midnight(self.end, tz)


def _local_midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def user_timezone(user: User) -> ZoneInfo:
    try:
        return ZoneInfo(user.timezone or DEFAULT_TIMEZONE)
    except (ValueError, KeyError):
        return ZoneInfo(DEFAULT_TIMEZONE)


def local_today(user: User, now: datetime | None = None) -> date:
    return (now or datetime.now(UTC)).astimezone(user_timezone(user)).date()


def percent(part: Decimal, whole: Decimal) -> Decimal | None:
    """part / whole in per cent, to one decimal; None when there is nothing to divide by."""
    if not whole:
        return None
    return (Decimal(part) * 100 / Decimal(whole)).quantize(TENTH, ROUND_HALF_UP)


# ---- whose deals ---------------------------------------------------------------------------


@dataclass
class Scope:
    """The deals the figures are made of, and the team whose target they are compared with.

    A rep: their own deals, no team. A manager: what `visible_deals` gives them (their team's
    deals, and those without an owner), against their team's target. An admin: every deal, or
    those of the members of the team they picked, against that team's target.
    """

    user: User
    team: Team | None = None
    narrowed_to_team: bool = False

    @classmethod
    def of(cls, user: User, team: Team | None = None) -> "Scope":
        if user.role == ADMIN:
            return cls(user, team, narrowed_to_team=team is not None)
        if user.role == MANAGER:
            return cls(user, user.team)
        return cls(user)

    @property
    def is_team(self) -> bool:
        """Does the page show several people (team table) rather than one rep's figures?"""
        return self.user.role in (ADMIN, MANAGER)

    def deals(self) -> Select:
        query = visible_deals(self.user)
        if self.narrowed_to_team:
            members = select(User.id).where(User.team_id == self.team.id)
            query = query.where(Deal.owner_id.in_(members))
        return query

    def condition(self):
        """The scope as a condition on Deal, for queries that read the deal table themselves
        (rather than `Deal.id IN (...)`, which makes the database read it twice)."""
        condition = self.deals().whereclause
        return true() if condition is None else condition

    def people(self, owner_ids: set[int | None]) -> list[User]:
        """The rows of the team table: who sells in the scope, and whoever owns one of its deals."""
        if not self.is_team:
            return [self.user]
        condition = and_(User.active.is_(True), User.role.in_(SELLING_ROLES))
        if self.team is not None:
            condition = and_(condition, User.team_id == self.team.id)
        elif self.user.role == MANAGER:
            condition = User.id == self.user.id  # a manager without a team sees only their own
        ids = {i for i in owner_ids if i is not None}
        query = select(User).where(or_(condition, User.id.in_(ids)) if ids else condition)
        return sorted(db.session.scalars(query), key=lambda u: (u.name.lower(), u.id))


# ---- the deals, summed in SQL ------------------------------------------------------------------

# Open deals are bucketed by expected close: 0 is this month (from today), 1 to 5 the next ones.
OVERDUE, UNDATED, LATER = -1, -2, PIPELINE_MONTHS
MICROSECONDS_A_DAY = 86_400_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def cents(value) -> Decimal:
    """A whole number of hundredths from SQL (int or Decimal) as money: 123456 -> 1234.56."""
    return Decimal(int(value)).scaleb(-2)


def weighted_cents():
    """A deal's weighted amount in cents, rounded per deal as Deal.weighted_amount does."""
    return div_half_even(hundredths(Deal.amount) * Stage.probability, 100)


class DealSums(NamedTuple):
    """Deals summed in SQL: one owner's, in one currency, of one stage kind, in one bucket.

    Open deals are bucketed by expected close (`bucket`: OVERDUE, UNDATED, LATER or the month's
    index from this month); won and lost deals by the span of `closed_bounds` they closed in
    (`closed_from`: its start).
    """

    owner_id: int | None
    currency: str
    kind: str
    bucket: int | None
    closed_from: datetime | None
    count: int
    amount: Decimal
    weighted: Decimal  # open deals
    expected: tuple[bool, ...]  # open deals: expected to close in each window (from today on)
    cycle: int  # won deals: microseconds from creation to closing, summed


def expected_in(window, today: date):
    """Condition on an open deal: expected to close from today to the end of `window` (a
    Period or any period with a start and an end)."""
    return and_(Deal.expected_close >= max(window.start, today), Deal.expected_close < window.end)


def _open_bucket(today: date):
    this_month = today.replace(day=1)
    close = Deal.expected_close
    months = [(close < add_months(this_month, i + 1), i) for i in range(PIPELINE_MONTHS)]
    return case((close.is_(None), UNDATED), (close < today, OVERDUE), *months, else_=LATER)


def _closed_span(bounds: list[datetime]):
    closed = Deal.closed_at
    return case(*((closed < bounds[i + 1], i) for i in range(len(bounds) - 1)), else_=None)


def deal_sums(
    scope: Scope,
    today: date | None = None,
    *,
    windows=(),
    closed_bounds: list[datetime] | None = None,
) -> list[DealSums]:
    """The open deals of the scope (with `today`), and the won and lost ones closed between
    closed_bounds[0] and closed_bounds[-1] (aware datetimes, increasing): one pass over the
    deals, grouped by owner, currency, stage kind and bucket.

    `windows` (periods): open deals are also grouped by whether they are expected to close in
    each, from today on (`expected_sum`). Sums are made in cents, exact on every database; each
    deal's weighted amount is worked out once."""
    is_open = Stage.kind == "open"
    wanted, bucket = [], []
    if today is not None:
        wanted.append(is_open)
        bucket.append((is_open, _open_bucket(today)))
    if closed_bounds:
        closed = Deal.closed_at
        wanted.append(
            and_(
                Stage.kind.in_(("won", "lost")),
                closed >= closed_bounds[0],
                closed < closed_bounds[-1],
            )
        )
        bucket.append((Stage.kind != "open", _closed_span(closed_bounds)))
    if not wanted:
        return []
    weighted = weighted_cents()
    duration = epoch_microseconds(Deal.closed_at) - epoch_microseconds(Deal.created_at)
    rows = (
        select(
            Deal.owner_id,
            Deal.currency,
            Stage.kind,
            case(*bucket).label("bucket"),
            hundredths(Deal.amount).label("amount"),
            case((is_open, weighted), else_=0).label("weighted"),
            *(
                case((and_(is_open, expected_in(w, today)), 1), else_=0).label(f"expected{i}")
                for i, w in enumerate(windows)
            ),
            case((Stage.kind == "won", duration), else_=0).label("cycle"),
        )
        .join(Stage, Deal.stage_id == Stage.id)
        .where(scope.condition(), or_(*wanted))
        .subquery()
    )
    groups = [
        rows.c.owner_id,
        rows.c.currency,
        rows.c.kind,
        rows.c.bucket,
        *(rows.c[f"expected{i}"] for i in range(len(windows))),
    ]
    query = select(
        *groups,
        func.count(),
        func.sum(rows.c.amount),
        func.sum(rows.c.weighted),
        func.sum(rows.c.cycle),
    ).group_by(*groups)
    result = []
    for row in db.session.execute(query):
        owner_id, currency, kind, bucket_index, *expected, count, amount, weighted_sum, cycle = row
        is_open_group = kind == "open"
        result.append(
            DealSums(
                owner_id,
                currency,
                kind,
                bucket_index if is_open_group else None,
                None if is_open_group else closed_bounds[bucket_index],
                count,
                cents(amount),
                cents(weighted_sum),
                tuple(bool(flag) for flag in expected),
                int(cycle),
            )
        )
    return result


def won_between(sums: list[DealSums], start: datetime, end: datetime) -> Amounts:
    """Won in [start, end): the bounds must be among the closed_bounds the sums were made with."""
    won = Amounts()
    for s in sums:
        if s.kind == "won" and start <= s.closed_from < end:
            won.add(s.currency, s.amount)
    return won


def expected_sum(sums: list[DealSums], window: int) -> Amounts:
    """The weighted open amount expected in the `window`-th window."""
    weighted = Amounts()
    for s in sums:
        if s.kind == "open" and s.expected[window]:
            weighted.add(s.currency, s.weighted)
    return weighted


# ---- weighted pipeline ---------------------------------------------------------------------------


@dataclass
class Bucket:
    """Open deals grouped together: a month of expected close, overdue, later, undated, a rep."""

    key: str
    month: date | None = None
    count: int = 0
    amount: Amounts = field(default_factory=Amounts)
    weighted: Amounts = field(default_factory=Amounts)

    def add(self, sums: DealSums) -> None:
        self.count += sums.count
        self.amount.add(sums.currency, sums.amount)
        self.weighted.add(sums.currency, sums.weighted)


def pipeline_by_month(sums: list[DealSums], today: date) -> list[Bucket]:
    """Overdue, this month and the five next, later, undated: every open deal in exactly one."""
    this_month = today.replace(day=1)
    months = [add_months(this_month, i) for i in range(PIPELINE_MONTHS)]
    buckets = {OVERDUE: Bucket("overdue")}
    for index, month in enumerate(months):
        buckets[index] = Bucket(month.isoformat()[:7], month)
    buckets[LATER] = Bucket("later")
    buckets[UNDATED] = Bucket("undated")
    for s in sums:
        if s.kind == "open":
            buckets[s.bucket].add(s)
    return list(buckets.values())


def total_of(buckets: list[Bucket]) -> Bucket:
    total = Bucket("total")
    for bucket in buckets:
        total.count += bucket.count
        total.amount = total.amount.merged(bucket.amount)
        total.weighted = total.weighted.merged(bucket.weighted)
    return total


def pipeline_by_rep(sums: list[DealSums]) -> dict[int | None, Bucket]:
    by_owner: dict[int | None, Bucket] = {}
    for s in sums:
        if s.kind == "open":
            by_owner.setdefault(s.owner_id, Bucket(str(s.owner_id))).add(s)
    return by_owner


def month_bounds(months: list[date], tz: ZoneInfo) -> list[datetime]:
    """The UTC instants the months start at, and the end of the last one."""
    return [_local_midnight(m, tz) for m in [*months, add_months(months[-1], 1)]]


def won_by_month(
    sums: list[DealSums], months: list[date], tz: ZoneInfo
) -> list[tuple[date, Amounts]]:
    """Won per month (of `tz`): the sums' closed_bounds must hold the months' bounds."""
    starts = dict(zip(month_bounds(months, tz)[:-1], months, strict=True))
    by_month = {month: Amounts() for month in months}
    for s in sums:
        if s.kind == "won" and s.closed_from in starts:
            by_month[starts[s.closed_from]].add(s.currency, s.amount)
    return list(by_month.items())


# ---- objectives ------------------------------------------------------------------------------------


@dataclass
class Objective:
    """Won plus weighted open against a target, in the quota currency."""

    period: Period
    currency: str
    target: Decimal | None
    won: Amounts
    weighted: Amounts

    @property
    def forecast(self) -> Decimal:
        return self.won.of(self.currency) + self.weighted.of(self.currency)

    @property
    def won_percent(self) -> Decimal | None:
        return percent(self.won.of(self.currency), self.target) if self.target else None

    @property
    def forecast_percent(self) -> Decimal | None:
        return percent(self.forecast, self.target) if self.target else None

    @property
    def gap(self) -> Decimal | None:
        """What is still missing to reach the target, counting the weighted pipeline."""
        if not self.target:
            return None
        return max(self.target - self.forecast, ZERO)

    @property
    def not_counted(self) -> Amounts:
        """Won and weighted open in other currencies: shown, never added to the target's."""
        return self.won.merged(self.weighted).others(self.currency)


def quota_targets(
    period: Period, users: list[User] = (), teams: list[Team] = ()
) -> dict[tuple[str, int], Decimal]:
    """{("user", id) | ("team", id): target} for this exact period."""
    found = quota_targets_of([period], users, teams)
    return {key[1:]: value for key, value in found.items()}


def quota_targets_of(
    periods: list[Period], users: list[User] = (), teams: list[Team] = ()
) -> dict[tuple[Period, str, int], Decimal]:
    """{(period, "user" | "team", id): target} for these exact periods, in one query."""
    user_ids = [u.id for u in users]
    team_ids = [t.id for t in teams]
    if not periods or (not user_ids and not team_ids):
        return {}
    owner = or_(
        Quota.user_id.in_(user_ids) if user_ids else false(),
        Quota.team_id.in_(team_ids) if team_ids else false(),
    )
    when = or_(*(and_(Quota.period_kind == p.kind, Quota.period_start == p.start) for p in periods))
    targets = {}
    for quota in db.session.scalars(select(Quota).where(when, owner)):
        key = ("user", quota.user_id) if quota.user_id else ("team", quota.team_id)
        targets[(Period(quota.period_kind, quota.period_start), *key)] = quota.target
    return targets


# ---- margin -------------------------------------------------------------------------------------------


@dataclass
class MarginFigure:
    """The margin of some deals: summed where every line has a cost, else "unknown"."""

    amounts: Amounts = field(default_factory=Amounts)
    known: int = 0  # deals whose margin is known and summed
    unknown: int = 0  # deals without lines or with a line without cost

    @property
    def is_unknown(self) -> bool:
        return self.known == 0 and self.unknown > 0


@cache
def _line_margins() -> Select:
    """Each deal line's margin in cents, rounded as DealLine.total and DealLine.margin round
    (NULL without a cost): whole hundredths, so that SQL adds up what Python would. Built once:
    the same for every query (constructing its arithmetic costs a millisecond a page)."""
    quantity, price = wide_hundredths(DealLine.quantity), wide_hundredths(DealLine.unit_price)
    discount = wide_hundredths(DealLine.discount_percent)
    # total = quantity × price × (100 - discount %) / 100, to the cent
    total = div_half_even(quantity * price * (10000 - discount), 10**6)
    totals = select(
        DealLine.deal_id,
        total.label("total"),
        (quantity * wide_hundredths(DealLine.unit_cost)).label("cost"),  # in 1/10,000
    ).subquery()
    return select(
        totals.c.deal_id, div_half_even(totals.c.total * 100 - totals.c.cost, 100).label("margin")
    ).subquery()


def margins(scope: Scope, period: Period, today: date) -> tuple[MarginFigure, MarginFigure]:
    """The margin of the deals won in `period`, and of the open ones expected to close in it
    (from today on), by the rule of services.deals.margin: a deal's margin is known when it has
    lines and every line has a cost. One query, summed in SQL."""
    start, end = period.utc_bounds(user_timezone(scope.user))
    won_in_period = and_(Stage.kind == "won", Deal.closed_at >= start, Deal.closed_at < end)
    lines = _line_margins()
    per_deal = (
        select(
            Deal.currency,
            case((Stage.kind == "won", "won"), else_="open").label("part"),
            func.count(lines.c.deal_id).label("lines"),
            func.count(lines.c.margin).label("costed"),
            func.sum(lines.c.margin).label("margin"),
        )
        .join(Stage, Deal.stage_id == Stage.id)
        .outerjoin(lines, lines.c.deal_id == Deal.id)
        .where(
            scope.condition(),
            or_(won_in_period, and_(Stage.kind == "open", expected_in(period, today))),
        )
        .group_by(Deal.id, Deal.currency, Stage.kind)
        .subquery()
    )
    known = and_(per_deal.c.lines > 0, per_deal.c.lines == per_deal.c.costed)
    query = select(
        per_deal.c.part,
        per_deal.c.currency,
        func.sum(case((known, per_deal.c.margin), else_=0)),
        func.sum(case((known, 1), else_=0)),
        func.sum(case((known, 0), else_=1)),
    ).group_by(per_deal.c.part, per_deal.c.currency)
    figures = {"won": MarginFigure(), "open": MarginFigure()}
    for part, currency, margin, known_count, unknown_count in db.session.execute(query):
        figure = figures[part]
        if known_count:
            figure.amounts.add(currency, cents(margin))
        figure.known += int(known_count)
        figure.unknown += int(unknown_count)
    return figures["won"], figures["open"]


# ---- the team: conversion, win rate, cycle, risk -----------------------------------------------------

STEPS = ("meeting", "proposal", "won")


@dataclass
class Funnel:
    """Deals that passed each step, each deal once per step."""

    meeting: int = 0
    proposal: int = 0
    won: int = 0

    @property
    def proposal_rate(self) -> Decimal | None:
        return percent(self.proposal, self.meeting)

    @property
    def won_rate(self) -> Decimal | None:
        return percent(self.won, self.proposal)

    @property
    def overall_rate(self) -> Decimal | None:
        return percent(self.won, self.meeting)


def scoped_deals(scope: Scope):
    """The deals of `scope` and the kind of the stage each is in now, read once (a CTE) for the
    funnel's several sources of steps."""
    current = aliased(Stage)
    return (
        select(Deal.id.label("id"), current.kind.label("kind"))
        .join(current, Deal.stage_id == current.id)
        .where(scope.condition())
        .cte("scoped_deals")
    )


class in_ids_of(ColumnElement):  # noqa: N801 - used as a SQL operator
    """`column` among the ids a one-column subquery gives: `= ANY(ARRAY(subquery))` on
    PostgreSQL, which reads the (few) ids first and then looks the column up in its index,
    where `IN (subquery)` would join the whole table to them; `IN` elsewhere."""

    type = Boolean()
    inherit_cache = True
    _traverse_internals = [
        ("column", InternalTraversal.dp_clauseelement),
        ("ids", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, column, ids: Select):
        self.column = column
        self.ids = ids.scalar_subquery()


@compiles(in_ids_of)
def _in_ids_of(element, compiler, **kw):
    return f"({compiler.process(element.column, **kw)} IN {compiler.process(element.ids, **kw)})"


@compiles(in_ids_of, "postgresql")
def _in_ids_of_postgresql(element, compiler, **kw):
    column, ids = compiler.process(element.column, **kw), compiler.process(element.ids, **kw)
    return f"({column} = ANY(ARRAY{ids}))"


def stage_steps(deals) -> Select:
    """(deal_id, step, at): each time one of `deals` (scoped_deals) entered a funnel stage. A
    win counts only while the deal is still won: won once and reopened since, neither the win
    nor its date count."""
    step_stage = aliased(Stage)
    is_step = or_(Stage.milestone.is_not(None), Stage.kind == "won")
    return (
        select(
            DealStageHistory.deal_id.label("deal_id"),
            case((step_stage.kind == "won", "won"), else_=step_stage.milestone).label("step"),
            DealStageHistory.changed_at.label("at"),
        )
        .join(step_stage, DealStageHistory.to_stage_id == step_stage.id)
        .join(deals, DealStageHistory.deal_id == deals.c.id)
        .where(
            # The moves to a step stage only (a third of the history), before the joins.
            in_ids_of(DealStageHistory.to_stage_id, select(Stage.id).where(is_step)),
            or_(step_stage.milestone.is_not(None), step_stage.kind == "won"),
            or_(step_stage.kind != "won", deals.c.kind == "won"),
        )
    )


def funnel_of(scope: Scope, start: datetime, end: datetime, *more_steps) -> Funnel:
    """Meeting → proposal → won for the deals of `scope` whose first step falls in [start, end),
    counted in one query: each deal once per step, a later step implying the earlier ones.

    The steps are the stage history's (`stage_steps`) and those of `more_steps`: functions
    that take the scope's deals (scoped_deals) and give a select of the same three columns
    (the dashboard adds the meetings held)."""
    deals = scoped_deals(scope)
    steps = union_all(stage_steps(deals), *(more(deals) for more in more_steps)).subquery()
    per_deal = (
        select(
            func.max(case((steps.c.step.in_(("proposal", "won")), 1), else_=0)).label("proposal"),
            func.max(case((steps.c.step == "won", 1), else_=0)).label("won"),
        )
        .group_by(steps.c.deal_id)
        .having(and_(func.min(steps.c.at) >= start, func.min(steps.c.at) < end))
        .subquery()
    )
    row = db.session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(per_deal.c.proposal), 0),
            func.coalesce(func.sum(per_deal.c.won), 0),
        )
    ).one()
    return Funnel(int(row[0]), int(row[1]), int(row[2]))


def conversion(scope: Scope, period: Period) -> Funnel:
    """Meeting → proposal → won for the deals that entered the funnel during `period`.

    From DealStageHistory: a deal passes the meeting step when it enters a stage whose milestone
    is 'meeting', the proposal step when it enters a 'proposal' stage, and the won step when it
    is in a won stage. A step reached implies the steps before it: a deal that went straight to a
    proposal (or to won) without a meeting stage counts as having passed the meeting. The cohort
    is the deals whose first step falls in the period (in the user's time zone); how far they got
    is counted up to now, so a recent period's figures still grow as its deals progress.

    The dashboard's funnel (crm.services.dashboards) also counts the meetings held.
    """
    return funnel_of(scope, *period.utc_bounds(user_timezone(scope.user)))


@dataclass
class WinRate:
    won: int = 0
    lost: int = 0

    @property
    def rate(self) -> Decimal | None:
        return percent(self.won, self.won + self.lost)


def win_rate(sums: list[DealSums], start: datetime, end: datetime) -> WinRate:
    """Won / (won + lost) among the deals closed in [start, end), counted in deals (the bounds
    among the closed_bounds the sums were made with)."""
    result = WinRate()
    for s in sums:
        if s.kind in ("won", "lost") and start <= s.closed_from < end:
            if s.kind == "won":
                result.won += s.count
            else:
                result.lost += s.count
    return result


@dataclass
class Cycle:
    deals: int = 0
    average_days: Decimal | None = None


def sales_cycle(sums: list[DealSums], start: datetime, end: datetime) -> Cycle:
    """Average days from creation to closing of the deals won in [start, end), to one decimal."""
    won = [s for s in sums if s.kind == "won" and start <= s.closed_from < end]
    return average_cycle(sum(s.count for s in won), sum(s.cycle for s in won))


def average_cycle(deals: int, microseconds: int) -> Cycle:
    """The average of `deals` durations adding up to `microseconds`, in days to one decimal."""
    if not deals:
        return Cycle()
    seconds = Decimal(microseconds) / 10**6
    return Cycle(deals, (seconds / 86400 / deals).quantize(TENTH, ROUND_HALF_UP))


class AtRiskDeal(NamedTuple):
    """What the list of deals at risk shows of a deal (read as plain columns, not whole records)."""

    id: int
    title: str
    amount: Decimal
    currency: str
    expected_close: date | None
    stage_entered_at: datetime
    stall_days: int | None
    stage_name: str
    owner_name: str | None
    company_name: str | None


@dataclass
class RiskyDeal:
    deal: AtRiskDeal
    overdue_days: int | None  # days past the expected close
    stalled_days: int | None  # days in its stage, when past the stage's limit


# Longest overdue first, then longest in their stage.
_RISK_ORDER = (Deal.expected_close.is_(None), Deal.expected_close, Deal.stage_entered_at, Deal.id)


def deals_at_risk(
    scope: Scope, today: date, now: datetime, limit: int = AT_RISK_LIMIT
) -> tuple[list[RiskyDeal], int]:
    """Open deals past their expected close or stalled in their stage: the first `limit`
    (longest overdue first, then longest stalled), and how many there are in all (one query)."""
    now_us = (now - _EPOCH) // timedelta(microseconds=1)
    stalled = and_(
        Stage.stall_days > 0,
        epoch_microseconds(Deal.stage_entered_at)
        < literal(now_us, BigInteger) - Stage.stall_days * literal(MICROSECONDS_A_DAY, BigInteger),
    )
    # The first `limit` ids and the count, then those deals with what the page shows of them:
    # joining owners and companies to every risky deal before the limit would read them all.
    first = (
        select(Deal.id, func.count().over().label("total"))
        .join(Stage, Deal.stage_id == Stage.id)
        .where(scope.condition(), Stage.kind == "open", or_(Deal.expected_close < today, stalled))
        .order_by(*_RISK_ORDER)
        .limit(limit)
        .subquery()
    )
    query = (
        select(
            Deal.id,
            Deal.title,
            Deal.amount,
            Deal.currency,
            Deal.expected_close,
            Deal.stage_entered_at,
            Stage.stall_days,
            Stage.name,
            User.name,
            Company.name,
            first.c.total,
        )
        .join(first, first.c.id == Deal.id)
        .join(Stage, Deal.stage_id == Stage.id)
        .outerjoin(User, Deal.owner_id == User.id)
        .outerjoin(Company, Deal.company_id == Company.id)
        .order_by(*_RISK_ORDER)
    )
    risky, count = [], 0
    for *columns, total in db.session.execute(query):
        count = total  # the same on every row: the count before the limit
        deal = AtRiskDeal(*columns)
        close = deal.expected_close
        overdue = (today - close).days if close and close < today else None
        # Stalled as services.deals.is_stalled says of an open deal.
        in_stage = now - deal.stage_entered_at
        stalled = bool(deal.stall_days) and in_stage > timedelta(days=deal.stall_days)
        stalled_days = in_stage.days if stalled else None
        risky.append(RiskyDeal(deal, overdue, stalled_days))
    return risky, count


# ---- the whole page ------------------------------------------------------------------------------------


@dataclass
class RepLine:
    """One row of the team table: a rep (None: deals without an owner) over the period."""

    user: User | None
    objective: Objective
    pipeline: Bucket  # all their open deals, whatever the date


@dataclass
class Forecast:
    scope: Scope
    period: Period
    today: date
    currency: str
    pipeline: list[Bucket]
    pipeline_total: Bucket
    won_months: list[tuple[date, Amounts]]
    objectives: list[Objective]  # the rep's, or the team's: the period, and its quarter
    reps: list[RepLine]
    team_line: RepLine  # the sum of the rows, against the team's target
    margin_won: MarginFigure
    margin_open: MarginFigure
    funnel: Funnel
    win_rate: WinRate
    cycle: Cycle
    at_risk: list[RiskyDeal]
    at_risk_count: int

    @property
    def weighted_total(self) -> Amounts:
        return self.pipeline_total.weighted


def build_forecast(
    user: User,
    period: Period,
    *,
    team: Team | None = None,
    now: datetime | None = None,
    currency: str = DEFAULT_QUOTA_CURRENCY,
) -> Forecast:
    """Everything the forecast page shows, for `user` over `period` (admins may pass a team).

    The deals are summed in SQL (one query for the open pipeline and what closed, one for the
    margins, one for the funnel, one for the deals at risk): the page runs the same number of
    queries whatever the number of deals."""
    now = now or datetime.now(UTC)
    scope = Scope.of(user, team)
    tz = user_timezone(user)
    today = now.astimezone(tz).date()

    periods = [period] if period.kind == "quarter" else [period, period.quarter]
    won_months = [add_months(period.end, -i) for i in range(WON_MONTHS, 0, -1)]
    first_month = min([won_months[0]] + [p.start for p in periods])
    last_month = add_months(max(p.end for p in periods), -1)
    months = [first_month]
    while months[-1] < last_month:
        months.append(add_months(months[-1], 1))
    sums = deal_sums(scope, today, windows=periods, closed_bounds=month_bounds(months, tz))
    start, end = period.utc_bounds(tz)
    won = [s for s in sums if s.kind == "won"]
    won_in_period = [s for s in won if start <= s.closed_from < end]

    buckets = pipeline_by_month(sums, today)
    by_owner = pipeline_by_rep(sums)
    people = scope.people(set(by_owner) | {s.owner_id for s in won_in_period})
    # Targets: the rep's own, or the team's; and every row's for the table.
    targets = quota_targets_of(periods, users=people, teams=[scope.team] if scope.team else [])
    if scope.is_team:
        target_key = ("team", scope.team.id) if scope.team else None
    else:
        target_key = ("user", user.id)
    objectives = [
        Objective(
            p,
            currency,
            targets.get((p, *target_key)) if target_key else None,
            won_between(sums, *p.utc_bounds(tz)),
            expected_sum(sums, index),
        )
        for index, p in enumerate(periods)
    ]

    owners = [(u.id, u) for u in people]
    if scope.is_team and (None in by_owner or any(s.owner_id is None for s in won)):
        owners.append((None, None))
    by_owner_sums: dict[int | None, list[DealSums]] = {}
    for s in sums:
        by_owner_sums.setdefault(s.owner_id, []).append(s)
    reps = []
    for owner_id, person in owners:
        mine = by_owner_sums.get(owner_id, [])
        target = targets.get((period, "user", owner_id)) if owner_id else None
        reps.append(
            RepLine(
                person,
                Objective(
                    period, currency, target, won_between(mine, start, end), expected_sum(mine, 0)
                ),
                by_owner.get(owner_id, Bucket(str(owner_id))),
            )
        )
    # The sum of the rows, against the team's target: the period's own objective.
    team_line = RepLine(None, objectives[0], total_of(buckets))

    margin_won, margin_open = margins(scope, period, today)
    at_risk, at_risk_count = deals_at_risk(scope, today, now)
    return Forecast(
        scope=scope,
        period=period,
        today=today,
        currency=currency,
        pipeline=buckets,
        pipeline_total=total_of(buckets),
        won_months=won_by_month(sums, won_months, tz),
        objectives=objectives,
        reps=reps,
        team_line=team_line,
        margin_won=margin_won,
        margin_open=margin_open,
        funnel=conversion(scope, period),
        win_rate=win_rate(sums, start, end),
        cycle=sales_cycle(sums, start, end),
        at_risk=at_risk,
        at_risk_count=at_risk_count,
    )


# ---- quotas -------------------------------------------------------------------------------------------


class QuotaRefused(Exception):
    """The user may not set this target (another team's rep, or another team)."""


def quota_teams(user: User) -> list[Team]:
    """The teams whose target `user` may set: all for an admin, their own for a manager."""
    if user.role == ADMIN:
        return list(db.session.scalars(select(Team).order_by(Team.name)))
    if user.role == MANAGER and user.team is not None:
        return [user.team]
    return []


def quota_people(user: User) -> list[User]:
    """The reps whose target `user` may set."""
    query = select(User).where(User.active.is_(True), User.role.in_(SELLING_ROLES))
    if user.role == MANAGER:
        if user.team_id is None:
            return []
        query = query.where(User.team_id == user.team_id)
    elif user.role != ADMIN:
        return []
    return list(db.session.scalars(query.order_by(User.name, User.id)))


def may_set_quota(actor: User, *, user: User | None = None, team: Team | None = None) -> bool:
    if actor.role == ADMIN:
        return True
    if actor.role != MANAGER or actor.team_id is None:
        return False
    if team is not None:
        return team.id == actor.team_id
    return user is not None and user.team_id == actor.team_id and user.role in SELLING_ROLES


def set_quota(
    actor: User,
    period: Period,
    target: Decimal | None,
    *,
    user: User | None = None,
    team: Team | None = None,
) -> Quota | None:
    """Set (or, with None, remove) the target of a rep or a team for a period."""
    if (user is None) == (team is None):
        raise ValueError("a quota belongs to a user or a team")
    if not may_set_quota(actor, user=user, team=team):
        raise QuotaRefused()
    if target is not None and target <= 0:
        raise ValueError("a target is a positive amount")
    owner = Quota.user_id == user.id if user else Quota.team_id == team.id
    quota = db.session.scalars(
        select(Quota).where(
            owner, Quota.period_kind == period.kind, Quota.period_start == period.start
        )
    ).first()
    if target is None:
        if quota is not None:
            db.session.delete(quota)
        return None
    if quota is None:
        quota = Quota(user=user, team=team, period_kind=period.kind, period_start=period.start)
        db.session.add(quota)
    quota.target = target.quantize(CENT)
    return quota
