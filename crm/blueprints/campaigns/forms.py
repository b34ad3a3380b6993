"""Forms of segments and campaigns (a segment's conditions are read by crm.services.segments)."""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional, Regexp

from crm.form_helpers import STRIP, MoneyField, choices
from crm.services.campaigns import MAX_RATE

REPLY_LABELS = {
    "contact_owner": _l("The contact's owner (else the campaign's)"),
    "campaign_owner": _l("The campaign's owner"),
}


class SegmentForm(FlaskForm):
    name = StringField(
        _l("Name"),
        filters=STRIP,
        validators=[DataRequired(_l("Name the segment.")), Length(max=120)],
    )
    shared = BooleanField(_l("Shared with everyone"), default=True)


class CampaignForm(FlaskForm):
    name = StringField(
        _l("Name"),
        filters=STRIP,
        validators=[DataRequired(_l("Name the campaign.")), Length(max=160)],
    )
    segment = SelectField(_l("Segment"), validators=[DataRequired(_l("Choose a segment."))])
    template = SelectField(_l("Template"), validators=[Optional()])
    mailbox = SelectField(_l("Sent from"), validators=[Optional()])
    subject = StringField(_l("Subject"), filters=STRIP, validators=[Optional(), Length(max=300)])
    body = TextAreaField(_l("Text"), validators=[Optional(), Length(max=50_000)])
    rate_per_minute = IntegerField(
        _l("Emails per minute"),
        default=30,
        validators=[
            InputRequired(_l("Enter a number.")),
            NumberRange(1, MAX_RATE, _l("Between %(min)s and %(max)s.")),
        ],
    )
    track_opens = BooleanField(_l("Track opens"), default=True)
    replies_to = SelectField(
        _l("Replies go to"), choices=choices(REPLY_LABELS.items()), default="contact_owner"
    )
    cost = MoneyField(_l("Cost"))
    currency = StringField(
        _l("Currency"),
        default="EUR",
        filters=[lambda v: (v or "").strip().upper()],
        validators=[
            DataRequired(),
            Regexp(r"^[A-Z]{3}$", message=_l("Three letters, such as EUR.")),
        ],
    )


class AttributionForm(FlaskForm):
    campaign = SelectField(_l("Campaign"), validators=[Optional()])
    version = IntegerField(validators=[Optional()])
