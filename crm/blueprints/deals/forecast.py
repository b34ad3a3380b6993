"""Forecasts against quotas, and the team's conversion."""

import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from babel import Locale
from babel.numbers import NumberFormatError, get_currency_precision, parse_decimal
from babel.numbers import format_currency as babel_format_currency
from flask import abort, current_app, request, url_for
from flask_babel import format_currency, format_date, format_decimal, format_percent, get_locale
from flask_babel import gettext as _
from flask_login import current_user
from werkzeug.routing import BuildError

from crm import htmx as hx
from crm.blueprints.deals import bp
from crm.extensions import db
from crm.models import Team, User
from crm.permissions import ADMIN, requires
from crm.services import forecast as fc

FORECAST_PARTIALS = {"forecast": "forecast_body"}
QUOTA_PARTIALS = {"quotas": "quotas_body"}
MAX_TARGET = Decimal("1000000000000")  # Money is Numeric(14, 2)


# ---- formatting for the templates --------------------------------------------------------


def money(value: Decimal, currency: str) -> str:
    """As flask_babel.format_currency writes it, for the current locale (the page shows a hundred)."""
    locale = get_locale()
    if locale is not None and isinstance(value, Decimal | int):
        return money_format(str(locale), currency)(Decimal(value))
    return format_currency(value, currency)


# Amounts whose text checks a money format against Babel: grouping, rounding, sign, zero.
_PROBES = ("1234567.891", "-1234567.895", "0", "-0.004", "0.5", "999.995", "1000", "12.345")


@lru_cache(maxsize=128)
def money_format(locale: str, currency: str) -> Callable[[Decimal], str]:
    """A formatter of `currency` amounts in `locale` that writes what Babel's format_currency
    writes, about ten times faster: the locale's pattern is worked out once (its text before and
    after the number, its separators) instead of for every amount. Babel itself is kept where
    the pattern is not the usual groups of three."""
    babel_locale = Locale.parse(locale)

    def by_babel(value: Decimal) -> str:
        return babel_format_currency(value, currency, locale=babel_locale)

    symbols = babel_locale.number_symbols.get("latn", {})
    separators = str.maketrans({",": symbols.get("group", ","), ".": symbols.get("decimal", ".")})
    quantum = Decimal(1).scaleb(-get_currency_precision(currency))
    thousand = format(Decimal(1000).quantize(quantum), ",f").translate(separators)
    positive, negative = by_babel(Decimal(1000)), by_babel(Decimal(-1000))
    if positive.count(thousand) != 1 or negative.count(thousand) != 1:
        return by_babel
    sides = (positive.split(thousand), negative.split(thousand))  # (before, after) by sign

    def fast(value: Decimal) -> str:
        before, after = sides[value.is_signed()]
        return before + format(abs(value).quantize(quantum), ",f").translate(separators) + after

    if any(fast(Decimal(p)) != by_babel(Decimal(p)) for p in _PROBES):
        return by_babel
    return fast


def percent_label(value: Decimal | None) -> str:
    return format_percent(value / 100) if value is not None else "—"


def period_label(period: fc.Period) -> str:
    if period.kind == "quarter":
        return format_date(period.start, "QQQ yyyy")
    return format_date(period.start, "LLLL yyyy")


def month_label(month) -> str:
    return format_date(month, "LLL yyyy")


def deal_url(deal) -> str:
    """The deal's page: /deals/<id> (built by its endpoint once the deal page exists)."""
    try:
        return url_for("deals.detail", deal_id=deal.id)
    except BuildError:
        return f"{request.script_root}/deals/{deal.id}"


def deal_list_url(**filters) -> str | None:
    """The deal list with these filters (the list a figure summarizes), if the list exists."""
    try:
        return url_for("deals.list_view", **filters)
    except BuildError:
        return None


def largest(values) -> dict[str, Decimal]:
    """The largest sum of each currency among `values` (Amounts): the full width of its bars."""
    result: dict[str, Decimal] = {}
    for amounts in values:
        for currency, value in amounts.items():
            result[currency] = max(result.get(currency, value), value)
    return result


def chart_currency(values, preferred: str) -> str:
    """The one currency a chart draws (bars of two currencies cannot share a scale): the
    target's currency when it appears, else the one with the largest sum."""
    totals: dict[str, Decimal] = {}
    for amounts in values:
        for currency, value in amounts.items():
            totals[currency] = totals.get(currency, Decimal("0")) + value
    if preferred in totals or not totals:
        return preferred
    return max(sorted(totals), key=lambda currency: totals[currency])


def quota_currency() -> str:
    return current_app.config.get("QUOTA_CURRENCY", fc.DEFAULT_QUOTA_CURRENCY)


HELPERS = {
    "money": money,
    "percent_label": percent_label,
    "period_label": period_label,
    "month_label": month_label,
    "deal_url": deal_url,
    "deal_list_url": deal_list_url,
    "largest": largest,
    "chart_currency": chart_currency,
    "format_decimal": format_decimal,
}


def _period() -> fc.Period:
    return fc.Period.parse(request.args.get("period") or request.form.get("period"), _today())


def _today():
    return fc.local_today(current_user)


# ---- the forecast page ---------------------------------------------------------------------------


