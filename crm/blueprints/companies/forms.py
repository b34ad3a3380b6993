from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField, IntegerField, SelectField, StringField, URLField
from wtforms.validators import DataRequired, Email, Length, NumberRange, Optional

from crm.blueprints.contacts.forms import PHONE
from crm.form_helpers import STRIP, choices, web_address_validators
from crm.labels import STAGE_LABELS


class CompanyQuickAddForm(FlaskForm):
    name = StringField(_l("Company name"), validators=[DataRequired(), Length(max=200)])
    website = URLField(_l("Website"), validators=web_address_validators())


class CompanyForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])
    stage = SelectField(_l("Stage"), choices=choices(STAGE_LABELS.items()))
    industry = StringField(_l("Industry"), validators=[Length(max=120)])
    employees = IntegerField(
        _l("Employees"), validators=[Optional(), NumberRange(min=0, max=10_000_000)]
    )
    website = URLField(_l("Website"), validators=web_address_validators())
    linkedin_url = URLField(_l("LinkedIn"), validators=web_address_validators())
    email = EmailField(
        _l("Email"), filters=STRIP, validators=[Optional(), Email(), Length(max=254)]
    )
    phone = StringField(_l("Phone"), validators=[Optional(), PHONE])
    street = StringField(_l("Street"), validators=[Length(max=200)])
    postcode = StringField(_l("Postcode"), validators=[Length(max=20)])
    city = StringField(_l("City"), validators=[Length(max=120)])
    country = StringField(_l("Country"), validators=[Length(max=80)])
