"""Amounts of money as people type them, in either language.

parse_money() reads "1 234,50", "1,234.50", "1234.5" or "€ 99" into a Decimal
and refuses anything else with a reason the forms turn into a message.
"""

import re
from decimal import Decimal, InvalidOperation

from babel.numbers import NumberFormatError, get_group_symbol, parse_decimal

# Numeric(14, 2): twelve digits before the decimal mark.
MAX_PRICE = Decimal("999999999999.99")


class MoneyError(ValueError):
    """Text that is not an amount of money: `reason` is "invalid", "negative",
    "decimals" or "too_large"."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# ---- reading amounts ---------------------------------------------------------

_CURRENCY = re.compile(r"€|\bEUR\b", re.IGNORECASE)
_ALLOWED = re.compile(r"^-?[0-9][0-9.,]*$")
_SPACES = re.compile(r"[\s\u00a0\u202f\u2009']+")


def parse_money(text: str, locale: str, others: tuple[str, ...] = ("en", "fr")) -> Decimal:
    """The amount `text` stands for, read the way `locale` writes numbers first.

    Spaces (ordinary, non-breaking, narrow) and apostrophes only ever group
    thousands; an amount that does not read in the user's locale is tried in
    the other supported ones, so "1,234.50" works for a French user and
    "1 234,50" for an English one. Ambiguous text ("12,345") reads as the
    user's locale says. A euro sign or "EUR" around the number is ignored.
    """
    raw = _CURRENCY.sub("", text or "").strip()
    compact = _SPACES.sub("", raw)
    if not compact or not _ALLOWED.match(compact):
        raise MoneyError("invalid")
    value = None
    for candidate in dict.fromkeys((str(locale), *others)):
        try:
            value = parse_decimal(_with_group_spaces(raw, candidate), locale=candidate, strict=True)
            break
        except (NumberFormatError, InvalidOperation):
            continue
    if value is None or not value.is_finite():
        raise MoneyError("invalid")
    if value < 0:
        raise MoneyError("negative")
    # Before quantize(): forty digits would exceed the decimal context and raise.
    if value > MAX_PRICE:
        raise MoneyError("too_large")
    if value.as_tuple().exponent < -2 and value != value.quantize(Decimal("0.01")):
        raise MoneyError("decimals")
    return value.quantize(Decimal("0.01"))


def _with_group_spaces(raw: str, locale: str) -> str:
    """Spaces as the locale's group symbol where it is a space, else removed."""
    group = get_group_symbol(locale)
    replacement = group if not group.strip() else ""
    return _SPACES.sub(replacement, raw.strip())
