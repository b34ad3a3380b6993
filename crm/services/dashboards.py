"""Dashboards: the rep's day, the manager's team, support. Figures only, computed in SQL.

Every figure starts from the visible_*() scope of the user who looks, so a number on a dashboard
is the count of the list behind it. Sums and counts are GROUP BY queries: a widget runs one or two
queries whatever the number of records. Targets, won revenue, win rate and cycle length come from
crm.services.forecast, as on the forecast page, so that both pages agree.

Definitions shown on the page (keep them in step with the templates):

- Deals to move: my open deals expected to close before today, or without any activity logged on
  them for STALE_DAYS days (counted from their creation when none was ever logged).
- Conversion: the deals whose first step (a meeting, a proposal or a win) falls in the period.
  A deal reaches the meeting step when it enters a stage marked "meeting", or when a meeting is
  held about it (an agenda event of kind meeting, not cancelled and already started, or a
  meeting logged on its timeline); the proposal step when it enters a stage marked "proposal";
  the won step while it sits in a won stage. A later step implies the earlier ones.
- Service levels: the first-response and resolution targets due in the period; a target is met
  when reached without breach, missed when breached or overdue (the clock was not paused before
  the due time), pending otherwise and left out of the share.
- Backlog: open incidents (new, open, waiting) by age since they were opened.
"""

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, literal, or_, select, true
from sqlalchemy.orm import joinedload

from crm.extensions import db
from crm.models import (
    Activity,
    Deal,
    Event,
    Incident,
    Intervention,
    Pipeline,
    Stage,
    Team,
    TechnicianBooking,
    User,
)
from crm.models.support import PRIORITIES
from crm.permissions import (
    ADMIN,
    MANAGER,
    SALES,
    SUPPORT,
    TECHNICIAN,
    has_permission,
    visible_activities,
    visible_deals,
    visible_incidents,
    visible_interventions,
)
from crm.services import forecast as fc
from crm.services import tasks
from crm.services.reports import ReportingPeriod, local_midnight
from crm.sql_exact import epoch_microseconds, hundredths

STALE_DAYS = 14
DEALS_TO_MOVE_LIMIT = 10
ACTIVITY_KINDS = ("call", "meeting", "note", "email")
OPEN_STATUSES = ("new", "open", "waiting")
# Backlog ages in days: [0, 1), [1, 3), [3, 7), [7, 30), [30, ...).
AGE_LIMITS = (1, 3, 7, 30)
AGE_BUCKETS = ("lt1", "1to3", "3to7", "7to30", "gt30")

# Which tab each role sees, in order; the first is the default.
TABS = {
    ADMIN: ("day", "team", "support"),
    MANAGER: ("day", "team", "support"),
    SALES: ("day",),
    SUPPORT: ("day", "support"),
    TECHNICIAN: ("day",),
}


def tabs_for(user: User) -> tuple[str, ...]:
    if not has_permission(user, "dashboards.view"):
        return ()
    return TABS.get(user.role, ("day",))


def _where(query):
    """The WHERE clause of a visible_*() select, to filter a query on the same table directly
    (rather than `id IN (SELECT id ...)`, a second read of the table)."""
    condition = query.whereclause
    return true() if condition is None else condition


# ---- the rep's day ----------------------------------------------------------------------------


@dataclass
class DealToMove:
    deal: Deal
    last_activity: datetime | None
    overdue_days: int | None  # days past the expected close
    silent_days: int | None  # days without activity, when STALE_DAYS or more


@dataclass
class WeekGrid:
    """Interventions per technician and day of one week (Monday first)."""

    days: list[date]
    rows: list[tuple[User, list[int], int]]  # technician, count per day, total
    day_totals: list[int]
    total: int


@dataclass
class Day:
    my_day: tasks.MyDay
    zone: ZoneInfo
    deals_to_move: list[DealToMove] = field(default_factory=list)
    deals_to_move_count: int = 0
    objectives: list[fc.Objective] = field(default_factory=list)
    interventions: WeekGrid | None = None
    sells: bool = False


class _OwnDeals(fc.Scope):
    """The user's own deals, whatever their role shows them of others' (a manager's day is
    about the manager's own deals; the team tab shows the team's)."""

    def deals(self):
        return visible_deals(self.user).where(Deal.owner_id == self.user.id)


