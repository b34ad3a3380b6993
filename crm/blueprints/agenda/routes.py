"""Agenda pages: day, week, month and team views, with the URL holding their state."""

from collections.abc import Callable
from datetime import time
from functools import cache
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

from babel.dates import format_interval, format_skeleton, format_time
from flask import Blueprint, request, url_for
from flask_babel import format_date, get_locale
from flask_login import current_user
from werkzeug.datastructures import MultiDict

from crm import htmx as hx
from crm.blueprints.agenda.forms import KIND_LABELS
from crm.i18n import select_timezone
from crm.models.agenda import AGENDA_KINDS
from crm.models.types import utcnow
from crm.permissions import requires
from crm.services.agenda_views import (
    SLOT_MINUTES,
    SLOTS_PER_DAY,
    VIEWS,
    AgendaQuery,
    build_view,
    may_plan_for,
)

bp = Blueprint("agenda", __name__, url_prefix="/agenda")

PARTIALS = {"agenda": "agenda_body"}
FIRST_VISIBLE_HOUR = 7  # the time grid opens scrolled to 07:00


def viewer_zone() -> ZoneInfo:
    return ZoneInfo(select_timezone())


class TimeLabels:
    """ "9:30 AM" or "09:30" for a moment on the viewer's clock, formatted once per time of
    day: a week of a team shows hundreds of times, most of them on the quarter hour."""

    def __init__(self, zone: ZoneInfo, locale):
        self.zone, self.locale = zone, locale
        self._labels: dict[tuple[int, int], str] = {}

    def __call__(self, moment) -> str:
        local = moment.astimezone(self.zone)
        key = (local.hour, local.minute)
        if key not in self._labels:
            self._labels[key] = format_time(time(*key), "short", locale=self.locale)
        return self._labels[key]


def event_links() -> Callable[[str], str]:
    """The address of an event's dialog from its key, from one url_for: the keys ("12",
    "12@2026-12-01T08:00:00Z") need no escaping in a path."""
    prefix = url_for("agenda.show_event", key="0")[:-1]
    return lambda key: prefix + key


def view_context(query: AgendaQuery) -> dict:
    zone = viewer_zone()
    now = utcnow()
    # The user itself, not the proxy: the view asks who it is for each of hundreds of items.
    viewer = current_user._get_current_object()
    view = build_view(viewer, query, zone, now)
    local_now = now.astimezone(zone)
    locale = get_locale() or "en"
    return {
        "period_label": _period_label(query, view.days, locale),
        # Once per day shown: the team view names the day in each of its cells.
        "day_label": cache(lambda day: format_skeleton("MMMEd", day, locale=locale)),
        "weekday_label": lambda day: format_skeleton("EEE", day, locale=locale),
        "time_of": TimeLabels(zone, locale),
        "event_href": event_links(),
        "local_iso": lambda moment: moment.astimezone(zone).strftime("%Y-%m-%dT%H:%M"),
        "v": view,
        "q": query,
        "views": VIEWS,
        "kinds": AGENDA_KINDS,
        "kind_labels": KIND_LABELS,
        "hours": [format_time(time(hour), "short", locale=locale) for hour in range(24)],
        "now_row": (local_now.hour * 60 + local_now.minute) // SLOT_MINUTES + 1,
        "first_row": FIRST_VISIBLE_HOUR * 60 // SLOT_MINUTES + 1,
        "slots": SLOTS_PER_DAY,
        "may_plan_for": lambda person: may_plan_for(viewer, person),
    }


def _period_label(query: AgendaQuery, days, locale) -> str:
    if query.view == "day":
        return format_date(query.day, "full")
    if query.view == "month":
        return format_skeleton("yMMMM", query.day, locale=locale)
    return format_interval(days[0], days[-1], "yMMMd", locale=locale)


def current_agenda_query() -> AgendaQuery | None:
    """The agenda the page shows, read from the address htmx sends with each request."""
    current = urlsplit(request.headers.get("HX-Current-URL", ""))
    if current.path.rstrip("/") != url_for("agenda.index"):
        return None
    today = utcnow().astimezone(viewer_zone()).date()
    return AgendaQuery.from_args(MultiDict(parse_qsl(current.query)), today)


@bp.route("")
@requires("agenda.view")
def index():
    today = utcnow().astimezone(viewer_zone()).date()
    query = AgendaQuery.from_args(request.args, today)
    context = view_context(query)
    response = hx.render("agenda/index.html", PARTIALS, **context)
    context["v"].release()  # freed now, not by the next full garbage collection
    return response


# The event routes share the blueprint.
from crm.blueprints.agenda import event_routes  # noqa: E402, F401
