"""Small pieces shared by the WTForms forms."""

from collections.abc import Iterable
from decimal import Decimal, InvalidOperation

from babel.numbers import format_decimal, get_decimal_symbol
from flask_babel import get_locale
from wtforms import DecimalField
from wtforms.fields.choices import SelectChoice


def choices(pairs: Iterable[tuple[str, object]]) -> list[SelectChoice]:
    """[(value, label), ...] as WTForms 3.3 wants them."""
    return [SelectChoice(value, label) for value, label in pairs]


def strip(value):
    """Field filter: people paste addresses with spaces around them."""
    return value.strip() if isinstance(value, str) else value


STRIP = [strip]


class LocalizedDecimalField(DecimalField):
    """A number typed as people write it in their language: "1 234,50" in French,
    "1,234.50" in English, or plainly "1234.5"."""

    def __init__(self, label=None, validators=None, places=2, **kwargs):
        super().__init__(label, validators, places=places, **kwargs)

    def process_formdata(self, valuelist):
        if not valuelist or not valuelist[0].strip():
            self.data = None
            return
        try:
            self.data = parse_typed_decimal(valuelist[0], str(get_locale() or "en"))
        except InvalidOperation:
            self.data = None
            raise ValueError(self.gettext("Not a valid decimal value.")) from None

    def _value(self):
        if self.raw_data:
            return self.raw_data[0]
        if self.data is None:
            return ""
        return format_decimal(self.data, format="#,##0.##", locale=str(get_locale() or "en"))


def parse_typed_decimal(text: str, locale: str) -> Decimal:
    """Read a number whichever separators the person used.

    With both "." and "," the last one is the decimal mark ("1.234,50", "1,234.50").
    With one of them: appearing once and not followed by exactly three digits it is
    the decimal mark ("12,5", "0.75"); otherwise the locale decides ("1,234" is a
    thousand and more in English, one and a bit in French).
    """
    raw = "".join(text.split()).replace("\u00a0", "").replace("\u202f", "").replace("'", "")
    if not raw or not all(ch.isdigit() or ch in ".,+-" for ch in raw):
        raise InvalidOperation(text)
    if "." in raw and "," in raw:
        decimal_mark = "." if raw.rfind(".") > raw.rfind(",") else ","
    elif "." in raw or "," in raw:
        mark = "." if "." in raw else ","
        head, _, tail = raw.rpartition(mark)
        if raw.count(mark) == 1 and len(tail) != 3:
            decimal_mark = mark
        else:
            decimal_mark = (
                mark if mark == get_decimal_symbol(locale) and raw.count(mark) == 1 else ""
            )
    else:
        decimal_mark = ""
    grouping = {".", ","} - {decimal_mark}
    digits = "".join(ch for ch in raw if ch not in grouping)
    return Decimal(digits.replace(",", ".") if decimal_mark == "," else digits)