def rep_day(user: User, now: datetime | None = None, currency: str = "EUR") -> Day:
    now = now or datetime.now(UTC)
    zone = fc.user_timezone(user)
    today = now.astimezone(zone).date()
    day = Day(my_day=tasks.my_day(user, zone, now), zone=zone)
    if has_permission(user, "deals.view"):
        day.sells = True
        day.deals_to_move, day.deals_to_move_count = deals_to_move(user, today, now)
        day.objectives = quota_progress(user, today, now, currency)
    if user.role == TECHNICIAN:
        day.interventions = interventions_week(user, today, technician=user)
    return day


def deals_to_move(
    user: User, today: date, now: datetime, limit: int = DEALS_TO_MOVE_LIMIT
) -> tuple[list[DealToMove], int]:
    """My open deals past their expected close or silent for STALE_DAYS days: the first
    `limit` (longest overdue first, then longest silent) and how many there are (one query)."""
    # When an activity was last logged on each of my open deals: an index read per deal, not a
    # GROUP BY over every activity of the database.
    last_at = (
        select(func.max(Activity.occurred_at))
        .where(Activity.deal_id == Deal.id)
        .correlate(Deal)
        .scalar_subquery()
    )
    mine = (
        select(
            Deal.id,
            Deal.expected_close,
            last_at.label("last_at"),
            func.coalesce(last_at, Deal.created_at).label("touch"),
        )
        .join(Stage, Deal.stage_id == Stage.id)
        .where(_OwnDeals(user).condition(), Stage.kind == "open")
        .subquery()
    )
    stale_before = now - timedelta(days=STALE_DAYS)
    # The first `limit` and the count, then those deals with their stage and company.
    order = (mine.c.expected_close.is_(None), mine.c.expected_close, mine.c.touch, mine.c.id)
    first = (
        select(*order, mine.c.last_at, func.count().over().label("total"))
        .where(or_(mine.c.expected_close < today, mine.c.touch < stale_before))
        .order_by(*order)
        .limit(limit)
        .subquery()
    )
    query = (
        select(Deal, first.c.last_at, first.c.touch, first.c.total)
        .join(first, first.c.id == Deal.id)
        .options(joinedload(Deal.stage), joinedload(Deal.company))
        .order_by(
            first.c.expected_close.is_(None), first.c.expected_close, first.c.touch, first.c.id
        )
    )
    found, count = [], 0
    for deal, last_activity, touched, total in db.session.execute(query):
        count = total  # the same on every row: the count before the limit
        overdue = (
            (today - deal.expected_close).days
            if deal.expected_close and deal.expected_close < today
            else None
        )
        silent = (now - touched).days if touched < stale_before else None
        found.append(DealToMove(deal, last_activity, overdue, silent))
    return found, count


def quota_progress(user: User, today: date, now: datetime, currency: str) -> list[fc.Objective]:
    """Won and weighted open of my own deals against my targets of this month and quarter
    (one query for the deals, one for the targets)."""
    tz = fc.user_timezone(user)
    month = fc.Period.containing("month", today)
    periods = [month, month.quarter]
    bounds = sorted({bound for p in periods for bound in p.utc_bounds(tz)})
    sums = fc.deal_sums(_OwnDeals(user), today, windows=periods, closed_bounds=bounds)
    targets = fc.quota_targets_of(periods, users=[user])
    return [
        fc.Objective(
            period,
            currency,
            targets.get((period, "user", user.id)),
            fc.won_between(sums, *period.utc_bounds(tz)),
            fc.expected_sum(sums, index),
        )
        for index, period in enumerate(periods)
    ]


# ---- the manager's team -------------------------------------------------------------------------------


@dataclass
class StageFigure:
    stage_id: int
    name: str
    pipeline: str
    count: int
    amounts: fc.Amounts


Funnel = fc.Funnel


@dataclass
class RepActivity:
    user: User
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass
class TeamFigures:
    scope: fc.Scope
    period: ReportingPeriod
    currency: str
    pipeline: list[StageFigure]
    objective: fc.Objective
    target_available: bool  # False: a custom period, or all teams (targets are per team)
    funnel: Funnel
    win_rate: fc.WinRate
    cycle: fc.Cycle
    activities: list[RepActivity]
    activity_totals: dict[str, int]
    # Campaign results (sent, leads, customers, cost, return) join here once campaigns land.
    campaigns: list = field(default_factory=list)

    @property
    def pipeline_count(self) -> int:
        return sum(s.count for s in self.pipeline)

    @property
    def pipeline_amounts(self) -> fc.Amounts:
        total = fc.Amounts()
        for stage in self.pipeline:
            total = total.merged(stage.amounts)
        return total


