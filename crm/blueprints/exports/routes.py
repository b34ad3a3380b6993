"""Exports of a filtered list to CSV or XLSX, with the filters of the list it came from.

The download is a POST: exporting writes an entry to the audit log, and a GET never changes
anything (tests/security/test_walks.py snapshots every table, the audit log included,
around every GET). The same address answers a GET with a page that names the export and
offers the download, so that a bookmarked or reloaded address still makes sense.
"""

from flask import (
    Blueprint,
    Response,
    abort,
    request,
    send_file,
    stream_with_context,
    url_for,
)
from flask_babel import get_locale
from flask_login import current_user

from crm import htmx as hx
from crm.extensions import db
from crm.permissions import requires
from crm.services import exports

bp = Blueprint("exports", __name__, url_prefix="/exports")

# Query-string keys of a list page that are not its filters.
_NOT_FILTERS = {"entity", "format", "cursor", "csrf_token"}


@bp.app_context_processor
def _export_url():
    """export_url("contacts", "csv"): the export of the list on screen, with its filters."""

    def export_url(entity: str, fmt: str) -> str:
        args = {k: v for k, v in request.args.items() if k not in _NOT_FILTERS}
        return url_for("exports.download", entity=entity, format=fmt, **args)

    return {"export_url": export_url}


def _start(entity: str, fmt: str) -> exports.Export:
    user = current_user._get_current_object()
    try:
        return exports.start(user, entity, fmt, request.args, str(get_locale() or "en"))
    except KeyError:
        abort(404)
    except exports.ExportRefused:
        abort(403)


@bp.route("/<entity>.<format>", methods=["GET", "POST"])
@requires("records.export")
def download(entity: str, format: str):  # noqa: A002  (the URL's name for it)
    export = _start(entity, format)
    if request.method == "GET":
        return hx.render(
            "exports/download.html",
            export=export,
            filters=exports.filter_args(export),
            formats=exports.FORMATS,
        )
    disposition = f'attachment; filename="{export.filename}"'
    if export.fmt == "xlsx":
        out = exports.write_xlsx(export)
        exports.record(export)
        db.session.commit()
        return send_file(
            out, mimetype=export.mimetype, as_attachment=True, download_name=export.filename
        )

    def stream():
        complete = False
        try:
            yield from exports.csv_chunks(export)
            complete = True
        finally:
            # Written last, when the number of rows sent is known; also when the download
            # was cut short (the client went away, or a query failed).
            if not complete:
                db.session.rollback()
            exports.record(export, complete=complete)
            db.session.commit()

    response = Response(stream_with_context(stream()), mimetype=export.mimetype)
    response.headers["Content-Disposition"] = disposition
    response.mimetype_params["charset"] = "utf-8"
    return response
