"""Forms of the support settings: service levels, business hours, holidays, agents."""

from datetime import time

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateField, Form, FormField, IntegerField, SelectField, StringField, TimeField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from crm.form_helpers import STRIP, choices
from crm.i18n import timezone_choices
from crm.models.support import PRIORITIES

MIDNIGHT = time(0, 0)


class DurationMixin:
    @staticmethod
    def minutes(hours_field, minutes_field) -> int:
        return (hours_field.data or 0) * 60 + (minutes_field.data or 0)


class PolicyRowForm(Form, DurationMixin):
    """One priority: first response and resolution as hours + minutes of business time."""

    first_hours = IntegerField(_l("Hours"), validators=[InputRequired(), NumberRange(0, 2000)])
    first_minutes = IntegerField(_l("Minutes"), validators=[InputRequired(), NumberRange(0, 59)])
    resolution_hours = IntegerField(_l("Hours"), validators=[InputRequired(), NumberRange(0, 2000)])
    resolution_minutes = IntegerField(
        _l("Minutes"), validators=[InputRequired(), NumberRange(0, 59)]
    )
    warning = IntegerField(
        _l("Warn before (min)"), validators=[InputRequired(), NumberRange(1, 24 * 60)]
    )

    def validate(self, extra_validators=None) -> bool:
        if not super().validate(extra_validators):
            return False
        first = self.minutes(self.first_hours, self.first_minutes)
        resolution = self.minutes(self.resolution_hours, self.resolution_minutes)
        ok = True
        if first <= 0:
            self.first_minutes.errors.append(_l("Give a time longer than zero."))
            ok = False
        if resolution <= 0:
            self.resolution_minutes.errors.append(_l("Give a time longer than zero."))
            ok = False
        elif resolution < first:
            self.resolution_hours.errors.append(
                _l("The resolution cannot be due before the first response.")
            )
            ok = False
        if ok and self.warning.data >= first:
            self.warning.errors.append(_l("Warn before the first response is due, not after."))
            ok = False
        return ok


def _policy_form():
    attrs = {priority: FormField(PolicyRowForm) for priority in PRIORITIES}
    return type("PolicyForm", (FlaskForm,), attrs)


PolicyForm = _policy_form()


class DayForm(Form):
    """Up to two spans of one weekday (a lunch break between them). 00:00 as a
    closing time means midnight."""

    opens1 = TimeField(_l("Opens"), validators=[Optional()])
    closes1 = TimeField(_l("Closes"), validators=[Optional()])
    opens2 = TimeField(_l("Opens again"), validators=[Optional()])
    closes2 = TimeField(_l("Closes"), validators=[Optional()])

    def spans(self) -> list[tuple[time, time]]:
        pairs = [(self.opens1.data, self.closes1.data), (self.opens2.data, self.closes2.data)]
        return [(o, c) for o, c in pairs if o is not None and c is not None]

    def validate(self, extra_validators=None) -> bool:
        if not super().validate(extra_validators):
            return False
        ok = True
        pairs = [(self.opens1, self.closes1), (self.opens2, self.closes2)]
        for opens, closes in pairs:
            if (opens.data is None) != (closes.data is None):
                (closes if closes.data is None else opens).errors.append(
                    _l("Give both the opening and the closing time.")
                )
                ok = False
            elif opens.data is not None and closes.data != MIDNIGHT and closes.data <= opens.data:
                closes.errors.append(_l("Closes after it opens."))
                ok = False
        if ok and self.opens1.data is None and self.opens2.data is not None:
            self.opens1.errors.append(_l("Fill the first span first."))
            ok = False
        if ok and self.opens2.data is not None:
            first_close = self.closes1.data
            if first_close == MIDNIGHT or self.opens2.data < first_close:
                self.opens2.errors.append(_l("The second span starts after the first one ends."))
                ok = False
        return ok


def _hours_form():
    attrs = {f"day{weekday}": FormField(DayForm) for weekday in range(7)}
    attrs["timezone"] = SelectField(_l("Time zone"), validators=[DataRequired()])
    return type("HoursForm", (FlaskForm,), attrs)


_HoursBase = _hours_form()


class HoursForm(_HoursBase):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.timezone.choices = choices((tz, tz) for tz in timezone_choices())

    def days(self):
        return [getattr(self, f"day{weekday}") for weekday in range(7)]

    def validate(self, extra_validators=None) -> bool:
        if not super().validate(extra_validators):
            return False
        if not any(day.form.spans() for day in self.days()):
            self.form_errors.append(_l("Support must work at least one span in the week."))
            return False
        return True


class HolidayForm(FlaskForm):
    day = DateField(_l("Day"), validators=[InputRequired()])
    name = StringField(_l("Name"), filters=STRIP, validators=[DataRequired(), Length(max=120)])


class FrenchHolidaysForm(FlaskForm):
    year = IntegerField(_l("Year"), validators=[InputRequired(), NumberRange(2000, 2100)])


class AvailabilityForm(FlaskForm):
    away_until = DateField(_l("Away until"), validators=[Optional()])
    max_open_incidents = IntegerField(
        _l("Load limit"), validators=[Optional(), NumberRange(1, 1000)]
    )
