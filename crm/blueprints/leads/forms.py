"""Forms of the leads area: the public web form, web form settings, scoring and routing rules."""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    EmailField,
    HiddenField,
    IntegerField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Email, InputRequired, Length, NumberRange, Optional

from crm.form_helpers import STRIP, choices, web_address_validators
from crm.models.leads import LEAD_SOURCES
from crm.services import lead_scoring

SOURCE_LABELS = {
    "manual": _l("Entered by hand"),
    "web_form": _l("Web form"),
    "email": _l("Email"),
    "import": _l("Import"),
    "campaign": _l("Campaign"),
    "referral": _l("Referral"),
}
OPERATOR_LABELS = {
    "eq": _l("is"),
    "ne": _l("is not"),
    "gt": _l("is more than"),
    "lt": _l("is less than"),
    "contains": _l("contains"),
    "set": _l("is filled in"),
}
ACTIVITY_LABELS = {
    "email_opened": _l("Opened one of our emails"),
    "campaign_email_opened": _l("Opened a campaign email"),
    "web_form": _l("Sent a web form"),
    "call": _l("Call"),
    "meeting": _l("Meeting"),
    "visit": _l("Visit"),
    "note": _l("Note"),
    "email": _l("Email exchanged"),
}
FIELD_LABELS = {
    "title": _l("Job title"),
    "email": _l("Email"),
    "phone": _l("Phone"),
    "city": _l("City"),
    "postcode": _l("Postcode"),
    "country": _l("Country"),
    "source": _l("Source"),
    "stage": _l("Stage"),
    "linkedin_url": _l("LinkedIn"),
    "twitter_url": _l("X / Twitter"),
    "company.employees": _l("Company: employees"),
    "company.industry": _l("Company: industry"),
    "company.country": _l("Company: country"),
    "company.city": _l("Company: city"),
    "company.postcode": _l("Company: postcode"),
    "company.website": _l("Company: website"),
}
POINTS = [InputRequired(), NumberRange(-1000, 1000)]
DAYS = [InputRequired(), NumberRange(1, 3650)]


# ---- the public web form ---------------------------------------------------------------------


class PublicLeadForm(FlaskForm):
    """What a visitor sends. No CSRF token: it is posted from other sites (see the route)."""

    class Meta:
        csrf = False

    name = StringField(_l("Name"), filters=STRIP, validators=[Optional(), Length(max=200)])
    email = EmailField(
        _l("Email"), filters=STRIP, validators=[Optional(), Email(), Length(max=254)]
    )
    phone = StringField(_l("Phone"), filters=STRIP, validators=[Optional(), Length(max=40)])
    company = StringField(_l("Company"), filters=STRIP, validators=[Optional(), Length(max=200)])
    message = TextAreaField(_l("Message"), validators=[Optional(), Length(max=5000)])

    def validate(self, extra_validators=None) -> bool:
        ok = super().validate(extra_validators)
        if not (self.email.data or "").strip() and not (self.phone.data or "").strip():
            self.email.errors.append(_l("Give an email or a phone number."))
            ok = False
        return ok

    def split_name(self) -> tuple[str, str]:
        """ "Marie Curie" -> ("Marie", "Curie"); a single word is the last name."""
        parts = (self.name.data or "").split()
        if len(parts) < 2:
            return "", " ".join(parts)
        return " ".join(parts[:-1]), parts[-1]


# ---- web form settings ----------------------------------------------------------------------


class LeadFormSettings(FlaskForm):
    name = StringField(_l("Name"), filters=STRIP, validators=[DataRequired(), Length(max=120)])
    source = SelectField(
        _l("Source of its leads"),
        choices=choices((s, SOURCE_LABELS[s]) for s in LEAD_SOURCES),
        default="web_form",
    )
    redirect_url = StringField(
        _l("After sending, go to (optional)"),
        filters=STRIP,
        validators=web_address_validators(500),
        description=_l("A page of your website; our thank-you page when empty."),
    )
    active = BooleanField(_l("Accepting submissions"), default=True)


# ---- scoring rules ----------------------------------------------------------------------------


class ScoringRuleBase(FlaskForm):
    name = StringField(_l("Name"), filters=STRIP, validators=[DataRequired(), Length(max=120)])
    points = IntegerField(_l("Points"), validators=POINTS)
    active = BooleanField(_l("Active"), default=True)


class FieldRuleForm(ScoringRuleBase):
    kind = "field"
    field = SelectField(_l("Field"), validators=[DataRequired()])
    op = SelectField(_l("Condition"), choices=choices(OPERATOR_LABELS.items()), default="eq")
    value = StringField(_l("Value"), filters=STRIP, validators=[Length(max=200)])

    def validate(self, extra_validators=None) -> bool:
        ok = super().validate(extra_validators)
        if self.op.data != "set" and not (self.value.data or "").strip():
            self.value.errors.append(_l("Give the value to compare with."))
            ok = False
        return ok

    def condition(self) -> dict:
        value = None if self.op.data == "set" else self.value.data
        return {"type": "field", "field": self.field.data, "op": self.op.data, "value": value}

    def load(self, condition: dict) -> None:
        self.field.data = condition.get("field")
        self.op.data = condition.get("op")
        value = condition.get("value")
        self.value.data = "" if value is None else str(value)


