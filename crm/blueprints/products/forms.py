from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, StringField
from wtforms.validators import DataRequired, Length, ValidationError

from crm.form_helpers import MoneyField
from crm.services.products import CODE_MAX, NAME_MAX, code_taken


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
