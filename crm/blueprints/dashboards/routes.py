"""The dashboard: a tab per audience (my day, my team, support), its period in the URL."""

from datetime import UTC, datetime

from flask import Blueprint, abort, request
from flask_babel import format_date
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select

from crm import htmx as hx
from crm.blueprints.deals.forecast import money, percent_label, quota_currency
from crm.extensions import db
from crm.labels import INCIDENT_STATUS_LABELS, PRIORITY_LABELS
from crm.models import Team
from crm.permissions import ADMIN, requires
from crm.services import charts
from crm.services import dashboards as dash
from crm.services import forecast as fc
from crm.services.reports import PERIOD_CHOICES, ReportError, ReportingPeriod

bp = Blueprint("dashboards", __name__)

PARTIALS = {"dashboard": "dashboard_body"}
KEPT_ARGS = ("period", "from", "to", "team")
TAB_LABELS = {"day": _l("My day"), "team": _l("Team"), "support": _l("Support")}
AGE_LABELS = {
    "lt1": _l("Less than a day"),
    "1to3": _l("1 to 3 days"),
    "3to7": _l("3 to 7 days"),
    "7to30": _l("7 to 30 days"),
    "gt30": _l("More than 30 days"),
}
ACTIVITY_COLUMNS = {
    "call": _l("Calls"),
    "meeting": _l("Meetings"),
    "note": _l("Notes"),
    "email": _l("Emails"),
}


@bp.route("/dashboard")
@requires("dashboards.view")
def index():
    tabs = dash.tabs_for(current_user)
    tab = request.args.get("tab") or tabs[0]
    context = {
        "tabs": tabs,
        "tab": tab,
        "tab_labels": TAB_LABELS,
        "period_choices": PERIOD_CHOICES,
        "args": request.args,
        # What a tab link keeps of the address: the period and the team, not the tab.
        "keep_args": {k: v for k, v in request.args.items() if k in KEPT_ARGS and v},
        "error": None,
        "teams": [],
        "team": None,
        "money": money,
        "percent_label": percent_label,
    }
    if tab not in TAB_LABELS:
        context.update(tab=tabs[0], error=("tab", _("There is no such dashboard: pick a tab.")))
        return hx.render("dashboards/index.html", PARTIALS, status=400, **context)
    if tab not in tabs:
        abort(403)
    if tab == "day":
        return hx.render("dashboards/index.html", PARTIALS, **context, **_day())
    today = fc.local_today(current_user)
    try:
        period = ReportingPeriod.parse(request.args, today)
        team = _picked_team(context)
    except ReportError as refused:
        context["error"] = (refused.field, refused.message)
        context["period"] = None
        return hx.render("dashboards/index.html", PARTIALS, status=422, **context)
    context.update(period=period, team=team, period_text=period_text(period))
    if tab == "team":
        context.update(_team(period, team))
    else:
        context.update(_support(period))
    return hx.render("dashboards/index.html", PARTIALS, **context)


def _picked_team(context: dict) -> Team | None:
    """Admins look at every team or pick one; managers see their own."""
    if current_user.role != ADMIN:
        return None
    teams = list(db.session.scalars(select(Team).order_by(Team.name)))
    context["teams"] = teams
    raw = (request.args.get("team") or "").strip()
    if not raw:
        return None
    team = next((t for t in teams if str(t.id) == raw), None)
    if team is None:
        raise ReportError("team", _l("Choose a team from the list."))
    return team


def period_text(period: ReportingPeriod) -> str:
    first, last = period.start, period.last_day
    if first == last:
        return format_date(first, "medium")
    return _(
        "%(first)s to %(last)s",
        first=format_date(first, "medium"),
        last=format_date(last, "medium"),
    )


# ---- the tabs ------------------------------------------------------------------------------------


def _day() -> dict:
    currency = quota_currency()
    day = dash.rep_day(current_user, currency=currency)
    objectives = [
        (
            o,
            charts.progress(
                _("This month") if o.period.kind == "month" else _("This quarter"),
                o.won.of(o.currency),
                o.target,
                unit="money",
                currency=o.currency,
            ),
        )
        for o in day.objectives
    ]
    week_chart = _week_chart(day.interventions) if day.interventions else None
    return {
        "day": day,
        "my_day": day.my_day,
        "zone": day.zone,
        "now": datetime.now(UTC),
        "objectives": objectives,
        "week_chart": week_chart,
        "stale_days": dash.STALE_DAYS,
    }