class ActivityRuleForm(ScoringRuleBase):
    kind = "activity"
    activity = SelectField(
        _l("Activity"),
        choices=choices((k, ACTIVITY_LABELS[k]) for k in lead_scoring.ACTIVITY_KINDS),
    )
    within_days = IntegerField(_l("Within (days)"), validators=DAYS, default=30)
    count = SelectField(
        _l("Points"),
        choices=choices([("once", _l("once")), ("each", _l("for each time (at most 10)"))]),
        default="once",
    )

    def condition(self) -> dict:
        return {
            "type": "activity",
            "kind": self.activity.data,
            "within_days": self.within_days.data,
            "count": self.count.data,
        }

    def load(self, condition: dict) -> None:
        self.activity.data = condition.get("kind")
        self.within_days.data = condition.get("within_days")
        self.count.data = condition.get("count") or "once"


class InactiveRuleForm(ScoringRuleBase):
    kind = "inactive"
    days = IntegerField(_l("No activity for (days)"), validators=DAYS, default=30)

    def condition(self) -> dict:
        return {"type": "inactive", "days": self.days.data}

    def load(self, condition: dict) -> None:
        self.days.data = condition.get("days")


RULE_FORMS = {"field": FieldRuleForm, "activity": ActivityRuleForm, "inactive": InactiveRuleForm}


# ---- routing rules ----------------------------------------------------------------------------


def _codes(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").replace(";", ",").split(",") if part.strip()]


class RoutingRuleForm(FlaskForm):
    name = StringField(_l("Name"), filters=STRIP, validators=[DataRequired(), Length(max=120)])
    countries = StringField(
        _l("Countries"),
        filters=STRIP,
        validators=[Length(max=300)],
        description=_l("Country codes or names, separated by commas: FR, BE, Suisse"),
    )
    regions = SelectMultipleField(_l("French regions"), validators=[Optional()])
    postcode_prefixes = StringField(
        _l("Postcodes starting with"),
        filters=STRIP,
        validators=[Length(max=300)],
        description=_l("Separated by commas: 69, 38, 01"),
    )
    min_employees = IntegerField(
        _l("At least (employees)"), validators=[Optional(), NumberRange(0, 10_000_000)]
    )
    max_employees = IntegerField(
        _l("At most (employees)"), validators=[Optional(), NumberRange(0, 10_000_000)]
    )
    min_score = IntegerField(
        _l("Score at least"), validators=[Optional(), NumberRange(-100_000, 100_000)]
    )
    owner = SelectField(_l("Give to"), validators=[Optional()])
    team = SelectField(_l("Or take turns in the team"), validators=[Optional()])
    active = BooleanField(_l("Active"), default=True)

    def validate(self, extra_validators=None) -> bool:
        from crm.services.lead_routing import country_code

        ok = super().validate(extra_validators)
        if not self.owner.data and not self.team.data:
            self.owner.errors.append(_l("Choose a person or a team."))
            ok = False
        unknown = [c for c in _codes(self.countries.data) if country_code(c) is None]
        if unknown:
            self.countries.errors.append(
                _l("Unknown country: %(names)s", names=", ".join(unknown)[:100])
            )
            ok = False
        prefixes = _codes(self.postcode_prefixes.data)
        if any(len(p) > 10 for p in prefixes):
            self.postcode_prefixes.errors.append(_l("A postcode prefix is at most 10 characters."))
            ok = False
        low, high = self.min_employees.data, self.max_employees.data
        if low is not None and high is not None and low > high:
            self.max_employees.errors.append(_l("The maximum is below the minimum."))
            ok = False
        return ok

    def conditions(self) -> dict:
        from crm.services.lead_routing import country_code

        conditions = {
            "countries": sorted({country_code(c) for c in _codes(self.countries.data)}),
            "regions": sorted(self.regions.data or []),
            "postcode_prefixes": [p.replace(" ", "") for p in _codes(self.postcode_prefixes.data)],
            "min_employees": self.min_employees.data,
            "max_employees": self.max_employees.data,
            "min_score": self.min_score.data,
        }
        return {key: value for key, value in conditions.items() if value not in (None, [])}

    def load(self, rule) -> None:
        c = rule.conditions or {}
        self.name.data, self.active.data = rule.name, rule.active
        self.countries.data = ", ".join(c.get("countries") or [])
        self.regions.data = list(c.get("regions") or [])
        self.postcode_prefixes.data = ", ".join(c.get("postcode_prefixes") or [])
        self.min_employees.data = c.get("min_employees")
        self.max_employees.data = c.get("max_employees")
        self.min_score.data = c.get("min_score")
        self.owner.data = str(rule.owner_id) if rule.owner_id else ""
        self.team.data = str(rule.team_id) if rule.team_id else ""


class DryRunForm(FlaskForm):
    country = StringField(_l("Country"), filters=STRIP, validators=[Length(max=80)])
    postcode = StringField(_l("Postcode"), filters=STRIP, validators=[Length(max=20)])
    employees = IntegerField(_l("Employees"), validators=[Optional(), NumberRange(0, 10_000_000)])
    score = IntegerField(_l("Score"), validators=[Optional(), NumberRange(-100_000, 100_000)])


class MoveForm(FlaskForm):
    direction = HiddenField(validators=[DataRequired()])
