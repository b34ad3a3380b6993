"""The kanban board of a pipeline: columns per stage, drag and drop between them.

Each column shows its head (count and totals over all its deals) and its first cards; the
next ones come from /deals/stages/<id>/cards as one scrolls down the column.

A card moves with one POST to /deals/<id>/move, the same form whether it comes from a
drag (SortableJS fills in the stage and submits it) or from the stage <select> of the
card's "⋯" menu (keyboard; without JavaScript, "⋯" opens that form on a page of its own).
The answer is the card, plus the heads of the two columns it left and joined, as
<hx-partial>s.
"""

from datetime import date
from functools import partial
from urllib.parse import parse_qsl, urlsplit

from babel.dates import format_skeleton
from babel.numbers import parse_pattern
from flask import abort, redirect, render_template, request, url_for
from flask_babel import format_currency, format_percent, get_locale, to_user_timezone
from flask_babel import gettext as _
from flask_login import current_user
from markupsafe import Markup
from werkzeug.datastructures import MultiDict

from crm import htmx as hx
from crm.blueprints.deals import bp
from crm.blueprints.deals.forms import DealQuickAddForm
from crm.extensions import db
from crm.models import Deal
from crm.models.deals import Pipeline, Stage
from crm.models.types import utcnow
from crm.permissions import get_or_404_for, requires
from crm.services import deal_board, deals
from crm.services.deal_filters import CLOSE_WINDOWS, DealFilters

BOARD_PARTIALS = {"deal-board": "board"}


class BoardFormat:
    """Money, dates and stage choices as the user's locale writes them, for one request.

    A board shows hundreds of cards: the currency pattern is parsed once, a date or a
    <select> of stages is built once and reused by every card that shows the same one.
    """

    def __init__(self, today: date):
        self.today = today
        pattern = get_locale().currency_formats["standard"].pattern
        self._whole_units = parse_pattern(pattern.replace(".00", ""))
        self._dates: dict[date, str] = {}
        self._options: dict[tuple[int, int], Markup] = {}

    def money(self, amount, currency: str) -> str:
        """In whole units: "€12,500" in English, "12 500 €" in French."""
        return format_currency(amount, currency, format=self._whole_units, currency_digits=False)

    def percent(self, probability: int) -> str:
        return format_percent(probability / 100)

    def short_date(self, day: date) -> str:
        """ "Nov 25", with the year only when it is not this one."""
        if day not in self._dates:
            skeleton = "MMMd" if day.year == self.today.year else "yMMMd"
            self._dates[day] = format_skeleton(skeleton, day, locale=get_locale())
        return self._dates[day]

    def stage_options(self, stages, selected_id: int) -> Markup:
        key = (id(stages), selected_id)
        if key not in self._options:
            option = Markup('<option value="{}"{}>{}</option>')
            selected = Markup(" selected")
            self._options[key] = Markup("").join(
                option.format(s.id, selected if s.id == selected_id else "", s.name) for s in stages
            )
        return self._options[key]


def close_window_labels() -> dict[str, str]:
    labels = {
        "overdue": _("Past expected close"),
        "this_month": _("Closing this month"),
        "next_month": _("Closing next month"),
        "this_quarter": _("Closing this quarter"),
    }
    return {name: labels[name] for name in CLOSE_WINDOWS}


def _display_context() -> dict:
    now = utcnow()
    today = to_user_timezone(now).date()
    fmt = BoardFormat(today)
    return {
        "now": now,
        "today": today,
        "money": fmt.money,
        "percent": fmt.percent,
        "short_date": fmt.short_date,
        "stage_options": fmt.stage_options,
        "card_flags": partial(deal_board.card_flags, today=today, now=now),
        "show_owner": deal_board.shows_owners(current_user),
        "closed_days": deal_board.CLOSED_DAYS,
    }


def _chosen_pipeline(pipelines: list[Pipeline], pipeline_id: int | None) -> Pipeline | None:
    for pipeline in pipelines:
        if pipeline.id == pipeline_id:
            return pipeline
    defaults = [p for p in pipelines if p.is_default]
    return (defaults or pipelines or [None])[0]


@bp.route("")
@requires("deals.view")
def board():
    filters = DealFilters.from_args(request.args)
    pipelines = deals.pipelines()
    pipeline = _chosen_pipeline(pipelines, request.args.get("pipeline", type=int))
    context = _display_context()
    columns = []
    if pipeline is not None:
        columns = deal_board.load_board(
            current_user, pipeline, filters, today=context["today"], now=context["now"]
        )
    return hx.render(
        "deals/board.html",
        BOARD_PARTIALS,
        pipelines=pipelines,
        pipeline=pipeline,
        columns=columns,
        filters=filters,
        whole_page=lambda: {
            "owners": deal_board.owner_choices(current_user),
            "teams": deal_board.team_choices(current_user),
            "close_windows": close_window_labels(),
            "quick_add_form": DealQuickAddForm(formdata=None),
        },
        **context,
    )