@bp.route("/forecast")
@requires("forecast.view")
def forecast():
    period = _period()
    teams, team = [], None
    if current_user.role == ADMIN:
        teams = fc.quota_teams(current_user)
        team_id = request.args.get("team", type=int)
        team = next((t for t in teams if t.id == team_id), None)
    data = fc.build_forecast(current_user, period, team=team, currency=quota_currency())
    return hx.render(
        "deals/forecast.html",
        FORECAST_PARTIALS,
        f=data,
        period=period,
        today=data.today,
        teams=teams,
        team=team,
        link_args={"team": team.id} if team else {},
        **HELPERS,
    )


# ---- quotas ------------------------------------------------------------------------------------------


class AmountError(ValueError):
    pass


def parse_amount(text: str, locale) -> Decimal | None:
    """A target as the user's locale writes it ("12 000,50", "12,000.50"); None when empty."""
    cleaned = re.sub(r"[\s\u00a0\u202f]", "", text or "")
    if not cleaned:
        return None
    try:
        value = parse_decimal(cleaned, locale=locale, strict=True)
    except NumberFormatError:
        try:
            value = Decimal(cleaned)  # "12000.50" in a French form
        except InvalidOperation:
            raise AmountError(
                _("Enter an amount, for example %(example)s.", example=format_decimal(12000.5))
            ) from None
    if not value.is_finite() or value <= 0:
        raise AmountError(_("The target must be a positive amount."))
    if value >= MAX_TARGET:
        raise AmountError(_("This amount is too large."))
    if value != value.quantize(fc.CENT):
        raise AmountError(_("Use at most two decimals."))
    return value


def _row(kind: str, record, period: fc.Period, targets: dict, previous: dict, **extra) -> dict:
    key = (kind, record.id)
    row = {
        "kind": kind,
        "record": record,
        "target": targets.get(key),
        "previous": previous.get(key),
        "value": None,
        "error": None,
    }
    row.update(extra)
    return row


def _quota_groups(period: fc.Period) -> list[dict]:
    """One group per team (its own target first, then its reps), and the reps without a team."""
    teams = fc.quota_teams(current_user)
    people = fc.quota_people(current_user)
    targets = fc.quota_targets(period, users=people, teams=teams)
    previous = fc.quota_targets(period.previous, users=people, teams=teams)
    groups = []
    for team in teams:
        members = [u for u in people if u.team_id == team.id]
        rows = [_row("team", team, period, targets, previous)]
        rows += [_row("user", u, period, targets, previous) for u in members]
        groups.append({"team": team, "rows": rows})
    loose = [u for u in people if u.team_id is None or u.team_id not in {t.id for t in teams}]
    if loose:
        groups.append(
            {"team": None, "rows": [_row("user", u, period, targets, previous) for u in loose]}
        )
    return groups


def _quota_context(period: fc.Period) -> dict:
    return {
        "period": period,
        "today": _today(),
        "groups": _quota_groups(period),
        "currency": quota_currency(),
        "link_args": {},
        **HELPERS,
    }


@bp.route("/quotas", methods=["GET", "POST"])
@requires("quotas.manage")
def quotas():
    """Targets per rep and per team for a month or a quarter, each saved from its own row."""
    if request.method == "POST":
        return _save_quota()
    return hx.render("deals/quotas.html", QUOTA_PARTIALS, **_quota_context(_period()))


def _quota_record(kind: str, record_id: str):
    """The rep or team the form names, if the signed-in user may set its target; else 404."""
    if kind not in ("user", "team") or not (record_id or "").isdigit():
        abort(400)
    record = db.session.get(User if kind == "user" else Team, int(record_id))
    if record is None:
        abort(404)
    allowed = (
        fc.may_set_quota(current_user, user=record)
        if kind == "user"
        else fc.may_set_quota(current_user, team=record)
    )
    if not allowed or (kind == "user" and not record.active):
        abort(404)
    return record


def _save_quota():
    period = _period()
    kind = request.form.get("kind", "")
    record = _quota_record(kind, request.form.get("id", ""))
    typed = request.form.get("target", "")
    error = None
    try:
        target = parse_amount(typed, get_locale())
    except AmountError as refused:
        error = str(refused)
    else:
        owner = {"user": record} if kind == "user" else {"team": record}
        fc.set_quota(current_user, period, target, **owner)
        db.session.commit()
        name = record.name
        if target is None:
            hx.toast(_("Target of %(name)s removed.", name=name))
        else:
            hx.toast(
                _(
                    "Target of %(name)s for %(period)s: %(amount)s.",
                    name=name,
                    period=period_label(period),
                    amount=money(target, quota_currency()),
                )
            )
    if not hx.is_htmx():
        if error is None:
            return hx.location(url_for("deals.quotas", period=period.key))
        context = _quota_context(period)
        for group in context["groups"]:
            for row in group["rows"]:
                if row["kind"] == kind and row["record"].id == record.id:
                    row.update(value=typed, error=error)
        return hx.render("deals/quotas.html", status=422, **context)
    users = [record] if kind == "user" else []
    teams = [record] if kind == "team" else []
    targets = fc.quota_targets(period, users=users, teams=teams)
    previous = fc.quota_targets(period.previous, users=users, teams=teams)
    row = _row(kind, record, period, targets, previous)
    if error:
        row.update(value=typed, error=error)
    return hx.render_fragment(
        "deals/_quota_row.html",
        "row",
        status=422 if error else 200,
        row=row,
        period=period,
        currency=quota_currency(),
        saved=error is None,
        **HELPERS,
    )
