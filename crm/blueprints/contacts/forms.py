from functools import cache

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    EmailField,
    HiddenField,
    RadioField,
    SelectField,
    StringField,
    TextAreaField,
    URLField,
)
from wtforms.validators import DataRequired, Email, Length, Optional, Regexp

from crm.form_helpers import STRIP, choices, web_address_validators
from crm.labels import CALL_OUTCOME_LABELS

PHONE = Regexp(r"^[0-9+().\s/-]{4,40}$", message=_l("Digits, spaces and + ( ) - . / only."))


class QuickAddForm(FlaskForm):
    """Name plus an email or a phone number is enough to start."""

    first_name = StringField(_l("First name"), validators=[Length(max=100)])
    last_name = StringField(_l("Last name"), validators=[Length(max=100)])
    email = EmailField(
        _l("Email"), filters=STRIP, validators=[Optional(), Email(), Length(max=254)]
    )
    phone = StringField(_l("Phone"), validators=[Optional(), PHONE])
    company = StringField(_l("Company"), validators=[Length(max=200)])
    confirm_duplicate = HiddenField()

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        if not (self.first_name.data or "").strip() and not (self.last_name.data or "").strip():
            self.last_name.errors.append(_l("Give a first or a last name."))
            valid = False
        if not (self.email.data or "").strip() and not (self.phone.data or "").strip():
            self.email.errors.append(_l("Give an email or a phone number."))
            valid = False
        return valid


class ActivityForm(FlaskForm):
    kind = RadioField(choices=choices([("call", _l("Call")), ("note", _l("Note"))]), default="call")
    outcome = SelectField(
        _l("Outcome"), choices=choices(CALL_OUTCOME_LABELS.items()), validators=[Optional()]
    )
    body = TextAreaField(_l("What was said"), validators=[Length(max=20000)])

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        if self.kind.data == "note" and not (self.body.data or "").strip():
            self.body.errors.append(_l("Write the note first."))
            valid = False
        return valid


# Fields editable in place on the contact page: label and how to validate the value.
CONTACT_FIELDS = {
    "first_name": (_l("First name"), lambda: StringField(validators=[Length(max=100)])),
    "last_name": (_l("Last name"), lambda: StringField(validators=[Length(max=100)])),
    "title": (_l("Job title"), lambda: StringField(validators=[Length(max=120)])),
    "email": (
        _l("Email"),
        lambda: EmailField(filters=STRIP, validators=[Optional(), Email(), Length(max=254)]),
    ),
    "phone": (_l("Phone"), lambda: StringField(validators=[Optional(), PHONE])),
    "company": (_l("Company"), lambda: StringField(validators=[Length(max=200)])),
    "owner": (_l("Owner"), lambda: SelectField(coerce=str, validate_choice=True)),
    "tags": (_l("Tags"), lambda: StringField(validators=[Length(max=500)])),
    "source": (_l("Source"), lambda: StringField(validators=[Length(max=60)])),
    "street": (_l("Street"), lambda: StringField(validators=[Length(max=200)])),
    "postcode": (_l("Postcode"), lambda: StringField(validators=[Length(max=20)])),
    "city": (_l("City"), lambda: StringField(validators=[Length(max=120)])),
    "country": (_l("Country"), lambda: StringField(validators=[Length(max=80)])),
    "linkedin_url": (
        _l("LinkedIn"),
        lambda: URLField(validators=web_address_validators()),
    ),
    "twitter_url": (
        _l("X / Twitter"),
        lambda: URLField(validators=web_address_validators()),
    ),
}


@cache
def field_form_class(name: str) -> type[FlaskForm]:
    """A one-field form for the inline editor of `name`."""
    _label, make_field = CONTACT_FIELDS[name]
    return type(f"{name.title()}FieldForm", (FlaskForm,), {"value": make_field()})


class StageForm(FlaskForm):
    stage = StringField(validators=[DataRequired()])
