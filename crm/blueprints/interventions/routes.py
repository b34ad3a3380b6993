"""Intervention pages and changes: the dispatch board and scheduling.

A card moves with one POST to /interventions/<id>/schedule, the same form whether
it comes from a drag (the drop fills in the technician and the start and submits
it) or from the card's menu (keyboard, or no JavaScript at all). The answer is the
board again, so that every slot and the tray are right; a refusal is a toast (409
when the technician is taken, 422 on a bad input) and the card goes back.
"""

from collections.abc import Sequence
from datetime import datetime
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

from babel.dates import format_interval, format_skeleton
from flask import Blueprint, redirect, render_template, request, url_for
from flask_babel import format_date, format_time, get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from markupsafe import Markup
from sqlalchemy.orm import joinedload, selectinload
from werkzeug.datastructures import MultiDict
from wtforms import DateTimeLocalField, IntegerField
from wtforms.validators import DataRequired, Optional

from crm import htmx as hx
from crm.extensions import db
from crm.i18n import select_timezone
from crm.models import Intervention, TechnicianBooking, User
from crm.models.types import utcnow
from crm.permissions import TECHNICIAN, get_or_404_for, requires, visible_interventions
from crm.services import bookings, dispatch_board, interventions
from crm.services.dispatch_board import BoardQuery
from crm.services.recurrence import from_local_naive

bp = Blueprint("interventions", __name__, url_prefix="/interventions")

BOARD_PARTIALS = {"dispatch-board": "board"}


class ScheduleForm(FlaskForm):
    """Where a card goes: a technician's row at a local start time."""

    technician_id = IntegerField(_l("Technician"), validators=[DataRequired()])
    start = DateTimeLocalField(
        _l("Start"), format=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"], validators=[DataRequired()]
    )
    # The row it was dragged from: the technician it replaces when there are several.
    from_technician_id = IntegerField(validators=[Optional()])


def viewer_zone() -> ZoneInfo:
    return ZoneInfo(select_timezone())


class CardMenus:
    """The technician <select> of each card, built once per request: a board shows hundreds."""

    def __init__(self, technicians: list[User]):
        self.technicians = technicians
        self._options: dict[int | None, Markup] = {}

    def options(self, selected_id: int | None) -> Markup:
        if selected_id not in self._options:
            option = Markup('<option value="{}"{}>{}</option>')
            chosen = Markup(" selected")
            self._options[selected_id] = Markup("").join(
                option.format(t.id, chosen if t.id == selected_id else "", t.name)
                for t in self.technicians
            )
        return self._options[selected_id]


def _board_context(query: BoardQuery, tray_cursor: str | None = None, **extra) -> dict:
    zone = viewer_zone()
    board = dispatch_board.build_board(query, zone, utcnow(), tray_cursor)
    return {
        "board": board,
        "q": query,
        "period_label": _period_label(board),
        **display_helpers(board.technicians),
        **extra,
    }


def display_helpers(technicians: Sequence[User] = ()) -> dict:
    """What the cards use to show times and durations, and the technician menu."""
    from crm.blueprints.interventions.planning import duration_label

    zone = viewer_zone()
    locale = get_locale()
    return {
        "menus": CardMenus(list(technicians)),
        "local_iso": lambda moment: moment.astimezone(zone).strftime("%Y-%m-%dT%H:%M"),
        "time_of": lambda moment: format_time(moment, "short"),
        "duration": duration_label,
        "day_label": lambda day: format_skeleton("MMMEd", day, locale=locale),
        "hour_label": lambda hour: format_skeleton("H", hour, locale=locale),
    }


def _period_label(board) -> str:
    first, last = board.days[0], board.days[-1]
    if first == last:
        return format_date(first, "full")
    return format_interval(first, last, "yMMMd", locale=get_locale())


@bp.route("")
@requires("interventions.view")
def index():
    """The dispatch board for planners; a technician's own day for technicians."""
    if current_user.role == TECHNICIAN:
        return redirect(url_for("interventions.today"))
    today = utcnow().astimezone(viewer_zone()).date()
    query = BoardQuery.from_args(request.args, today)
    tray_cursor = request.args.get("tray")
    if tray_cursor and hx.is_partial() and hx.target_id() == "tray-more":
        # The next cards of the tray, for its "more" link: those alone.
        tray = dispatch_board.load_tray(query.skill, tray_cursor)
        return hx.render_fragment(
            "interventions/board.html", "tray_more", tray=tray, q=query, **display_helpers()
        )
    return hx.render(
        "interventions/board.html", BOARD_PARTIALS, **_board_context(query, tray_cursor)
    )


def _board_address() -> tuple[str, BoardQuery]:
    """The board page the request came from, and what it shows."""
    board_path = url_for("interventions.index")
    today = utcnow().astimezone(viewer_zone()).date()
    for url in (request.headers.get("HX-Current-URL"), request.referrer):
        parts = urlsplit(url or "")
        if parts.path == board_path:
            address = board_path + (f"?{parts.query}" if parts.query else "")
            return address, BoardQuery.from_args(MultiDict(parse_qsl(parts.query)), today)
    return board_path, BoardQuery(day=today)