def team_dashboard(
    user: User,
    period: ReportingPeriod,
    *,
    team: Team | None = None,
    now: datetime | None = None,
    currency: str = "EUR",
) -> TeamFigures:
    """A manager's team (an admin's: every team, or the one picked) over `period`."""
    now = now or datetime.now(UTC)
    scope = fc.Scope.of(user, team)
    tz = fc.user_timezone(user)
    today = now.astimezone(tz).date()
    start, end = period.utc_bounds(tz)

    target, target_available = None, False
    forecast_period = period.forecast_period
    if forecast_period is not None and scope.team is not None:
        target_available = True
        found = fc.quota_targets(forecast_period, teams=[scope.team])
        target = found.get(("team", scope.team.id))
    deals = deal_figures(scope, period, today)
    objective = fc.Objective(period, currency, target, deals.won, deals.expected)

    people = scope.people(set())
    activities, totals = activities_per_rep(user, people, start, end)
    return TeamFigures(
        scope=scope,
        period=period,
        currency=currency,
        pipeline=deals.pipeline,
        objective=objective,
        target_available=target_available,
        funnel=conversion(scope, period, now),
        win_rate=deals.win_rate,
        cycle=deals.cycle,
        activities=activities,
        activity_totals=totals,
        campaigns=_campaigns_of_period(user, start, end),
    )


def _campaigns_of_period(user: User, start: datetime, end: datetime) -> list:
    """Campaigns that brought customers in the period (crm/services/campaigns.py)."""
    from crm.permissions import has_permission
    from crm.services import campaigns

    if not has_permission(user, "campaigns.manage"):
        return []
    period = campaigns.Period(start, end)
    return campaigns.campaign_list(user, sort="customers", period=period, limit=50)[:5]


@dataclass
class DealFigures:
    """The team tab's deal widgets."""

    pipeline: list[StageFigure]  # open deals per stage
    expected: fc.Amounts  # weighted open deals expected to close in the period, from today on
    won: fc.Amounts  # won in the period
    win_rate: fc.WinRate
    cycle: fc.Cycle


def deal_figures(scope: fc.Scope, period: ReportingPeriod, today: date) -> DealFigures:
    """Open deals per stage (how many, their amounts per currency, the weighted amount expected
    in the period from today on), and the deals won and lost in the period (amounts, win rate,
    cycle): one GROUP BY over the deals by stage and currency, summed in cents."""
    start, end = period.utc_bounds(fc.user_timezone(scope.user))
    is_open, is_won = Stage.kind == "open", Stage.kind == "won"
    closed_in_period = and_(
        Stage.kind.in_(("won", "lost")), Deal.closed_at >= start, Deal.closed_at < end
    )
    duration = epoch_microseconds(Deal.closed_at) - epoch_microseconds(Deal.created_at)
    query = (
        select(
            Stage.id,
            Stage.name,
            Stage.kind,
            Pipeline.name,
            Deal.currency,
            func.count(),
            func.sum(hundredths(Deal.amount)),
            # NULL when no deal of the group is expected in the period
            func.sum(case((and_(is_open, fc.expected_in(period, today)), fc.weighted_cents()))),
            func.sum(case((is_won, duration), else_=0)),
        )
        .select_from(Deal)
        .join(Stage, Deal.stage_id == Stage.id)
        .join(Pipeline, Stage.pipeline_id == Pipeline.id)
        .where(scope.condition(), or_(is_open, closed_in_period))
        .group_by(
            Stage.id,
            Stage.name,
            Stage.kind,
            Pipeline.name,
            Pipeline.position,
            Stage.position,
            Deal.currency,
        )
        .order_by(Pipeline.position, Pipeline.name, Stage.position, Stage.id)
    )
    stages: dict[int, StageFigure] = {}
    expected, won, win_rate = fc.Amounts(), fc.Amounts(), fc.WinRate()
    cycle_microseconds = 0
    for row in db.session.execute(query):
        stage_id, name, kind, pipeline, currency, count, amount, weighted, cycle = row
        if kind == "won":
            won.add(currency, fc.cents(amount))
            win_rate.won += count
            cycle_microseconds += int(cycle)
        elif kind == "lost":
            win_rate.lost += count
        else:
            figure = stages.setdefault(
                stage_id, StageFigure(stage_id, name, pipeline, 0, fc.Amounts())
            )
            figure.count += count
            figure.amounts.add(currency, fc.cents(amount))
            if weighted is not None:
                expected.add(currency, fc.cents(weighted))
    cycle = fc.average_cycle(win_rate.won, cycle_microseconds)
    return DealFigures(list(stages.values()), expected, won, win_rate, cycle)


