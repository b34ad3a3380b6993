"""Support settings (/incidents/settings): service levels per priority, business hours
and the time zone, holidays, and the availability of support agents (away until,
load limit) that round robin reads. Also the template global that the SLA badge
(incidents/_sla.html) asks for the state of a clock.

Each section is its own form and its own fragment: saving one answers with that
section re-rendered (422 with errors beside the fields), nothing half-saved.
"""

from datetime import UTC, date, datetime, time

from flask import request, url_for
from flask_babel import format_date
from flask_babel import gettext as _
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from crm import htmx as hx
from crm.blueprints.incidents.routes import bp
from crm.blueprints.incidents.settings_forms import (
    AvailabilityForm,
    FrenchHolidaysForm,
    HolidayForm,
    HoursForm,
    PolicyForm,
)
from crm.extensions import db
from crm.models import Incident, User
from crm.models.support import PRIORITIES
from crm.permissions import requires
from crm.services import assignment, sla, support_settings
from crm.services.business_time import MINUTES_PER_DAY

PAGE = "incidents/settings.html"
WEEKDAYS = range(7)


# ---- the SLA badge ----------------------------------------------------------------


@bp.app_template_global("sla_state")
def sla_state(incident, now: datetime | None = None) -> sla.ClockState:
    """The clock of `incident` for display, with the calendar read once per request."""
    return sla.clock(
        incident,
        now or datetime.now(UTC),
        support_settings.load_calendar(),
        support_settings.load_policies(),
    )


@bp.app_template_filter("business_duration")
def business_duration(minutes: int | None) -> str:
    """40 → "40 min", 135 → "2 h 15", 120 → "2 h" (business time, so no days)."""
    minutes = abs(int(minutes or 0))
    hours, rest = divmod(minutes, 60)
    if not hours:
        return _("%(minutes)d min", minutes=rest)
    if not rest:
        return _("%(hours)d h", hours=hours)
    return _("%(hours)d h %(minutes)02d", hours=hours, minutes=rest)


# ---- reading the settings into forms ------------------------------------------------


def _policy_form(formdata=None) -> PolicyForm:
    if formdata is not None:
        return PolicyForm()
    data = {}
    for priority, policy in support_settings.load_policies().items():
        first_h, first_m = divmod(policy.first_response_minutes, 60)
        res_h, res_m = divmod(policy.resolution_minutes, 60)
        data[priority] = {
            "first_hours": first_h,
            "first_minutes": first_m,
            "resolution_hours": res_h,
            "resolution_minutes": res_m,
            "warning": policy.warning_minutes,
        }
    return PolicyForm(formdata=None, data=data)


