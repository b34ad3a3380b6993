from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, SelectField
from wtforms.validators import InputRequired

from crm.form_helpers import choices
from crm.i18n import timezone_choices


class SettingsForm(FlaskForm):
    locale = SelectField(
        _l("Language"),
        choices=choices([("", _l("As my browser")), ("en", "English"), ("fr", "Français")]),
        validate_choice=True,
    )
    timezone = SelectField(_l("Time zone"), validators=[InputRequired()])
    email_reminders = BooleanField(_l("Also send me my reminders by email"))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.timezone.choices = choices((tz, tz.replace("_", " ")) for tz in timezone_choices())
