from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateField, HiddenField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from crm.form_helpers import STRIP, MoneyField, choices

CURRENCIES = ("EUR", "USD", "GBP", "CHF", "CAD")


class DealQuickAddForm(FlaskForm):
    title = StringField(_l("Deal"), filters=STRIP, validators=[DataRequired(), Length(max=200)])
    amount = MoneyField(_l("Amount"), validators=[Optional(), NumberRange(min=0)])
    stage = IntegerField(validators=[Optional()])
    pipeline = IntegerField(validators=[Optional()])
    contact = IntegerField(validators=[Optional()])
    company = StringField(_l("Company"), filters=STRIP, validators=[Length(max=200)])
    return_to = HiddenField()


class DealForm(FlaskForm):
    version = IntegerField(validators=[InputRequired()])
    title = StringField(_l("Title"), filters=STRIP, validators=[DataRequired(), Length(max=200)])
    amount = MoneyField(_l("Amount"), validators=[Optional(), NumberRange(min=0)])
    currency = SelectField(_l("Currency"), choices=choices((c, c) for c in CURRENCIES))
    expected_close = DateField(_l("Expected close"), validators=[Optional()])
    owner = SelectField(_l("Owner"), coerce=str, validate_choice=True)
    contact = StringField(_l("Contact"), filters=STRIP, validators=[Length(max=300)])
    company = StringField(_l("Company"), filters=STRIP, validators=[Length(max=200)])
    source = StringField(_l("Source"), filters=STRIP, validators=[Length(max=60)])


class MoveForm(FlaskForm):
    version = IntegerField(validators=[InputRequired()])
    stage_id = IntegerField(validators=[InputRequired()])
    lost_reason = TextAreaField(
        _l("Why was it lost?"), filters=STRIP, validators=[Length(max=2000)]
    )


class LineForm(FlaskForm):
    product_id = IntegerField(_l("Product"), validators=[Optional()])
    description = StringField(_l("Description"), filters=STRIP, validators=[Length(max=300)])
    quantity = MoneyField(
        _l("Quantity"), default=1, validators=[InputRequired(), NumberRange(min=0.01)]
    )
    unit_price = MoneyField(_l("Unit price"), validators=[Optional(), NumberRange(min=0)])
    discount = MoneyField(
        _l("Discount %"), default=0, validators=[Optional(), NumberRange(min=0, max=100)]
    )


class NoteForm(FlaskForm):
    body = TextAreaField(_l("Note"), filters=STRIP, validators=[DataRequired(), Length(max=20000)])
