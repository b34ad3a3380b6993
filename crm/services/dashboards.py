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

from sqlalchemy import and_, case, func, literal, or_, select, union_all
from sqlalchemy.orm import aliased, joinedload

from crm.extensions import db
from crm.models import (
    Activity,
    Deal,
    DealStageHistory,
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


def _last_activity_by_deal():
    return (
        select(Activity.deal_id, func.max(Activity.occurred_at).label("last_at"))
        .where(Activity.deal_id.is_not(None))
        .group_by(Activity.deal_id)
        .subquery()
    )


def deals_to_move(
    user: User, today: date, now: datetime, limit: int = DEALS_TO_MOVE_LIMIT
) -> tuple[list[DealToMove], int]:
    """My open deals past their expected close or silent for STALE_DAYS days: the first
    `limit` (longest overdue first, then longest silent) and how many there are."""
    last = _last_activity_by_deal()
    last_touch = func.coalesce(last.c.last_at, Deal.created_at)
    stale_before = now - timedelta(days=STALE_DAYS)
    condition = and_(
        Deal.id.in_(_OwnDeals(user).deal_ids()),
        Stage.kind == "open",
        or_(Deal.expected_close < today, last_touch < stale_before),
    )
    base = (
        select(Deal)
        .join(Stage, Deal.stage_id == Stage.id)
        .outerjoin(last, last.c.deal_id == Deal.id)
        .where(condition)
    )
    count = db.session.scalar(base.with_only_columns(func.count()))
    query = (
        base.add_columns(last.c.last_at)
        .options(joinedload(Deal.stage), joinedload(Deal.company))
        .order_by(Deal.expected_close.is_(None), Deal.expected_close, last_touch, Deal.id)
        .limit(limit)
    )
    found = []
    for deal, last_at in db.session.execute(query):
        overdue = (
            (today - deal.expected_close).days
            if deal.expected_close and deal.expected_close < today
            else None
        )
        touched = last_at or deal.created_at
        silent = (now - touched).days if touched < stale_before else None
        found.append(DealToMove(deal, last_at, overdue, silent))
    return found, count


def quota_progress(user: User, today: date, now: datetime, currency: str) -> list[fc.Objective]:
    """Won and weighted open of my own deals against my targets of this month and quarter."""
    scope = _OwnDeals(user)
    tz = fc.user_timezone(user)
    month = fc.Period.containing("month", today)
    quarter = month.quarter
    start, end = quarter.utc_bounds(tz)
    won = fc.won_deals(scope, start, end)
    open_ = fc.open_deals(scope)
    result = []
    for period in (month, quarter):
        target = fc.quota_targets(period, users=[user]).get(("user", user.id))
        result.append(fc.objective(period, target, won, open_, today, tz, currency))
    return result


# ---- the manager's team -------------------------------------------------------------------------------


@dataclass
class StageFigure:
    stage_id: int
    name: str
    pipeline: str
    count: int
    amounts: fc.Amounts


@dataclass
class Funnel:
    meeting: int = 0
    proposal: int = 0
    won: int = 0

    @property
    def proposal_rate(self) -> Decimal | None:
        return fc.percent(self.proposal, self.meeting)

    @property
    def won_rate(self) -> Decimal | None:
        return fc.percent(self.won, self.proposal)

    @property
    def overall_rate(self) -> Decimal | None:
        return fc.percent(self.won, self.meeting)


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
    won = fc.won_deals(scope, start, end)
    open_ = fc.open_deals(scope)
    objective = fc.objective(period, target, won, open_, today, tz, currency)

    people = scope.people(set())
    activities, totals = activities_per_rep(user, people, start, end)
    return TeamFigures(
        scope=scope,
        period=period,
        currency=currency,
        pipeline=pipeline_by_stage(scope),
        objective=objective,
        target_available=target_available,
        funnel=conversion(scope, period, now),
        win_rate=fc.win_rate(scope, period),
        cycle=fc.sales_cycle(scope, period),
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


def pipeline_by_stage(scope: fc.Scope) -> list[StageFigure]:
    """Open deals per stage: how many, and their amounts per currency (one GROUP BY)."""
    query = (
        select(
            Stage.id,
            Stage.name,
            Pipeline.name,
            Deal.currency,
            func.count(),
            func.coalesce(func.sum(Deal.amount), 0),
        )
        .select_from(Deal)
        .join(Stage, Deal.stage_id == Stage.id)
        .join(Pipeline, Stage.pipeline_id == Pipeline.id)
        .where(Deal.id.in_(scope.deal_ids()), Stage.kind == "open")
        .group_by(
            Stage.id, Stage.name, Pipeline.name, Pipeline.position, Stage.position, Deal.currency
        )
        .order_by(Pipeline.position, Pipeline.name, Stage.position, Stage.id)
    )
    figures: dict[int, StageFigure] = {}
    for stage_id, name, pipeline, currency, count, amount in db.session.execute(query):
        figure = figures.setdefault(
            stage_id, StageFigure(stage_id, name, pipeline, 0, fc.Amounts())
        )
        figure.count += count
        figure.amounts.add(currency, Decimal(amount).quantize(fc.CENT))
    return list(figures.values())


def conversion(scope: fc.Scope, period: ReportingPeriod, now: datetime) -> Funnel:
    """Meeting -> proposal -> won for the deals whose first step falls in `period` (see the
    module's docstring), counted in SQL: each deal once per step."""
    start, end = period.utc_bounds(fc.user_timezone(scope.user))
    step_stage, current = aliased(Stage), aliased(Stage)
    by_stage = (
        select(
            DealStageHistory.deal_id.label("deal_id"),
            case((step_stage.kind == "won", "won"), else_=step_stage.milestone).label("step"),
            DealStageHistory.changed_at.label("at"),
        )
        .join(step_stage, DealStageHistory.to_stage_id == step_stage.id)
        .where(or_(step_stage.milestone.is_not(None), step_stage.kind == "won"))
    )
    held = select(Event.deal_id, literal("meeting"), Event.starts_at).where(
        Event.deal_id.is_not(None),
        Event.kind == "meeting",
        Event.status != "cancelled",
        Event.starts_at <= now,
    )
    logged = select(Activity.deal_id, literal("meeting"), Activity.occurred_at).where(
        Activity.deal_id.is_not(None), Activity.kind == "meeting"
    )
    steps = union_all(by_stage, held, logged).subquery()
    per_deal = (
        select(
            steps.c.deal_id,
            func.min(steps.c.at).label("entered"),
            func.max(case((steps.c.step.in_(("proposal", "won")), 1), else_=0)).label("proposal"),
            func.max(case((steps.c.step == "won", 1), else_=0)).label("won"),
        )
        .join(Deal, Deal.id == steps.c.deal_id)
        .join(current, Deal.stage_id == current.id)
        # Won once and reopened since: the win no longer counts, nor does its date.
        .where(
            steps.c.deal_id.in_(scope.deal_ids()),
            or_(steps.c.step != "won", current.kind == "won"),
        )
        .group_by(steps.c.deal_id)
        .subquery()
    )
    row = db.session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(per_deal.c.proposal), 0),
            func.coalesce(func.sum(per_deal.c.won), 0),
        ).where(per_deal.c.entered >= start, per_deal.c.entered < end)
    ).one()
    return Funnel(int(row[0]), int(row[1]), int(row[2]))


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
                Activity.id.in_(visible_activities(user).with_only_columns(Activity.id)),
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