def _as_time(minute: int) -> time:
    return time(0, 0) if minute >= MINUTES_PER_DAY else time(minute // 60, minute % 60)


def _hours_form(formdata=None) -> HoursForm:
    if formdata is not None:
        return HoursForm()
    calendar = support_settings.load_calendar()
    data = {"timezone": calendar.timezone}
    for weekday in WEEKDAYS:
        spans = list(calendar.week[weekday])[:2]
        day = {}
        for n, (opens, closes) in enumerate(spans, start=1):
            day[f"opens{n}"], day[f"closes{n}"] = _as_time(opens), _as_time(closes)
        data[f"day{weekday}"] = day
    return HoursForm(formdata=None, data=data)


def _holidays() -> list:
    row = support_settings.calendar_row()
    if row is not None:
        return [(h.id, h.day, h.name) for h in row.holidays]
    # Not saved yet: the defaults in use, shown without ids (nothing to remove yet).
    today = datetime.now(UTC).date()
    return [(None, day, name) for day, name in support_settings._default_holidays(today)]


def _agents() -> list[tuple[User, int]]:
    """Active support agents with their open incidents, in two queries."""
    agents = list(
        db.session.scalars(
            select(User)
            .where(User.role == "support", User.active.is_(True))
            .options(selectinload(User.team))
            .order_by(User.name)
        )
    )
    loads = dict(
        db.session.execute(
            select(Incident.assignee_id, func.count())
            .where(
                Incident.assignee_id.in_([a.id for a in agents]),
                Incident.status.in_(assignment.OPEN_STATUSES),
            )
            .group_by(Incident.assignee_id)
        ).all()
    )
    return [(agent, loads.get(agent.id, 0)) for agent in agents]


def _availability_form(agent: User) -> AvailabilityForm:
    return AvailabilityForm(
        formdata=None,
        data={"away_until": agent.away_until, "max_open_incidents": agent.max_open_incidents},
    )


def _context(**overrides) -> dict:
    today = datetime.now(UTC).date()
    context = {
        "policy_form": _policy_form(),
        "hours_form": _hours_form(),
        "holiday_form": HolidayForm(formdata=None),
        "french_form": FrenchHolidaysForm(formdata=None, data={"year": today.year + 1}),
        "holidays": _holidays(),
        "agents": [(a, load, _availability_form(a), None) for a, load in _agents()],
        "default_limit": assignment.default_limit(),
        "priorities": PRIORITIES,
        "weekdays": WEEKDAYS,
        # 1 January 2024 was a Monday.
        "weekday_names": [format_date(date(2024, 1, 1 + d), "EEEE") for d in WEEKDAYS],
        "today": today,
    }
    context.update(overrides)
    return context


def _section(block: str, status: int = 200, **overrides):
    """The section after a POST under htmx; the whole page otherwise (a plain form post)."""
    if not hx.is_htmx():
        if status == 200:
            return hx.location(url_for("incidents.settings"))
        return hx.render(PAGE, status=status, **_context(**overrides))
    return hx.render_fragment(PAGE, block, status=status, **_context(**overrides))


# ---- routes ------------------------------------------------------------------------


@bp.route("/settings")
@requires("support.configure")
def settings():
    return hx.render(PAGE, **_context())


@bp.route("/settings/policies", methods=["POST"])
@requires("support.configure")
def save_policies():
    form = _policy_form(request.form)
    if not form.validate_on_submit():
        return _section("policies", 422, policy_form=form)
    targets = {}
    for priority in PRIORITIES:
        row = getattr(form, priority).form
        targets[priority] = (
            row.minutes(row.first_hours, row.first_minutes),
            row.minutes(row.resolution_hours, row.resolution_minutes),
            row.warning.data,
        )
    support_settings.save_policies(targets)
    db.session.commit()
    hx.toast(_("Service levels saved. New incidents follow them."))
    return _section("policies")


@bp.route("/settings/hours", methods=["POST"])
@requires("support.configure")
def save_hours():
    form = _hours_form(request.form)
    if not form.validate_on_submit():
        return _section("hours", 422, hours_form=form)
    spans = {weekday: day.form.spans() for weekday, day in enumerate(form.days())}
    support_settings.save_hours(form.timezone.data, spans)
    db.session.commit()
    hx.toast(_("Business hours saved."))
    return _section("hours")


@bp.route("/settings/holidays", methods=["POST"])
@requires("support.configure")
def add_holiday():
    form = HolidayForm()
    if form.validate_on_submit():
        if support_settings.add_holiday(form.day.data, form.name.data):
            db.session.commit()
            hx.toast(_("Holiday added."))
            return _section("holidays")
        form.day.errors.append(_("This day is a holiday already."))
    db.session.rollback()
    return _section("holidays", 422, holiday_form=form)


@bp.route("/settings/holidays/french", methods=["POST"])
@requires("support.configure")
def add_french_holidays():
    form = FrenchHolidaysForm()
    if not form.validate_on_submit():
        return _section("holidays", 422, french_form=form)
    added = support_settings.add_french_holidays(form.year.data)
    db.session.commit()
    hx.toast(_("%(count)d public holidays added.", count=added))
    return _section("holidays")


@bp.route("/settings/holidays/<int:holiday_id>/delete", methods=["POST"])
@requires("support.configure")
def remove_holiday(holiday_id: int):
    if not support_settings.remove_holiday(holiday_id):
        return hx.error_response(404, _("This holiday is gone already."))
    db.session.commit()
    hx.toast(_("Holiday removed."))
    return _section("holidays")


@bp.route("/settings/agents/<int:user_id>", methods=["POST"])
@requires("support.configure")
def save_availability(user_id: int):
    agent = db.session.get(User, user_id)
    if agent is None or agent.role != "support" or not agent.active:
        return hx.error_response(404, _("This person is not a support agent."))
    form = AvailabilityForm()
    load = dict((a.id, n) for a, n in _agents()).get(agent.id, 0)
    if not form.validate_on_submit():
        return _agent_row(agent, load, form, 422)
    agent.away_until = form.away_until.data
    agent.max_open_incidents = form.max_open_incidents.data
    db.session.commit()
    hx.toast(_("Availability of %(name)s saved.", name=agent.name))
    return _agent_row(agent, load, _availability_form(agent), 200)


def _agent_row(agent: User, load: int, form: AvailabilityForm, status: int):
    if not hx.is_htmx():
        if status == 200:
            return hx.location(url_for("incidents.settings"))
        rows = [
            (a, n, form if a.id == agent.id else _availability_form(a), None) for a, n in _agents()
        ]
        return hx.render(PAGE, status=status, **_context(agents=rows))
    return hx.render_fragment(
        "incidents/settings_agent_row.html",
        "row",
        status=status,
        agent=agent,
        load=load,
        form=form,
        default_limit=assignment.default_limit(),
        today=datetime.now(UTC).date(),
    )