def conversion(scope: fc.Scope, period: ReportingPeriod, now: datetime) -> Funnel:
    """Meeting -> proposal -> won for the deals whose first step falls in `period` (see the
    module's docstring): the forecast's funnel, with the meetings held as steps too."""
    start, end = period.utc_bounds(fc.user_timezone(scope.user))

    def held(deals):
        return (
            select(Event.deal_id, literal("meeting"), Event.starts_at)
            .join(deals, Event.deal_id == deals.c.id)
            .where(Event.kind == "meeting", Event.status != "cancelled", Event.starts_at <= now)
        )

    def logged(deals):
        return (
            select(Activity.deal_id, literal("meeting"), Activity.occurred_at)
            .join(deals, Activity.deal_id == deals.c.id)
            .where(Activity.kind == "meeting")
        )

    return fc.funnel_of(scope, start, end, held, logged)


def activities_per_rep(
    user: User, people: list[User], start: datetime, end: datetime
) -> tuple[list[RepActivity], dict[str, int]]:
    """Calls, meetings, notes and emails each rep logged in [start, end) (one GROUP BY)."""
    ids = [p.id for p in people]
    counts: dict[int, dict[str, int]] = {p.id: dict.fromkeys(ACTIVITY_KINDS, 0) for p in people}
    if ids:
        query = (
            select(Activity.author_id, Activity.kind, func.count())
            .where(
                _where(visible_activities(user)),
                Activity.author_id.in_(ids),
                Activity.kind.in_(ACTIVITY_KINDS),
                Activity.occurred_at >= start,
                Activity.occurred_at < end,
            )
            .group_by(Activity.author_id, Activity.kind)
        )
        for author_id, kind, count in db.session.execute(query):
            counts[author_id][kind] = count
    totals = {kind: sum(c[kind] for c in counts.values()) for kind in ACTIVITY_KINDS}
    return [RepActivity(p, counts[p.id]) for p in people], totals


# ---- support --------------------------------------------------------------------------------------------


@dataclass
class SlaFigure:
    met: int = 0
    missed: int = 0
    pending: int = 0

    @property
    def decided(self) -> int:
        return self.met + self.missed

    @property
    def rate(self) -> Decimal | None:
        return fc.percent(self.met, self.decided)


@dataclass
class Support:
    period: ReportingPeriod
    open_by_status: dict[tuple[str, str], int]  # (status, priority) -> count
    first_response: SlaFigure
    resolution: SlaFigure
    backlog: dict[str, int]  # AGE_BUCKETS -> count
    interventions: WeekGrid

    def status_total(self, status: str) -> int:
        return sum(n for (s, _p), n in self.open_by_status.items() if s == status)

    def priority_total(self, priority: str) -> int:
        return sum(n for (_s, p), n in self.open_by_status.items() if p == priority)

    @property
    def open_total(self) -> int:
        return sum(self.open_by_status.values())

    @property
    def backlog_total(self) -> int:
        return sum(self.backlog.values())


def support_dashboard(user: User, period: ReportingPeriod, now: datetime | None = None) -> Support:
    now = now or datetime.now(UTC)
    tz = fc.user_timezone(user)
    figures = incident_figures(user, period, now)
    return Support(
        period=period,
        open_by_status=figures.open_by_status,
        first_response=figures.first_response,
        resolution=figures.resolution,
        backlog=figures.backlog,
        interventions=interventions_week(user, now.astimezone(tz).date()),
    )


@dataclass
class IncidentFigures:
    open_by_status: dict[tuple[str, str], int]  # (status, priority) -> count
    first_response: SlaFigure  # targets due in the period
    resolution: SlaFigure
    backlog: dict[str, int]  # AGE_BUCKETS -> count of open incidents


def incident_figures(user: User, period: ReportingPeriod, now: datetime) -> IncidentFigures:
    """Open incidents by status and priority and by age, and the service levels of the period:
    one pass over the visible incidents, SUM(CASE) columns grouped by status and priority."""
    is_open = Incident.status.in_(OPEN_STATUSES)
    ages = [
        func.coalesce(func.sum(case((and_(is_open, bucket), 1), else_=0)), 0)
        for bucket in _age_conditions(now)
    ]
    query = (
        select(Incident.status, Incident.priority, *_sla_columns(user, period, now), *ages)
        .where(_where(visible_incidents(user)))
        .group_by(Incident.status, Incident.priority)
    )
    open_by_status: dict[tuple[str, str], int] = {}
    sla = [0] * 6
    backlog = dict.fromkeys(AGE_BUCKETS, 0)
    for status, priority, *values in db.session.execute(query):
        values = [int(v) for v in values]
        sla = [total + v for total, v in zip(sla, values[:6], strict=True)]
        for name, count in zip(AGE_BUCKETS, values[6:], strict=True):
            backlog[name] += count
        if status in OPEN_STATUSES:
            open_by_status[(status, priority)] = sum(values[6:])
    return IncidentFigures(open_by_status, SlaFigure(*sla[:3]), SlaFigure(*sla[3:]), backlog)


