from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import HiddenField
from wtforms.validators import InputRequired


class InvitationUploadForm(FlaskForm):
    file = FileField(
        _l("Invitation file (.ics)"),
        validators=[FileRequired(message=_l("Choose the .ics file of the invitation."))],
        render_kw={"accept": ".ics,text/calendar"},
    )


class InvitationConfirmForm(FlaskForm):
    """The checked file travels back with the confirmation: nothing is kept in between."""

    payload = HiddenField(validators=[InputRequired()])