def _team(period: ReportingPeriod, team: Team | None) -> dict:
    currency = quota_currency()
    data = dash.team_dashboard(current_user, period, team=team, currency=currency)
    stages = data.pipeline
    names = [
        f"{s.pipeline} · {s.name}" if len({x.pipeline for x in stages}) > 1 else s.name
        for s in stages
    ]
    pipeline_count = charts.bar_chart(
        _("Open deals by stage"), names, [("", [s.count for s in stages])]
    )
    pipeline_amount = charts.bar_chart(
        _("Open amount by stage (%(currency)s)", currency=currency),
        names,
        [("", [s.amounts.of(currency) for s in stages])],
        unit="money",
        currency=currency,
    )
    funnel = data.funnel
    funnel_chart = charts.bar_chart(
        _("Conversion"),
        [_("Meeting"), _("Proposal"), _("Won")],
        [("", [funnel.meeting, funnel.proposal, funnel.won])],
    )
    objective = data.objective
    target_progress = (
        charts.progress(
            _("Forecast"), objective.forecast, objective.target, unit="money", currency=currency
        )
        if objective.target
        else None
    )
    kinds = list(ACTIVITY_COLUMNS)
    activity_chart = charts.bar_chart(
        _("Activities per rep"),
        [line.user.name for line in data.activities],
        [(str(ACTIVITY_COLUMNS[k]), [line.counts[k] for line in data.activities]) for k in kinds],
    )
    win_ring = charts.ring(
        _("Win rate"),
        [(_("Won"), data.win_rate.won), (_("Lost"), data.win_rate.lost)],
        classes=["series-good", "series-bad"],
    )
    return {
        "data": data,
        "currency": currency,
        "win_ring": win_ring,
        "stage_names": names,
        "pipeline_count_chart": pipeline_count,
        "pipeline_amount_chart": pipeline_amount,
        "funnel_chart": funnel_chart,
        "target_progress": target_progress,
        "activity_chart": activity_chart,
        "activity_columns": ACTIVITY_COLUMNS,
    }


def _support(period: ReportingPeriod) -> dict:
    data = dash.support_dashboard(current_user, period)
    statuses = list(dash.OPEN_STATUSES)
    priorities = list(dash.PRIORITY_ORDER)
    open_chart = charts.bar_chart(
        _("Open incidents by status and priority"),
        [str(INCIDENT_STATUS_LABELS[s]) for s in statuses],
        [
            (str(PRIORITY_LABELS[p]), [data.open_by_status.get((s, p), 0) for s in statuses])
            for p in priorities
        ],
    )
    backlog_chart = charts.bar_chart(
        _("Backlog by age"),
        [str(AGE_LABELS[b]) for b in dash.AGE_BUCKETS],
        [("", [data.backlog[b] for b in dash.AGE_BUCKETS])],
    )
    sla = [
        (
            _("First response"),
            data.first_response,
            charts.progress(
                _("First response"), data.first_response.met, data.first_response.decided
            ),
        ),
        (
            _("Resolution"),
            data.resolution,
            charts.progress(_("Resolution"), data.resolution.met, data.resolution.decided),
        ),
    ]
    return {
        "data": data,
        "statuses": statuses,
        "priorities": priorities,
        "open_chart": open_chart,
        "backlog_chart": backlog_chart,
        "age_labels": AGE_LABELS,
        "sla": sla,
        "week_chart": _week_chart(data.interventions),
        "format_day": format_day,
    }


def format_day(day) -> str:
    return format_date(day, "EEE d")


def _week_chart(grid: dash.WeekGrid) -> charts.BarChart:
    return charts.bar_chart(
        _("Interventions this week"),
        [format_day(day) for day in grid.days],
        [(person.name, counts) for person, counts, _total in grid.rows] or [("", [0] * 7)],
    )
