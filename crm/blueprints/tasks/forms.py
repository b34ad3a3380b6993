"""Task forms: one form for quick-add, the inline editor and the follow-up proposal."""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateField, HiddenField, SelectField, StringField, TextAreaField, TimeField
from wtforms.validators import DataRequired, Length, Optional, Regexp

from crm.form_helpers import STRIP, choices

REMINDER_CHOICES = (
    ("", _l("Default (15 min)")),
    ("0", _l("At due time")),
    ("30", _l("30 min before")),
    ("60", _l("1 hour before")),
    ("1440", _l("1 day before")),
)
# "contact:12", "company:3", "deal:7", or nothing.
LINK = Regexp(r"^((contact|company|deal):\d+)?$", message=_l("Choose a record from the list."))


class TaskForm(FlaskForm):
    title = StringField(_l("Task"), filters=STRIP, validators=[DataRequired(), Length(max=200)])
    due_date = DateField(_l("Due"), validators=[Optional()])
    due_time = TimeField(_l("Time"), validators=[Optional()])
    assignee = SelectField(_l("Assignee"), coerce=str, validate_choice=True)
    link = StringField(_l("Linked to"), validators=[Optional(), LINK])
    link_q = StringField(_l("Linked to"), filters=STRIP, validators=[Length(max=100)])
    notes = TextAreaField(_l("Notes"), validators=[Length(max=5000)])
    reminder = SelectField(
        _l("Reminder"), choices=choices(REMINDER_CHOICES), validators=[Optional()]
    )
    source_activity = HiddenField(validators=[Optional(), Regexp(r"^\d*$")])
    # Where the form lives, so the answer fits there: "list", "home", "contact:12", "followup:12"...
    context = HiddenField(validators=[Optional(), Regexp(r"^[a-z]+(:\d+)?$")])

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        if self.due_time.data is not None and self.due_date.data is None:
            self.due_date.errors.append(_l("Give a day for this time."))
            valid = False
        return valid

    @property
    def reminder_minutes(self) -> int | None:
        value = self.reminder.data
        return int(value) if value else None
