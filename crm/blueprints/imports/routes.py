"""CSV imports: upload, map the columns, choose what to do with duplicates, follow the worker, undo."""

import codecs

from flask import Blueprint, Response, abort, current_app, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy.orm import undefer

from crm import htmx as hx
from crm.blueprints.imports.forms import ENTITY_LABELS, UploadForm
from crm.csv_safety import safe_cell
from crm.extensions import db
from crm.jobs import imports as jobs
from crm.models import DataImport
from crm.permissions import requires
from crm.services.imports import fields as import_fields
from crm.services.imports import runner
from crm.services.imports.reading import ImportFileError

bp = Blueprint("imports", __name__, url_prefix="/imports")

DETAIL_PARTIALS = {
    "import-mapping": "mapping",
    "import-preview": "preview",
    "import-progress": "progress",
    "rejected-more": "rejected_rows",
}
EXCEL_NAMES = (".xlsx", ".xlsm", ".xls", ".ods", ".numbers")
REJECTED_PAGE = 50


def _get(import_id: int, *options) -> DataImport:
    query = runner.visible_imports(current_user).where(DataImport.id == import_id).options(*options)
    data_import = db.session.scalars(query).first()
    if data_import is None:
        abort(404)
    return data_import


# ---- list and upload -----------------------------------------------------------------


def _index(form: UploadForm, status: int = 200):
    imports, more = runner.recent_imports(current_user, request.args.get("before", type=int))
    return hx.render(
        "imports/index.html",
        {"import-upload": "upload", "import-more": "rows"},
        status=status,
        form=form,
        imports=imports,
        more=more,
        entity_labels=ENTITY_LABELS,
    )


@bp.route("")
@requires("imports.run")
def index():
    return _index(UploadForm(formdata=None))


@bp.route("", methods=["POST"])
@requires("imports.run")
def upload():
    form = UploadForm()
    if not form.validate_on_submit():
        return _index(form, 422)
    upload = form.file.data
    limit = current_app.config["IMPORT_MAX_BYTES"]
    if (upload.filename or "").lower().endswith(EXCEL_NAMES):
        form.file.errors.append(
            _(
                "This is a spreadsheet file, not a CSV file. In Excel, use “Save as” and choose "
                "“CSV (separator: semicolon)” or “CSV UTF-8”."
            )
        )
        return _index(form, 422)
    content = upload.stream.read(limit + 1)
    try:
        data_import = runner.create_import(current_user, form.entity.data, upload.filename, content)
    except ImportFileError as error:
        form.file.errors.append(str(error))
        return _index(form, 413 if len(content) > limit else 422)
    db.session.commit()
    return hx.location(url_for("imports.detail", import_id=data_import.id))


# ---- one import: mapping, progress or report ----------------------------------------


def _mapping_context(data_import: DataImport, choice: runner.ImportChoice, errors=None) -> dict:
    headers = runner.headers(data_import)
    # A saved mapping shorter than the header (never, but cheap to guard): no field.
    columns = (choice.columns + [""] * len(headers))[: len(headers)]
    choice.columns = columns
    rows = runner.preview_rows(data_import)
    return {
        "data_import": data_import,
        "headers": headers,
        "choice": choice,
        "field_choices": import_fields.choices(data_import.entity),
        "field_labels": import_fields.labels(data_import.entity),
        "rows": rows,
        "row_problems": runner.preview_outcomes(data_import, choice, current_user, rows),
        "unmapped_required": import_fields.unmapped_required(data_import.entity, columns),
        "errors": errors or runner.ChoiceErrors({}, [], {}),
        "entity_labels": ENTITY_LABELS,
    }


def _report_context(data_import: DataImport) -> dict:
    rejected, more = runner.rejected_page(data_import.id, 0, REJECTED_PAGE)
    return {
        "data_import": data_import,
        "rejected": rejected,
        "more": more,
        "can_undo": runner.can_undo(data_import),
        "kept": runner.kept_count(data_import.id) if data_import.status == "undone" else 0,
        "stalled": False,
        "entity_labels": ENTITY_LABELS,
    }


def _progress_context(data_import: DataImport) -> dict:
    stalled = data_import.status in ("queued", "running", "undoing") and not jobs.job_alive(
        data_import
    )
    return {"data_import": data_import, "stalled": stalled, "entity_labels": ENTITY_LABELS}


@bp.route("/<int:import_id>")
@requires("imports.run")
def detail(import_id: int):
    if _get(import_id).status == "uploaded":
        data_import = _get(import_id, undefer(DataImport.content))
        context = _mapping_context(data_import, runner.ImportChoice.saved(data_import))
        return hx.render("imports/mapping.html", DETAIL_PARTIALS, **context)
    data_import = _get(import_id)
    if data_import.status in ("queued", "running", "undoing"):
        return hx.render("imports/progress.html", DETAIL_PARTIALS, **_progress_context(data_import))
    return hx.render("imports/report.html", DETAIL_PARTIALS, **_report_context(data_import))


