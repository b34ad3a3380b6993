from flask_babel import lazy_gettext as _l
from flask_babel import lazy_pgettext
from flask_wtf import FlaskForm
from wtforms import SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional, Regexp

from crm.form_helpers import STRIP, choices
from crm.labels import CHANNEL_LABELS, INCIDENT_KIND_LABELS, INCIDENT_STATUS_LABELS, PRIORITY_LABELS
from crm.services.canned_responses import USAGES

CUSTOMER = Regexp(r"^(contact|company):\d+$", message=_l("Pick a contact or a company."))
ROUND_ROBIN = "round_robin"


class IncidentForm(FlaskForm):
    """Every field of an incident; the quick-add shows the first four, the others keep
    their defaults."""

    subject = StringField(
        _l("Subject"),
        filters=STRIP,
        validators=[DataRequired(message=_l("Say what it is about.")), Length(max=200)],
    )
    customer = StringField(
        _l("Customer"),
        validators=[DataRequired(message=_l("Pick a contact or a company.")), CUSTOMER],
    )
    customer_q = StringField(_l("Customer"), filters=STRIP, validators=[Length(max=100)])
    kind = SelectField(
        _l("Kind"), choices=choices(INCIDENT_KIND_LABELS.items()), default="technical"
    )
    priority = SelectField(
        _l("Priority"), choices=choices(PRIORITY_LABELS.items()), default="normal"
    )
    status = SelectField(
        _l("Status"), choices=choices(INCIDENT_STATUS_LABELS.items()), default="new"
    )
    channel = SelectField(_l("Channel"), choices=choices(CHANNEL_LABELS.items()), default="phone")
    description = TextAreaField(_l("Description"), validators=[Optional(), Length(max=20000)])
    assignee = SelectField(
        lazy_pgettext("incident", "Assignee"), default="", validators=[Optional()]
    )
    team = SelectField(_l("Team"), default="", validators=[Optional()])
    product = SelectField(_l("Product"), default="", validators=[Optional()])

    def set_choices(self, agents, teams, products, me) -> None:
        people = [(str(u.id), u.name) for u in agents]
        self.assignee.choices = choices(
            [("", _l("Nobody yet")), (ROUND_ROBIN, _l("Round robin")), (str(me.id), _l("Me"))]
            + [p for p in people if p[0] != str(me.id)]
        )
        self.team.choices = choices([("", _l("No team"))] + [(str(t.id), t.name) for t in teams])
        self.product.choices = choices(
            [("", _l("No product"))] + [(str(p.id), str(p)) for p in products]
        )


class MessageForm(FlaskForm):
    body = TextAreaField(
        _l("Message"),
        validators=[DataRequired(message=_l("Write the message first.")), Length(max=20000)],
    )


class TemplateForm(FlaskForm):
    name = StringField(_l("Name"), filters=STRIP, validators=[DataRequired(), Length(max=120)])
    usage = SelectField(
        _l("Offered to"),
        choices=choices(
            zip(USAGES, (_l("Support (canned response)"), _l("Sales"), _l("Everyone")), strict=True)
        ),
        default="support",
    )
    subject = StringField(_l("Subject"), filters=STRIP, validators=[Length(max=300)])
    body = TextAreaField(
        _l("Text"), validators=[DataRequired(message=_l("Write the text.")), Length(max=20000)]
    )
