import ipaddress
import re

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField, IntegerField, PasswordField, SelectField, StringField
from wtforms.validators import (
    DataRequired,
    Email,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    ValidationError,
)

from crm.form_helpers import STRIP, choices

HOST_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$", re.IGNORECASE)


def valid_host(_form, field) -> None:
    """A DNS name (mail.example.com) or an IP address; no scheme, port or path."""
    host = (field.data or "").strip()
    if not host:
        return
    try:
        ipaddress.ip_address(host.strip("[]"))
        return
    except ValueError:
        pass
    labels = host.rstrip(".").split(".")
    if len(host) > 253 or not all(HOST_LABEL.match(label) for label in labels):
        raise ValidationError(
            _l("Enter a server name such as imap.example.com, without :// or a port.")
        )


def security_choices():
    return choices(
        [
            ("ssl", _l("SSL/TLS")),
            ("starttls", _l("STARTTLS")),
            ("none", _l("None (local test servers only)")),
        ]
    )


PORT = [
    InputRequired(message=_l("Enter a port.")),
    NumberRange(min=1, max=65535, message=_l("A port is a number from 1 to 65535.")),
]


class MailboxForm(FlaskForm):
    """A user's own mailbox: the address and both servers. Passwords are never shown back:
    left empty on an edit, the stored one is kept."""

    name = StringField(
        _l("Name"),
        filters=STRIP,
        validators=[DataRequired(message=_l("Give the mailbox a name.")), Length(max=120)],
    )
    address = EmailField(
        _l("Email address"),
        filters=STRIP,
        validators=[
            DataRequired(message=_l("Enter the mailbox's address.")),
            Email(message=_l("Enter an address such as support@example.com.")),
            Length(max=254),
        ],
    )
    imap_host = StringField(
        _l("IMAP server"), filters=STRIP, validators=[Optional(), Length(max=255), valid_host]
    )
    imap_port = IntegerField(_l("IMAP port"), default=993, validators=PORT)
    imap_security = SelectField(_l("IMAP security"), choices=security_choices(), default="ssl")
    imap_username = StringField(
        _l("IMAP user name"), filters=STRIP, validators=[Optional(), Length(max=254)]
    )
    imap_password = PasswordField(_l("IMAP password"), validators=[Optional(), Length(max=500)])
    imap_folder = StringField(
        _l("Folder"), filters=STRIP, default="INBOX", validators=[Optional(), Length(max=200)]
    )
    smtp_host = StringField(
        _l("SMTP server"), filters=STRIP, validators=[Optional(), Length(max=255), valid_host]
    )
    smtp_port = IntegerField(_l("SMTP port"), default=465, validators=PORT)
    smtp_security = SelectField(_l("SMTP security"), choices=security_choices(), default="ssl")
    smtp_username = StringField(
        _l("SMTP user name"), filters=STRIP, validators=[Optional(), Length(max=254)]
    )
    smtp_password = PasswordField(_l("SMTP password"), validators=[Optional(), Length(max=500)])

    def validate_settings(self, stored=None, for_check: bool = False) -> bool:
        """Field validation, then what needs several fields: a server at least, and a
        password where a login will need one (`stored`: the mailbox being edited)."""
        ok = self.validate()
        if not (self.imap_host.data or self.smtp_host.data):
            self.imap_host.errors = [
                *self.imap_host.errors,
                _l("Give an IMAP server (to read mail), an SMTP server (to send), or both."),
            ]
            ok = False
        if for_check:
            return ok
        if self.imap_host.data and not (self.imap_password.data or _has(stored, "imap_password")):
            self.imap_password.errors = [*self.imap_password.errors, _l("Enter the password.")]
            ok = False
        if self.smtp_username.data and not (
            self.smtp_password.data or _has(stored, "smtp_password")
        ):
            self.smtp_password.errors = [*self.smtp_password.errors, _l("Enter the password.")]
            ok = False
        return ok

    def settings(self) -> dict:
        """The validated settings, as crm.services.mailboxes takes them."""
        data = {
            name: self[name].data or None
            for name in ("imap_host", "imap_username", "smtp_host", "smtp_username")
        }
        data.update(
            name=self.name.data,
            address=self.address.data.lower(),
            imap_port=self.imap_port.data,
            imap_security=self.imap_security.data,
            imap_folder=self.imap_folder.data or "INBOX",
            smtp_port=self.smtp_port.data,
            smtp_security=self.smtp_security.data,
            imap_password=self.imap_password.data or None,
            smtp_password=self.smtp_password.data or None,
        )
        return data


def _has(mailbox, name: str) -> bool:
    return bool(mailbox is not None and getattr(mailbox, name))


class SharedMailboxForm(MailboxForm):
    """A shared mailbox (support@, sales@): what the sync does with its mail, and the team."""

    purpose = SelectField(
        _l("Purpose"),
        choices=choices(
            [
                ("support", _l("Support: new mail opens an incident")),
                ("sales", _l("Sales: mail from unknown senders creates a lead")),
                ("other", _l("Other: mail goes on the timeline only")),
            ]
        ),
        default="support",
    )
    team = SelectField(_l("Team"), default="", validators=[Optional()])

    def set_teams(self, teams) -> None:
        self.team.choices = choices([("", _l("No team"))] + [(str(t.id), t.name) for t in teams])

    def settings(self) -> dict:
        data = super().settings()
        data.update(
            purpose=self.purpose.data,
            team_id=int(self.team.data) if self.team.data else None,
        )
        return data
