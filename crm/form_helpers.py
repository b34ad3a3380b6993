"""Small pieces shared by the WTForms forms."""

from collections.abc import Iterable
from decimal import Decimal

from flask_babel import format_decimal, get_locale
from flask_babel import lazy_gettext as _l
from wtforms import Field
from wtforms.fields.choices import SelectChoice
from wtforms.validators import StopValidation
from wtforms.widgets import TextInput

from crm.money import MoneyError, parse_money


def choices(pairs: Iterable[tuple[str, object]]) -> list[SelectChoice]:
    """[(value, label), ...] as WTForms 3.3 wants them."""
    return [SelectChoice(value, label) for value, label in pairs]


def strip(value):
    """Field filter: people paste addresses with spaces around them."""
    return value.strip() if isinstance(value, str) else value


STRIP = [strip]


def web_address_validators(max_length: int = 300) -> list:
    """A web address: http or https only. "javascript://host/%0Aalert(1)" passes WTForms'
    URL() and would run as a link; the CSP blocks it too, this refuses it first."""
    from wtforms.validators import URL, Length, Optional, Regexp

    return [
        Optional(),
        URL(),
        Regexp(r"(?i)^https?://", message=_l("Only http:// or https:// addresses.")),
        Length(max=max_length),
    ]


def money_errors() -> dict:
    example = format_decimal(Decimal("1234.50"), "#,##0.00")
    return {
        "invalid": _l("Enter an amount such as %(example)s.", example=example),
        "negative": _l("The amount cannot be negative."),
        "decimals": _l("Use at most two decimals."),
        "too_large": _l("This amount is too large."),
    }


class MoneyField(Field):
    """An amount (a price, a quantity, a percentage) typed the way the user's locale
    writes it ("1 234,50" or "1,234.50"), at most two decimals, never negative.

    The input is kept as typed, so that a form answered with 422 shows it unchanged;
    `data` is a Decimal, or None when the input is blank.
    """

    widget = TextInput()

    def __init__(self, label=None, validators=None, required=False, **kwargs):
        super().__init__(label, validators, **kwargs)
        self.required = required
        if required:
            self.flags.required = True
        self.raw = ""

    def process_formdata(self, valuelist):
        self.raw = (valuelist[0] if valuelist else "") or ""
        self.data = None
        if not self.raw.strip():
            return
        try:
            self.data = parse_money(self.raw, str(get_locale() or "en"))
        except MoneyError as error:
            raise ValueError(money_errors()[error.reason]) from None

    def process_data(self, value):
        self.data = value
        self.raw = format_decimal(value, "#,##0.00") if value is not None else ""

    def pre_validate(self, form):
        if self.required and not self.raw.strip():
            raise StopValidation(_l("Enter a price."))

    def _value(self):
        return self.raw
