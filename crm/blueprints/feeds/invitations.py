"""Importing one .ics invitation: upload, preview what changes, then one click to import."""

import base64
import binascii
from zoneinfo import ZoneInfo

from flask import url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user

from crm import htmx as hx
from crm.blueprints.feeds.forms import InvitationConfirmForm, InvitationUploadForm
from crm.blueprints.feeds.routes import bp
from crm.extensions import db
from crm.i18n import select_timezone
from crm.permissions import requires
from crm.services import ics_import
from crm.services.recurrence import to_local_naive

PARTIALS = {"ics-import": "panel"}


def _page(status: int = 200, **context):
    context.setdefault("form", InvitationUploadForm(formdata=None))
    context.setdefault("plan", None)
    return hx.render("feeds/import.html", PARTIALS, status=status, **context)


def _refused(form: InvitationUploadForm, message: str):
    form.file.errors = [*form.file.errors, message]
    return _page(status=422, form=form)


@bp.route("/agenda/import")
@requires("agenda.edit")
def import_invitation():
    return _page()


@bp.route("/agenda/import", methods=["POST"])
@requires("agenda.edit")
def preview_invitation():
    """Read the file and show what importing it would do; nothing is written yet."""
    form = InvitationUploadForm()
    if not form.validate_on_submit():
        return _page(status=422, form=form)
    upload = form.file.data
    data = upload.stream.read(ics_import.MAX_BYTES + 1)
    try:
        ics_import.check_upload(upload.filename, upload.mimetype, data)
        invitation = ics_import.read_invitation(data, current_user)
    except ics_import.InvitationError as error:
        return _refused(form, str(error))
    plan = ics_import.plan_import(invitation, current_user)
    confirm = InvitationConfirmForm(formdata=None)
    confirm.payload.data = base64.b64encode(data).decode("ascii")
    db.session.rollback()  # matching people loaded rows; nothing may be written here
    return _page(form=form, plan=plan, confirm=confirm, filename=upload.filename)


@bp.route("/agenda/import/confirm", methods=["POST"])
@requires("agenda.edit")
def confirm_invitation():
    """Import what the preview showed, read again from the file (the agenda may have moved)."""
    confirm = InvitationConfirmForm()
    form = InvitationUploadForm(formdata=None)
    if not confirm.validate_on_submit():
        return _refused(form, _("The invitation was lost on the way. Choose the file again."))
    try:
        data = base64.b64decode(confirm.payload.data.encode("ascii"), validate=True)
        ics_import.check_upload("invitation.ics", None, data)
        invitation = ics_import.read_invitation(data, current_user)
    except (binascii.Error, ValueError, ics_import.InvitationError) as error:
        message = str(error) if isinstance(error, ics_import.InvitationError) else ""
        return _refused(form, message or _("This file is not a calendar invitation."))
    plan = ics_import.plan_import(invitation, current_user)
    touched = ics_import.apply_import(plan, current_user)
    db.session.commit()
    if not touched:
        hx.toast(_("Nothing to import: your agenda already has this invitation."), "warning")
        return _page(form=form)
    cancelled = sum(1 for change in plan if change.action == "cancel")
    if cancelled and cancelled == len(touched):
        hx.toast(ngettext("%(num)d event cancelled.", "%(num)d events cancelled.", cancelled))
    else:
        hx.toast(ngettext("%(num)d event imported.", "%(num)d events imported.", len(touched)))
    first = touched[0]
    return hx.location(_agenda_url(first.starts_at))


def _agenda_url(moment) -> str:
    """The agenda on the day of the imported event."""
    day = to_local_naive(moment, ZoneInfo(select_timezone())).date()
    return url_for("agenda.index", date=day.isoformat())
