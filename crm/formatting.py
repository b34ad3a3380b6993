"""Template filters: dates, numbers and money as the user's locale writes them."""

from datetime import UTC, datetime

from flask_babel import (
    format_currency,
    format_date,
    format_datetime,
    format_decimal,
    format_timedelta,
)
from flask_babel import gettext as _


def datetime_short(value: datetime | None) -> str:
    return format_datetime(value, "short") if value else ""


def date_medium(value) -> str:
    return format_date(value, "medium") if value else ""


def ago(value: datetime | None) -> str:
    """ "3 days ago" for recent moments, the date for older ones."""
    if not value:
        return ""
    delta = datetime.now(UTC) - value
    if delta.days > 30:
        return format_date(value, "medium")
    if delta.total_seconds() < 60:
        return _("just now")
    return _("%(delta)s ago", delta=format_timedelta(delta, granularity="minute"))


def number(value) -> str:
    return format_decimal(value) if value is not None else ""


def money(value, currency: str = "EUR") -> str:
    """1234.5 EUR is "1 234,50 €" in French and "€1,234.50" in English."""
    if value is None:
        return ""
    return format_currency(value, currency)


def percent(value) -> str:
    return f"{format_decimal(value)} %" if value is not None else ""


FILTERS = {
    "money": money,
    "percent": percent,
    "datetime_short": datetime_short,
    "date_medium": date_medium,
    "ago": ago,
    "number": number,
}
