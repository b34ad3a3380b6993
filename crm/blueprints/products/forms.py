from decimal import Decimal

from flask_babel import format_decimal, get_locale
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, Field, StringField
from wtforms.validators import DataRequired, Length, StopValidation, ValidationError
from wtforms.widgets import TextInput

from crm.services.products import CODE_MAX, NAME_MAX, MoneyError, code_taken, parse_money


def money_errors() -> dict:
    example = format_decimal(Decimal("1234.50"), "#,##0.00")
    return {
        "invalid": _l("Enter an amount such as %(example)s.", example=example),
        "negative": _l("The amount cannot be negative."),
        "decimals": _l("Use at most two decimals."),
        "too_large": _l("This amount is too large."),
    }


class MoneyField(Field):
    """An amount typed the way the user's locale writes it ("1 234,50" or "1,234.50").

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


class ProductForm(FlaskForm):
    """Quick-add: a code, a name and a price are enough; the cost is optional."""

    code = StringField(_l("Code"), validators=[DataRequired(), Length(max=CODE_MAX)])
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=NAME_MAX)])
    unit_price = MoneyField(_l("Unit price"), required=True)
    unit_cost = MoneyField(_l("Unit cost"))

    def validate_code(self, field):
        """Said at once with the other errors; the service checks again when it saves."""
        if field.data and code_taken(" ".join(field.data.split())):
            raise ValidationError(_l("Another product already has this code."))


class ProductEditForm(FlaskForm):
    """The row editor of the list."""

    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=NAME_MAX)])
    unit_price = MoneyField(_l("Unit price"), required=True)
    unit_cost = MoneyField(_l("Unit cost"))
    active = BooleanField(_l("Active"))