def _visible_incident_ids(user: User):
    return visible_incidents(user).with_only_columns(Incident.id)


def support_dashboard(user: User, period: ReportingPeriod, now: datetime | None = None) -> Support:
    now = now or datetime.now(UTC)
    tz = fc.user_timezone(user)
    first_response, resolution = sla_compliance(user, period, now)
    return Support(
        period=period,
        open_by_status=open_incidents(user),
        first_response=first_response,
        resolution=resolution,
        backlog=backlog_by_age(user, now),
        interventions=interventions_week(user, now.astimezone(tz).date()),
    )


def open_incidents(user: User) -> dict[tuple[str, str], int]:
    query = (
        select(Incident.status, Incident.priority, func.count())
        .where(Incident.id.in_(_visible_incident_ids(user)), Incident.status.in_(OPEN_STATUSES))
        .group_by(Incident.status, Incident.priority)
    )
    return {(status, priority): count for status, priority, count in db.session.execute(query)}


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


def sla_compliance(
    user: User, period: ReportingPeriod, now: datetime
) -> tuple[SlaFigure, SlaFigure]:
    """(first response, resolution): targets due in the period, met / missed / pending."""
    start, end = period.utc_bounds(fc.user_timezone(user))
    # Resolved before the first reply was due, without a breach: nothing was left to answer.
    resolved_first = and_(
        Incident.first_responded_at.is_(None),
        Incident.resolved_at.is_not(None),
        Incident.first_response_breached.is_(False),
    )
    columns = _target_sums(
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
    row = db.session.execute(
        select(*columns).where(Incident.id.in_(_visible_incident_ids(user)))
    ).one()
    values = [int(v) for v in row]
    return SlaFigure(*values[:3]), SlaFigure(*values[3:])


def backlog_by_age(user: User, now: datetime) -> dict[str, int]:
    """Open incidents by days since they were opened (one query, a SUM(CASE) per bucket)."""
    limits = [now - timedelta(days=d) for d in AGE_LIMITS]
    created = Incident.created_at
    bucket_conditions = [
        created > limits[0],
        and_(created <= limits[0], created > limits[1]),
        and_(created <= limits[1], created > limits[2]),
        and_(created <= limits[2], created > limits[3]),
        created <= limits[3],
    ]
    row = db.session.execute(
        select(
            *(func.coalesce(func.sum(case((c, 1), else_=0)), 0) for c in bucket_conditions)
        ).where(Incident.id.in_(_visible_incident_ids(user)), Incident.status.in_(OPEN_STATUSES))
    ).one()
    return {name: int(value) for name, value in zip(AGE_BUCKETS, row, strict=True)}


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
            Intervention.id.in_(visible_interventions(user).with_only_columns(Intervention.id)),
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
