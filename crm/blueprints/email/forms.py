"""The composer: From, To, Cc, a template, subject and text, attachments, tracking, privacy."""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from crm.form_helpers import STRIP, choices
from crm.models.mail import PRIVACY_LEVELS

PRIVACY_LABELS = {
    "private": _l("Private: only me"),
    "team": _l("My team"),
    "public": _l("Everyone who sees the record"),
}
assert set(PRIVACY_LABELS) == set(PRIVACY_LEVELS)


class ComposeForm(FlaskForm):
    record = HiddenField()
    mailbox = SelectField(_l("From"), validate_choice=False)
    to = StringField(
        _l("To"),
        filters=STRIP,
        validators=[DataRequired(message=_l("Say whom to send it to.")), Length(max=5000)],
    )
    cc = StringField(_l("Cc"), filters=STRIP, validators=[Optional(), Length(max=5000)])
    template = SelectField(_l("Template"), validate_choice=False)
    subject = StringField(
        _l("Subject"),
        filters=STRIP,
        validators=[DataRequired(message=_l("Give the email a subject.")), Length(max=300)],
    )
    body = TextAreaField(
        _l("Message"),
        validators=[DataRequired(message=_l("Write the message.")), Length(max=100_000)],
    )
    track_opens = BooleanField(_l("Track opens"))
    privacy = SelectField(_l("Who can read it"), choices=choices(PRIVACY_LABELS.items()))


class PrivacyForm(FlaskForm):
    privacy = SelectField(_l("Who can read it"), choices=choices(PRIVACY_LABELS.items()))


DELIVERY_LABELS = {
    "received": _l("received"),
    "draft": _l("draft"),
    "queued": _l("waiting to be sent"),
    "sending": _l("sending"),
    "sent": _l("sent"),
    "failed": _l("not sent"),
}