@bp.route("/<int:import_id>/progress")
@requires("imports.run")
def progress(import_id: int):
    """What the progress bar polls; the whole page when opened directly."""
    data_import = _get(import_id)
    return hx.render("imports/progress.html", DETAIL_PARTIALS, **_progress_context(data_import))


def _uploaded(import_id: int) -> DataImport:
    data_import = _get(import_id, undefer(DataImport.content))
    if data_import.status != "uploaded":
        abort(409)
    return data_import


@bp.route("/<int:import_id>/preview", methods=["POST"])
@requires("imports.run")
def preview(import_id: int):
    """The preview table again with the mapping being chosen; nothing is saved."""
    data_import = _uploaded(import_id)
    choice = runner.ImportChoice.from_form(request.form, len(runner.headers(data_import)))
    context = _mapping_context(data_import, choice)
    db.session.rollback()
    return hx.render_fragment("imports/mapping.html", "preview", **context)


@bp.route("/<int:import_id>/start", methods=["POST"])
@requires("imports.run")
def start(import_id: int):
    data_import = _uploaded(import_id)
    choice = runner.ImportChoice.from_form(request.form, len(runner.headers(data_import)))
    errors = runner.check_choice(data_import, choice)
    if errors:
        context = _mapping_context(data_import, choice, errors)
        db.session.rollback()
        if hx.is_htmx():
            return hx.render_fragment("imports/mapping.html", "mapping", status=422, **context)
        return hx.render("imports/mapping.html", status=422, **context)
    runner.start(data_import, choice, current_user)
    db.session.commit()
    jobs.enqueue_run(data_import.id)
    hx.toast(_("Import started: you can leave this page, it goes on."))
    return hx.location(url_for("imports.detail", import_id=import_id))


@bp.route("/<int:import_id>/cancel", methods=["POST"])
@requires("imports.run")
def cancel(import_id: int):
    """Forget an uploaded file that was never imported."""
    data_import = _uploaded(import_id)
    runner.delete_upload(data_import)
    db.session.commit()
    hx.toast(_("The file was discarded."))
    return hx.location(url_for("imports.index"))


@bp.route("/<int:import_id>/resume", methods=["POST"])
@requires("imports.run")
def resume(import_id: int):
    data_import = _get(import_id)
    if data_import.status == "undoing":
        if not jobs.job_alive(data_import):
            jobs.enqueue_undo(data_import.id, current_user.id)
    elif jobs.job_alive(data_import) or not runner.resume(data_import):
        abort(409)
    else:
        db.session.commit()
        jobs.enqueue_run(data_import.id)
    hx.toast(_("The import goes on from where it stopped."))
    return hx.location(url_for("imports.detail", import_id=import_id))


# ---- report --------------------------------------------------------------------------


@bp.route("/<int:import_id>/rejected")
@requires("imports.run")
def rejected(import_id: int):
    """More rejected rows (keyset on the row number); the report when opened directly."""
    data_import = _get(import_id)
    after = request.args.get("after", 0, type=int)
    rows, more = runner.rejected_page(data_import.id, after, REJECTED_PAGE)
    if not hx.is_partial():
        return hx.render("imports/report.html", **_report_context(data_import))
    return hx.render_fragment(
        "imports/report.html", "rejected_rows", data_import=data_import, rejected=rows, more=more
    )


@bp.route("/<int:import_id>/rejected.csv")
@requires("imports.run")
def rejected_csv(import_id: int):
    """The rejected rows as they were, with their reasons, to fix and import again: in the
    file's own separator, UTF-8 with a byte order mark so that Excel reads the accents."""
    import csv
    import io

    data_import = _get(import_id, undefer(DataImport.content))
    header, rows = runner.rejected_csv_rows(data_import)
    out = io.StringIO()
    writer = csv.writer(out, delimiter=data_import.delimiter)
    writer.writerow([safe_cell(cell) for cell in header])
    for row in rows:
        writer.writerow([safe_cell(cell) for cell in row])
    name = data_import.filename.rsplit(".", 1)[0] or "import"
    return Response(
        codecs.BOM_UTF8 + out.getvalue().encode("utf-8"),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{_ascii(name)}-rejected.csv"'},
    )


def _ascii(name: str) -> str:
    return "".join(ch if ch.isascii() and (ch.isalnum() or ch in "-_ ") else "_" for ch in name)


@bp.route("/<int:import_id>/undo", methods=["POST"])
@requires("imports.run")
def undo(import_id: int):
    data_import = _get(import_id)
    if not runner.can_undo(data_import):
        abort(409)
    runner.begin_undo(data_import, current_user)
    db.session.commit()
    if runner.undo_size(data_import) <= current_app.config["IMPORT_UNDO_INLINE_ROWS"]:
        result = runner.undo(import_id, current_user.id)
        kept = result.get("kept", 0)
        if kept:
            hx.toast(
                _(
                    "Import undone. %(count)d records used since were kept.",
                    count=kept,
                )
            )
        else:
            hx.toast(_("Import undone."))
    else:
        jobs.enqueue_undo(import_id, current_user.id)
        hx.toast(_("Undoing the import: it goes on in the background."))
    return hx.location(url_for("imports.detail", import_id=import_id))
