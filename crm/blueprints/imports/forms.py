from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import RadioField

from crm.form_helpers import choices

ENTITY_LABELS = {
    "contacts": _l("Contacts"),
    "companies": _l("Companies"),
    "notes": _l("Notes"),
}


class UploadForm(FlaskForm):
    entity = RadioField(
        _l("What the file holds"), choices=choices(ENTITY_LABELS.items()), default="contacts"
    )
    file = FileField(
        _l("CSV file"),
        validators=[FileRequired(message=_l("Choose the CSV file to import."))],
        render_kw={"accept": ".csv,.txt,.tsv,text/csv,text/plain,text/tab-separated-values"},
    )