def _target_sums(due, met_at, breached, start, end, now, met_also=None):
    """Three SUM(CASE) columns for one service-level target: met, missed, pending."""
    in_period = and_(due.is_not(None), due >= start, due < end)
    met = and_(met_at.is_not(None), breached.is_(False))
    if met_also is not None:
        met = or_(met, met_also)
    missed = or_(
        breached.is_(True),
        and_(
            met_at.is_(None),
            due < now,
            or_(Incident.paused_at.is_(None), due <= Incident.paused_at),
        ),
    )
    return (
        func.coalesce(func.sum(case((and_(in_period, met), 1), else_=0)), 0),
        func.coalesce(func.sum(case((and_(in_period, ~met, missed), 1), else_=0)), 0),
        func.coalesce(func.sum(case((and_(in_period, ~met, ~missed), 1), else_=0)), 0),
    )


def _sla_columns(user: User, period: ReportingPeriod, now: datetime) -> tuple:
    """(first response, resolution) × (met, missed, pending): targets due in the period."""
    start, end = period.utc_bounds(fc.user_timezone(user))
    # Resolved before the first reply was due, without a breach: nothing was left to answer.
    resolved_first = and_(
        Incident.first_responded_at.is_(None),
        Incident.resolved_at.is_not(None),
        Incident.first_response_breached.is_(False),
    )
    return _target_sums(
        Incident.first_response_due_at,
        Incident.first_responded_at,
        Incident.first_response_breached,
        start,
        end,
        now,
        met_also=resolved_first,
    ) + _target_sums(
        Incident.resolution_due_at,
        Incident.resolved_at,
        Incident.resolution_breached,
        start,
        end,
        now,
    )


def _age_conditions(now: datetime) -> list:
    """Days since an incident was opened: one condition per AGE_BUCKETS bucket."""
    limits = [now - timedelta(days=d) for d in AGE_LIMITS]
    created = Incident.created_at
    return [
        created > limits[0],
        and_(created <= limits[0], created > limits[1]),
        and_(created <= limits[1], created > limits[2]),
        and_(created <= limits[2], created > limits[3]),
        created <= limits[3],
    ]


def interventions_week(user: User, today: date, technician: User | None = None) -> WeekGrid:
    """Interventions booked per technician and day of this week (cancelled ones left out)."""
    tz = fc.user_timezone(user)
    monday = today - timedelta(days=today.weekday())
    days = [monday + timedelta(days=i) for i in range(7)]
    bounds = [local_midnight(d, tz) for d in [*days, monday + timedelta(days=7)]]
    day_index = case(
        *[(TechnicianBooking.starts_at < bounds[i + 1], i) for i in range(7)], else_=None
    )
    query = (
        select(TechnicianBooking.technician_id, day_index.label("day"), func.count())
        .join(Intervention, TechnicianBooking.intervention_id == Intervention.id)
        .where(
            _where(visible_interventions(user)),
            Intervention.status != "cancelled",
            TechnicianBooking.starts_at >= bounds[0],
            TechnicianBooking.starts_at < bounds[-1],
        )
        .group_by(TechnicianBooking.technician_id, day_index)
    )
    if technician is not None:
        query = query.where(TechnicianBooking.technician_id == technician.id)
    counts: dict[int, list[int]] = {}
    for technician_id, day, count in db.session.execute(query):
        counts.setdefault(technician_id, [0] * 7)[day] = count
    people = (
        db.session.scalars(select(User).where(User.id.in_(list(counts)))).all() if counts else []
    )
    rows = sorted(
        ((person, counts[person.id], sum(counts[person.id])) for person in people),
        key=lambda row: (row[0].name.lower(), row[0].id),
    )
    day_totals = [sum(row[1][i] for row in rows) for i in range(7)]
    return WeekGrid(days, rows, day_totals, sum(day_totals))


PRIORITY_ORDER = tuple(reversed(PRIORITIES))  # urgent first