@bp.route("/stages/<int:stage_id>/cards")
@requires("deals.view")
def board_cards(stage_id: int):
    """The next cards of a board column, after the one named by `after`, as one scrolls.

    Opened as a page (no htmx), the column's deals are in the list.
    """
    stage = db.get_or_404(Stage, stage_id)
    filters = DealFilters.from_args(request.args)
    if not hx.is_htmx():
        args = filters.as_args(pipeline=stage.pipeline_id, stage=stage.id)
        return redirect(url_for("deals.list_view", **args), 303)
    context = _display_context()
    page = deal_board.column_cards(
        current_user,
        stage,
        filters,
        request.args.get("after"),
        today=context["today"],
        now=context["now"],
    )
    left = max(request.args.get("left", 0, type=int) - len(page.deals), 0)
    return hx.render_fragment(
        "deals/board.html",
        "column_cards",
        stage=stage,
        page=page,
        left=left,
        filters=filters,
        **context,
    )


def _board_address() -> tuple[str, DealFilters]:
    """The board page the move came from, and its filters: the heads it shows follow them.

    Without JavaScript the move is posted from the deal's move page, which names the board
    it was opened from in `return_to`.
    """
    board_path = url_for("deals.board")
    for url in (
        request.form.get("return_to"),
        request.headers.get("HX-Current-URL"),
        request.referrer,
    ):
        parts = urlsplit(url or "")
        if parts.path == board_path:  # only its path and query are kept: never another site
            address = board_path + (f"?{parts.query}" if parts.query else "")
            return address, DealFilters.from_args(MultiDict(parse_qsl(parts.query)))
    return board_path, DealFilters()


def _changed_by_message(deal: Deal) -> str:
    if deal.updated_by_id == current_user.id:
        return _("You changed this deal in another window. Reload to see the changes.")
    if deal.updated_by is not None:
        return _(
            "This deal was changed by %(name)s. Reload to see their changes.",
            name=deal.updated_by.name,
        )
    return _("This deal was changed by someone else. Reload to see their changes.")


@bp.route("/<int:deal_id>/move")
@requires("deals.edit")
def move_page(deal_id: int):
    """The card's "⋯" without JavaScript: its move form on a page, back to the board after."""
    deal = get_or_404_for(current_user, Deal, deal_id, *deals.card_options())
    return _move_page(deal, deal.stage)


def _move_page(deal: Deal, stage: Stage, reason: str = "", reason_error: str | None = None):
    return render_template(
        "deals/move.html",
        deal=deal,
        stages=deal.pipeline.stages,
        chosen_stage=stage,
        reason=reason,
        reason_error=reason_error,
        return_to=_board_address()[0],
        **_display_context(),
    )


@bp.route("/<int:deal_id>/move", methods=["POST"])
@requires("deals.edit")
def move(deal_id: int):
    deal = get_or_404_for(current_user, Deal, deal_id, *deals.card_options())
    # The pipeline's stages came with the deal: the target is one of them, or refused.
    stage_id = request.form.get("stage_id", type=int)
    stage = next((s for s in deal.pipeline.stages if s.id == stage_id), None)
    if stage is None:
        abort(400)
    version = request.form.get("version", type=int)
    reason = request.form.get("lost_reason", "")
    previous = deal.stage
    address, filters = _board_address()
    try:
        moved = deals.move_deal(current_user, deal, stage, version, lost_reason=reason)
        if moved:
            deals.save(deal)
            # The commit expired them all: read back at once (previous and stage among them).
            deal = deals.reload_for_card(deal_id)
    except deals.StaleDeal as stale:
        db.session.rollback()
        message = _changed_by_message(stale.deal)
        if hx.is_htmx():
            return hx.error_response(409, message)
        return render_template("error.html", status=409, message=message), 409
    except deals.LostReasonRequired:
        db.session.rollback()
        return _ask_lost_reason(deal, stage, reason)

    if moved:
        hx.toast(_("Deal moved to %(stage)s.", stage=stage.name))
    if not hx.is_htmx():
        return hx.location(address)
    context = _display_context()
    heads = []
    if moved:
        heads = deal_board.column_heads(
            current_user,
            deal.pipeline,
            filters,
            [previous, stage],
            today=context["today"],
            now=context["now"],
        )
    return hx.render_fragment("deals/board.html", "moved", deal=deal, heads=heads, **context)


def _ask_lost_reason(deal: Deal, stage: Stage, reason: str):
    """422: the card (or, without htmx, a page) asks why the deal was lost, the stage kept."""
    reason_error = _("Say why the deal was lost.")
    if not hx.is_htmx():
        return _move_page(deal, stage, reason, reason_error), 422
    return hx.render_fragment(
        "deals/board.html",
        "card",
        status=422,
        deal=deal,
        stages=deal.pipeline.stages,
        chosen_stage=stage,
        reason=reason,
        reason_error=reason_error,
        **_display_context(),
    )
