"""Forecasts and objectives: the weighted pipeline, won revenue, targets, margin, conversion.

Every figure is computed from the deals a user may see (`visible_deals`), so that a total on the
forecast page is the sum of the deals listed behind it. Money stays `Decimal` and is grouped per
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
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import Select, and_, false, or_, select
from sqlalchemy.orm import aliased, joinedload

from crm.extensions import db
from crm.i18n import DEFAULT_TIMEZONE
from crm.models import Deal, DealLine, DealStageHistory, Quota, Stage, Team, User
from crm.permissions import ADMIN, MANAGER, SALES, visible_deals
from crm.services.deals import is_stalled, margin

ZERO = Decimal("0")
CENT = Decimal("0.01")
TENTH = Decimal("0.1")
DEFAULT_QUOTA_CURRENCY = "EUR"
PIPELINE_MONTHS = 6  # this month and the five after it
WON_MONTHS = 6
AT_RISK_LIMIT = 100
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

    def deal_ids(self) -> Select:
        return self.deals().with_only_columns(Deal.id)

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


# ---- the deals, as figures -------------------------------------------------------------------


class DealFigure(NamedTuple):
    """What the figures need of a deal, without loading it as an object."""

    id: int
    owner_id: int | None
    currency: str
    amount: Decimal
    probability: int
    kind: str
    expected_close: date | None
    closed_at: datetime | None

    @property
    def weighted(self) -> Decimal:
        # The same rounding as Deal.weighted_amount: per deal, to the cent.
        return (self.amount * self.probability / 100).quantize(CENT)


def _figures(scope: Scope, *conditions) -> list[DealFigure]:
    query = (
        select(
            Deal.id,
            Deal.owner_id,
            Deal.currency,
            Deal.amount,
            Stage.probability,
            Stage.kind,
            Deal.expected_close,
            Deal.closed_at,
        )
        .join(Stage, Deal.stage_id == Stage.id)
        .where(Deal.id.in_(scope.deal_ids()), *conditions)
    )
    return [DealFigure._make(row) for row in db.session.execute(query)]


def open_deals(scope: Scope) -> list[DealFigure]:
    return _figures(scope, Stage.kind == "open")


def won_deals(scope: Scope, start: datetime, end: datetime) -> list[DealFigure]:
    """Deals in a won stage closed in [start, end) (aware datetimes)."""
    return _figures(scope, Stage.kind == "won", Deal.closed_at >= start, Deal.closed_at < end)


def expected_in(period: Period, today: date):
    """Predicate on an open deal: expected to close from today to the end of `period`."""
    first, end = max(period.start, today), period.end

    def test(deal: DealFigure) -> bool:
        return deal.expected_close is not None and first <= deal.expected_close < end

    return test


def closed_in(period: Period, tz: ZoneInfo):
    start, end = period.utc_bounds(tz)

    def test(deal: DealFigure) -> bool:
        return deal.closed_at is not None and start <= deal.closed_at < end

    return test


# ---- weighted pipeline ---------------------------------------------------------------------------


@dataclass
class Bucket:
    """Open deals grouped together: a month of expected close, overdue, later, undated, a rep."""

    key: str
    month: date | None = None
    count: int = 0
    amount: Amounts = field(default_factory=Amounts)
    weighted: Amounts = field(default_factory=Amounts)

    def add(self, deal: DealFigure) -> None:
        self.count += 1
        self.amount.add(deal.currency, deal.amount)
        self.weighted.add(deal.currency, deal.weighted)


def pipeline_by_month(deals: list[DealFigure], today: date) -> list[Bucket]:
    """Overdue, this month and the five next, later, undated: every open deal in exactly one."""
    this_month = today.replace(day=1)
    months = [add_months(this_month, i) for i in range(PIPELINE_MONTHS)]
    buckets = {"overdue": Bucket("overdue")}
    for month in months:
        buckets[month.isoformat()[:7]] = Bucket(month.isoformat()[:7], month)
    buckets["later"] = Bucket("later")
    buckets["undated"] = Bucket("undated")
    horizon = add_months(this_month, PIPELINE_MONTHS)
    for deal in deals:
        close = deal.expected_close
        if close is None:
            key = "undated"
        elif close < today:
            key = "overdue"
        elif close >= horizon:
            key = "later"
        else:
            key = close.isoformat()[:7]
        buckets[key].add(deal)
    return list(buckets.values())


def total_of(buckets: list[Bucket]) -> Bucket:
    total = Bucket("total")
    for bucket in buckets:
        total.count += bucket.count
        total.amount = total.amount.merged(bucket.amount)
        total.weighted = total.weighted.merged(bucket.weighted)
    return total


def pipeline_by_rep(deals: list[DealFigure]) -> dict[int | None, Bucket]:
    by_owner: dict[int | None, Bucket] = {}
    for deal in deals:
        if deal.owner_id not in by_owner:
            by_owner[deal.owner_id] = Bucket(str(deal.owner_id))
        by_owner[deal.owner_id].add(deal)
    return by_owner


def won_by_month(
    deals: list[DealFigure], months: list[date], tz: ZoneInfo
) -> list[tuple[date, Amounts]]:
    sums = {month: Amounts() for month in months}
    for deal in deals:
        month = deal.closed_at.astimezone(tz).date().replace(day=1)
        if month in sums:
            sums[month].add(deal.currency, deal.amount)
    return list(sums.items())


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


def objective(
    period: Period,
    target: Decimal | None,
    won: list[DealFigure],
    open_: list[DealFigure],
    today: date,
    tz: ZoneInfo,
    currency: str = DEFAULT_QUOTA_CURRENCY,
) -> Objective:
    in_period, expected = closed_in(period, tz), expected_in(period, today)
    won_sum, weighted_sum = Amounts(), Amounts()
    for deal in won:
        if in_period(deal):
            won_sum.add(deal.currency, deal.amount)
    for deal in open_:
        if expected(deal):
            weighted_sum.add(deal.currency, deal.weighted)
    return Objective(period, currency, target, won_sum, weighted_sum)


def quota_targets(
    period: Period, users: list[User] = (), teams: list[Team] = ()
) -> dict[tuple[str, int], Decimal]:
    """{("user", id) | ("team", id): target} for this exact period."""
    user_ids = [u.id for u in users]
    team_ids = [t.id for t in teams]
    if not user_ids and not team_ids:
        return {}
    owner = or_(
        Quota.user_id.in_(user_ids) if user_ids else false(),
        Quota.team_id.in_(team_ids) if team_ids else false(),
    )
    query = select(Quota).where(
        Quota.period_kind == period.kind, Quota.period_start == period.start, owner
    )
    targets = {}
    for quota in db.session.scalars(query):
        key = ("user", quota.user_id) if quota.user_id else ("team", quota.team_id)
        targets[key] = quota.target
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


class _Line(NamedTuple):
    """A deal line's columns, with DealLine's own arithmetic (total, margin)."""

    deal_id: int
    quantity: Decimal
    unit_price: Decimal
    unit_cost: Decimal | None
    discount_percent: Decimal

    total = DealLine.total
    margin = DealLine.margin


class _Lines(NamedTuple):
    lines: list[_Line]


def margin_of(deals: list[DealFigure]) -> MarginFigure:
    """The margin of these deals, by the rule of services.deals.margin (known only when every
    line has a cost), from the line columns rather than loaded objects."""
    figure = MarginFigure()
    lines: dict[int, list[_Line]] = defaultdict(list)
    ids = [deal.id for deal in deals]
    for start in range(0, len(ids), 500):  # a bounded IN list, whatever the database
        query = select(
            DealLine.deal_id,
            DealLine.quantity,
            DealLine.unit_price,
            DealLine.unit_cost,
            DealLine.discount_percent,
        ).where(DealLine.deal_id.in_(ids[start : start + 500]))
        for row in db.session.execute(query):
            lines[row.deal_id].append(_Line._make(row))
    for deal in deals:
        value = margin(_Lines(lines.get(deal.id, [])))
        if value is None:
            figure.unknown += 1
        else:
            figure.known += 1
            figure.amounts.add(deal.currency, value)
    return figure


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


def _stepped_in(start: datetime, end: datetime) -> Select:
    """Ids of the deals that reached a funnel step between start and end: the only ones whose
    first step can fall in the period."""
    step = aliased(Stage)
    return (
        select(DealStageHistory.deal_id)
        .join(step, DealStageHistory.to_stage_id == step.id)
        .where(
            DealStageHistory.changed_at >= start,
            DealStageHistory.changed_at < end,
            or_(step.milestone.is_not(None), step.kind == "won"),
        )
    )


def conversion(scope: Scope, period: Period) -> Funnel:
    """Meeting → proposal → won for the deals that entered the funnel during `period`.

    From DealStageHistory: a deal passes the meeting step when it enters a stage whose milestone
    is 'meeting', the proposal step when it enters a 'proposal' stage, and the won step when it
    is in a won stage. A step reached implies the steps before it: a deal that went straight to a
    proposal (or to won) without a meeting stage counts as having passed the meeting. The cohort
    is the deals whose first step falls in the period (in the user's time zone); how far they got
    is counted up to now, so a recent period's figures still grow as its deals progress.

    Meetings from the shared agenda will feed the meeting step once the agenda lands: a deal
    with a meeting event will count from that event's date even if its stage never said so.
    """
    tz = user_timezone(scope.user)
    start, end = period.utc_bounds(tz)
    to_stage, current = aliased(Stage), aliased(Stage)
    query = (
        select(
            DealStageHistory.deal_id,
            DealStageHistory.changed_at,
            to_stage.milestone,
            to_stage.kind,
            current.kind,
        )
        .join(to_stage, DealStageHistory.to_stage_id == to_stage.id)
        .join(Deal, DealStageHistory.deal_id == Deal.id)
        .join(current, Deal.stage_id == current.id)
        .where(
            DealStageHistory.deal_id.in_(scope.deal_ids()),
            DealStageHistory.deal_id.in_(_stepped_in(start, end)),
            or_(to_stage.milestone.is_not(None), to_stage.kind == "won"),
        )
    )
    first: dict[int, dict[str, datetime]] = defaultdict(dict)
    won_now: set[int] = set()
    for deal_id, changed_at, milestone, kind, current_kind in db.session.execute(query):
        step = "won" if kind == "won" else milestone
        times = first[deal_id]
        if step not in times or changed_at < times[step]:
            times[step] = changed_at
        if current_kind == "won":
            won_now.add(deal_id)
    funnel = Funnel()
    for deal_id, times in first.items():
        if "won" in times and deal_id not in won_now:
            del times["won"]  # won once, reopened since: not won
        if not times:
            continue
        if not start <= min(times.values()) < end:
            continue
        funnel.meeting += 1
        if "proposal" in times or "won" in times:
            funnel.proposal += 1
        if "won" in times:
            funnel.won += 1
    return funnel


@dataclass
class WinRate:
    won: int = 0
    lost: int = 0

    @property
    def rate(self) -> Decimal | None:
        return percent(self.won, self.won + self.lost)


def _closed(scope: Scope, period: Period):
    start, end = period.utc_bounds(user_timezone(scope.user))
    query = (
        select(Stage.kind, Deal.created_at, Deal.closed_at)
        .join(Stage, Deal.stage_id == Stage.id)
        .where(
            Deal.id.in_(scope.deal_ids()),
            Stage.kind.in_(("won", "lost")),
            Deal.closed_at >= start,
            Deal.closed_at < end,
        )
    )
    return list(db.session.execute(query))


def win_rate(scope: Scope, period: Period, closed=None) -> WinRate:
    """Won / (won + lost) among the deals closed in the period, counted in deals."""
    result = WinRate()
    for kind, _created, _closed_at in _closed(scope, period) if closed is None else closed:
        if kind == "won":
            result.won += 1
        else:
            result.lost += 1
    return result


@dataclass
class Cycle:
    deals: int = 0
    average_days: Decimal | None = None


def sales_cycle(scope: Scope, period: Period, closed=None) -> Cycle:
    """Average days from creation to closing of the deals won in the period, to one decimal."""
    durations = [
        closed_at - created
        for kind, created, closed_at in (_closed(scope, period) if closed is None else closed)
        if kind == "won" and created is not None
    ]
    if not durations:
        return Cycle()
    seconds = sum(
        (Decimal(d.days * 86400 + d.seconds) + Decimal(d.microseconds) / 10**6 for d in durations),
        ZERO,
    )
    return Cycle(len(durations), (seconds / 86400 / len(durations)).quantize(TENTH, ROUND_HALF_UP))


@dataclass
class RiskyDeal:
    deal: Deal
    overdue_days: int | None  # days past the expected close
    stalled_days: int | None  # days in its stage, when past the stage's limit


def _at_risk_condition(today: date, now: datetime):
    stalls = [
        and_(Deal.stage_id == stage_id, Deal.stage_entered_at < now - timedelta(days=days))
        for stage_id, days in db.session.execute(
            select(Stage.id, Stage.stall_days).where(Stage.kind == "open", Stage.stall_days > 0)
        )
    ]
    return or_(Deal.expected_close < today, *stalls)


def deals_at_risk(
    scope: Scope, today: date, now: datetime, limit: int = AT_RISK_LIMIT
) -> tuple[list[RiskyDeal], int]:
    """Open deals past their expected close or stalled in their stage: the first `limit`
    (longest overdue first, then longest stalled), and how many there are in all."""
    condition = and_(
        Deal.id.in_(scope.deal_ids()),
        Deal.stage.has(Stage.kind == "open"),
        _at_risk_condition(today, now),
    )
    count = db.session.scalar(select(db.func.count()).select_from(Deal).where(condition))
    query = (
        select(Deal)
        .where(condition)
        .options(joinedload(Deal.stage), joinedload(Deal.owner), joinedload(Deal.company))
        .order_by(
            Deal.expected_close.is_(None), Deal.expected_close, Deal.stage_entered_at, Deal.id
        )
        .limit(limit)
    )
    risky = []
    for deal in db.session.scalars(query):
        overdue = (
            (today - deal.expected_close).days
            if deal.expected_close and deal.expected_close < today
            else None
        )
        stalled = (now - deal.stage_entered_at).days if is_stalled(deal, now) else None
        risky.append(RiskyDeal(deal, overdue, stalled))
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
    """Everything the forecast page shows, for `user` over `period` (admins may pass a team)."""
    now = now or datetime.now(UTC)
    scope = Scope.of(user, team)
    tz = user_timezone(user)
    today = now.astimezone(tz).date()

    periods = [period] if period.kind == "quarter" else [period, period.quarter]
    won_months = [add_months(period.end, -i) for i in range(WON_MONTHS, 0, -1)]
    window_start = min([won_months[0]] + [p.start for p in periods])
    window_end = max(p.end for p in periods)
    open_ = open_deals(scope)
    won = won_deals(scope, _local_midnight(window_start, tz), _local_midnight(window_end, tz))

    buckets = pipeline_by_month(open_, today)
    in_period, expected = closed_in(period, tz), expected_in(period, today)
    won_in_period = [d for d in won if in_period(d)]
    open_in_period = [d for d in open_ if expected(d)]

    # Targets: the rep's own, or the team's; and every row's for the table.
    by_owner = pipeline_by_rep(open_)
    people = scope.people(set(by_owner) | {d.owner_id for d in won_in_period})
    targets = {}
    for p in periods:
        found = quota_targets(p, users=people, teams=[scope.team] if scope.team else [])
        targets.update({(p, *key): value for key, value in found.items()})
    if scope.is_team:
        target_key = ("team", scope.team.id) if scope.team else None
    else:
        target_key = ("user", user.id)
    objectives = [
        objective(
            p,
            targets.get((p, *target_key)) if target_key else None,
            won,
            open_,
            today,
            tz,
            currency,
        )
        for p in periods
    ]

    owners = [(u.id, u) for u in people]
    if scope.is_team and (None in by_owner or any(d.owner_id is None for d in won)):
        owners.append((None, None))
    open_by_owner, won_by_owner = defaultdict(list), defaultdict(list)
    for deal in open_:
        open_by_owner[deal.owner_id].append(deal)
    for deal in won:
        won_by_owner[deal.owner_id].append(deal)
    reps = []
    for owner_id, person in owners:
        mine_open, mine_won = open_by_owner[owner_id], won_by_owner[owner_id]
        target = targets.get((period, "user", owner_id)) if owner_id else None
        reps.append(
            RepLine(
                person,
                objective(period, target, mine_won, mine_open, today, tz, currency),
                by_owner.get(owner_id, Bucket(str(owner_id))),
            )
        )
    # The sum of the rows, against the team's target: the period's own objective.
    team_line = RepLine(None, objectives[0], total_of(buckets))

    at_risk, at_risk_count = deals_at_risk(scope, today, now)
    closed = _closed(scope, period)
    return Forecast(
        scope=scope,
        period=period,
        today=today,
        currency=currency,
        pipeline=buckets,
        pipeline_total=total_of(buckets),
        won_months=won_by_month(won, won_months, tz),
        objectives=objectives,
        reps=reps,
        team_line=team_line,
        margin_won=margin_of(won_in_period),
        margin_open=margin_of(open_in_period),
        funnel=conversion(scope, period),
        win_rate=win_rate(scope, period, closed),
        cycle=sales_cycle(scope, period, closed),
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
