"""The event form: times in the viewer's local wall clock, people, link, recurrence."""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    HiddenField,
    IntegerField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
    TimeField,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from crm.form_helpers import STRIP, choices
from crm.models.agenda import EVENT_KINDS
from crm.services.recurrence import WEEKDAYS

KIND_LABELS = {
    "meeting": _l("Meeting"),
    "call": _l("Call"),
    "visit": _l("Visit"),
    "task": _l("Task"),
}
WEEKDAY_LABELS = {
    "MO": _l("Mon"),
    "TU": _l("Tue"),
    "WE": _l("Wed"),
    "TH": _l("Thu"),
    "FR": _l("Fri"),
    "SA": _l("Sat"),
    "SU": _l("Sun"),
}
REPEAT_LABELS = {
    "": _l("Does not repeat"),
    "DAILY": _l("Daily"),
    "WEEKLY": _l("Weekly"),
    "MONTHLY": _l("Monthly"),
}
REMINDER_CHOICES = [
    ("", _l("Default")),
    ("none", _l("No reminder")),
    ("0", _l("At the start")),
    ("5", _l("5 minutes before")),
    ("10", _l("10 minutes before")),
    ("15", _l("15 minutes before")),
    ("30", _l("30 minutes before")),
    ("60", _l("1 hour before")),
    ("120", _l("2 hours before")),
    ("1440", _l("1 day before")),
]


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class EventForm(FlaskForm):
    title = StringField(_l("Title"), filters=STRIP, validators=[DataRequired(), Length(max=200)])
    kind = SelectField(
        _l("Kind"), choices=choices((k, KIND_LABELS[k]) for k in EVENT_KINDS), default="meeting"
    )
    start_date = DateField(_l("Date"), validators=[DataRequired()])
    start_time = TimeField(_l("From"), validators=[Optional()])
    end_time = TimeField(_l("To"), validators=[Optional()])
    end_date = DateField(_l("Ends on (another day)"), validators=[Optional()])
    all_day = BooleanField(_l("All day"))
    location = StringField(_l("Location"), filters=STRIP, validators=[Length(max=300)])
    description = TextAreaField(_l("Description"), validators=[Length(max=20000)])
    private = BooleanField(_l("Private: others see only that I am busy"))
    organizer = SelectField(_l("Organizer"), coerce=str, validate_choice=True)
    users = MultiCheckboxField(_l("Colleagues"), coerce=int, validate_choice=True)
    # Contacts invited: ids of the chosen chips (checked checkboxes), checked on the server.
    contacts = SelectMultipleField(_l("Contacts"), coerce=int, validate_choice=False)
    linked_contact = StringField(_l("Linked contact"), validators=[Length(max=300)])
    linked_company = StringField(_l("Linked company"), validators=[Length(max=300)])
    linked_deal = StringField(_l("Linked deal"), validators=[Length(max=300)])
    linked_incident = StringField(_l("Linked incident"), validators=[Length(max=300)])
    # "1" when planned from the incident's page: the incident is shown, not picked.
    incident_fixed = HiddenField()
    repeat = SelectField(
        _l("Repeat"), choices=choices(REPEAT_LABELS.items()), default="", validate_choice=True
    )
    interval = IntegerField(
        _l("Every"), default=1, validators=[Optional(), NumberRange(min=1, max=99)]
    )
    weekdays = MultiCheckboxField(
        _l("On"), choices=choices(WEEKDAY_LABELS.items()), validate_choice=True
    )
    ends = RadioField(
        _l("Ends"),
        choices=choices(
            [("never", _l("Never")), ("until", _l("On a date")), ("count", _l("After"))]
        ),
        default="never",
    )
    until = DateField(_l("End date"), validators=[Optional()])
    count = IntegerField(_l("Times"), validators=[Optional(), NumberRange(min=1, max=500)])
    reminder = SelectField(
        _l("Reminder"), choices=choices(REMINDER_CHOICES), default="", validate_choice=True
    )
    scope = RadioField(
        _l("Change"),
        choices=choices([("this", _l("This occurrence")), ("series", _l("The whole series"))]),
        default="this",
    )
    confirm_conflicts = HiddenField()

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        if not self.all_day.data and self.start_date.data:
            if self.start_time.data is None:
                self.start_time.errors.append(_l("Give a start time, or tick All day."))
                valid = False
            if self.end_time.data is None:
                self.end_time.errors.append(_l("Give an end time."))
                valid = False
        if self.repeat.data and self.ends.data == "until" and not self.until.data:
            self.until.errors.append(_l("Give the date of the last time."))
            valid = False
        if self.repeat.data and self.ends.data == "count" and not self.count.data:
            self.count.errors.append(_l("Give how many times."))
            valid = False
        if self.repeat.data == "WEEKLY":
            unknown = set(self.weekdays.data or ()) - set(WEEKDAYS)
            if unknown:
                self.weekdays.errors.append(_l("Unknown day."))
                valid = False
        return valid


class ReportForm(FlaskForm):
    report = TextAreaField(_l("Meeting report"), validators=[DataRequired(), Length(max=20000)])


class MoveForm(FlaskForm):
    """A drag: new local start and end (time grid), or a new day keeping the time (month)."""

    start = StringField(validators=[Optional(), Length(max=20)])
    end = StringField(validators=[Optional(), Length(max=20)])
    day = DateField(validators=[Optional()])