def _refused(status: int, message: str, intervention: Intervention | None = None):
    """A toast under htmx (the card goes back); otherwise the page the form was on
    (the board, or the intervention's page) with the message."""
    if hx.is_htmx():
        return hx.error_response(status, message)
    if intervention is not None and not _from_board():
        db.session.rollback()
        return _show_page(intervention.id, status=status, error=message)
    _address, query = _board_address()
    return hx.render(
        "interventions/board.html", status=status, **_board_context(query, error=message)
    )


def _board_answer():
    address, query = _board_address()
    if not hx.is_htmx():
        return redirect(address, 303)
    return hx.render_fragment("interventions/board.html", "board", **_board_context(query))


def _team_after_move(intervention: Intervention, target: User, from_id: int | None) -> list[User]:
    """The technicians once the card lands on `target`'s row.

    Dragged from one technician's row: that technician is replaced, the others stay.
    From the tray or the menu: `target` alone.
    """
    current = interventions.booked_technicians(intervention)
    if from_id is None or from_id not in {t.id for t in current}:
        return [target]
    team = [target if t.id == from_id else t for t in current]
    return list({t.id: t for t in team}.values())


@bp.route("/<int:intervention_id>/schedule", methods=["POST"])
@requires("interventions.plan")
def schedule(intervention_id: int):
    intervention = get_or_404_for(current_user, Intervention, intervention_id)
    form = ScheduleForm()
    if not form.validate():
        return _refused(422, _("Choose a technician and a start time."), intervention)
    technician = db.session.get(User, form.technician_id.data)
    if technician is None or not technician.active or technician.role != TECHNICIAN:
        return _refused(422, _("Choose a technician and a start time."), intervention)
    team = _team_after_move(intervention, technician, form.from_technician_id.data)
    start = from_local_naive(form.start.data, viewer_zone())
    try:
        interventions.schedule(intervention, team, start)
    except bookings.DoubleBooking as refused:
        message = refused.message
        db.session.rollback()
        return _refused(409, message, intervention)
    except bookings.NotBookable as refused:
        db.session.rollback()
        return _refused(422, str(refused), intervention)
    missing = interventions.missing_skills(intervention, team)
    when = _local_text(start)
    db.session.commit()
    if missing:
        # Allowed, with a warning: the planner may know better (a trainee, a skill not
        # recorded yet), and a refusal would only send them to the users page.
        hx.toast(
            _(
                "%(title)s planned for %(names)s, %(when)s. Missing skills: %(skills)s.",
                title=intervention.title,
                names=", ".join(t.name for t in team),
                when=when,
                skills=", ".join(missing),
            ),
            "warning",
        )
    else:
        hx.toast(
            _(
                "%(title)s planned for %(names)s, %(when)s.",
                title=intervention.title,
                names=", ".join(t.name for t in team),
                when=when,
            )
        )
    if not hx.is_htmx() and not _from_board():
        # From the intervention's page: to the board at its day, where it now sits.
        day = start.astimezone(viewer_zone()).date()
        return redirect(url_for("interventions.index", date=day.isoformat()), 303)
    return _board_answer()


def _local_text(moment: datetime) -> str:
    from flask_babel import format_datetime

    return format_datetime(moment, "short")


@bp.route("/<int:intervention_id>/unschedule", methods=["POST"])
@requires("interventions.plan")
def unschedule(intervention_id: int):
    intervention = get_or_404_for(current_user, Intervention, intervention_id)
    try:
        interventions.unschedule(intervention)
    except bookings.NotBookable as refused:
        db.session.rollback()
        return _refused(422, str(refused))
    db.session.commit()
    hx.toast(_("%(title)s is back among the unscheduled.", title=intervention.title))
    if _from_board():
        return _board_answer()
    return hx.location(url_for("interventions.show", intervention_id=intervention.id))


@bp.route("/<int:intervention_id>/cancel", methods=["POST"])
@requires("interventions.plan")
def cancel(intervention_id: int):
    intervention = get_or_404_for(current_user, Intervention, intervention_id)
    interventions.cancel(intervention)
    db.session.commit()
    hx.toast(_("%(title)s is cancelled.", title=intervention.title))
    if _from_board():
        return _board_answer()
    return hx.location(url_for("interventions.show", intervention_id=intervention.id))


def _from_board() -> bool:
    board_path = url_for("interventions.index")
    return any(
        urlsplit(url or "").path == board_path
        for url in (request.headers.get("HX-Current-URL"), request.referrer)
    )


@bp.route("/<int:intervention_id>")
@requires("interventions.view")
def show(intervention_id: int):
    return _show_page(get_or_404_for(current_user, Intervention, intervention_id).id)


def _show_page(intervention_id: int, status: int = 200, error: str | None = None):
    loaded = db.session.scalars(
        visible_interventions(current_user)
        .where(Intervention.id == intervention_id)
        .options(
            joinedload(Intervention.contact),
            joinedload(Intervention.company),
            joinedload(Intervention.incident),
            selectinload(Intervention.bookings).joinedload(TechnicianBooking.technician),
        )
    ).first()
    team = interventions.booked_technicians(loaded)
    body = render_template(
        "interventions/show.html",
        intervention=loaded,
        team=team,
        missing=interventions.missing_skills(loaded, team) if team else [],
        error=error,
        **display_helpers(interventions.technicians()),
    )
    return body, status


from crm.blueprints.interventions import field, planning  # noqa: E402,F401  (their views)
