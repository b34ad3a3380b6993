from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField, SelectField, StringField
from wtforms.validators import DataRequired, Email, Length

from crm.form_helpers import STRIP, choices
from crm.labels import ROLE_LABELS


class InviteForm(FlaskForm):
    name = StringField(_l("Full name"), validators=[DataRequired(), Length(max=120)])
    email = EmailField(
        _l("Email"), filters=STRIP, validators=[DataRequired(), Email(), Length(max=254)]
    )
    role = SelectField(_l("Role"), choices=choices(ROLE_LABELS.items()), default="sales")
    team = SelectField(_l("Team"), coerce=str)


class SkillsForm(FlaskForm):
    """A technician's skills, comma-separated: what the dispatch board matches against."""

    skills = StringField(_l("Skills"), filters=STRIP, validators=[Length(max=1000)])


class RoleForm(FlaskForm):
    role = SelectField(_l("Role"), choices=choices(ROLE_LABELS.items()))
