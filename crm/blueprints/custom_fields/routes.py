"""Custom fields: admins add, order and require fields on contacts, companies, deals and incidents.

One page per record type (?entity=contact) lists its fields in order: drag them (or use the
arrows) to reorder, edit one in place, deactivate it (its values stay on the records), add a
new one at the end. Every change answers with the changed row or the whole panel; a refused
one answers 422 with the inputs as typed and the reason beside the field.
"""

from flask import Blueprint, abort, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, SelectField, StringField, TextAreaField
from wtforms.validators import Length

from crm import htmx as hx
from crm.blueprints.custom_fields.inputs import CustomInputs, shown_values
from crm.extensions import db
from crm.form_helpers import STRIP, choices
from crm.models import CustomFieldDefinition
from crm.models.leads import CUSTOM_FIELD_ENTITIES
from crm.permissions import requires
from crm.services import custom_fields as cf

bp = Blueprint("custom_fields", __name__, url_prefix="/admin/fields")

PANEL = {"fields-panel": "panel"}

ENTITY_LABELS = {
    "contact": _l("Contacts"),
    "company": _l("Companies"),
    "deal": _l("Deals"),
    "incident": _l("Incidents"),
}
TYPE_LABELS = {
    "text": _l("Text"),
    "number": _l("Number"),
    "date": _l("Date"),
    "choice": _l("Choice"),
    "multichoice": _l("Several choices"),
    "boolean": _l("Yes / no"),
    "url": _l("Web address"),
}


# ---- what the records' templates call ------------------------------------------------


@bp.app_template_global()
def custom_field_defs(entity: str):
    """The active fields of `entity`, in order (read once per request)."""
    return cf.definitions(entity)


@bp.app_template_global()
def custom_create_inputs(entity: str):
    """Empty inputs of the required fields, for a create form included in other pages."""
    return CustomInputs.for_create(entity)


@bp.app_template_global()
def custom_field_values(entity: str, values: dict | None):
    """[(definition, value as shown)] of every active field, in order."""
    return shown_values(entity, values)


@bp.app_template_global()
def custom_field_filters(entity: str):
    return cf.filterable(entity)


@bp.app_template_global()
def custom_display(definition, value) -> str:
    return cf.display(definition, value)


# ---- forms ---------------------------------------------------------------------------


class DefinitionForm(FlaskForm):
    label = StringField(_l("Label"), filters=STRIP, validators=[Length(max=120)])
    field_type = SelectField(_l("Type"), choices=choices(TYPE_LABELS.items()), default="text")
    choices = TextAreaField(
        _l("Choices, one per line"),
        description=_l("For a choice or several choices."),
        validators=[Length(max=10000)],
    )
    required = BooleanField(_l("Required"))


def _definition_form(definition: CustomFieldDefinition | None = None, formdata=None):
    form = DefinitionForm(formdata=formdata, prefix=f"f{definition.id}" if definition else "new")
    if definition is not None and formdata is None:
        form.label.data = definition.label
        form.field_type.data = definition.field_type
        form.choices.data = "\n".join(definition.choices or [])
        form.required.data = definition.required
    return form


def _place_errors(form: DefinitionForm, error: cf.DefinitionError) -> None:
    for name, message in error.errors.items():
        target = getattr(form, name, None) or form.label
        target.errors = [*target.errors, message]


# ---- the page ------------------------------------------------------------------------


def _entity(value: str | None) -> str:
    return value if value in CUSTOM_FIELD_ENTITIES else "contact"


def _load(field_id: int) -> CustomFieldDefinition:
    return db.get_or_404(CustomFieldDefinition, field_id)


def _context(entity: str, **extra) -> dict:
    fields = cf.definitions(entity, include_inactive=True)
    context = {
        "entity": entity,
        "entity_labels": ENTITY_LABELS,
        "type_labels": TYPE_LABELS,
        "active_fields": [f for f in fields if f.active],
        "inactive_fields": [f for f in fields if not f.active],
        "new_form": _definition_form(),
        "editing": None,
        "edit_form": None,
        "focus": None,
    }
    context.update(extra)
    return context


def _page(entity: str, status: int = 200, **extra):
    return hx.render("custom_fields/index.html", PANEL, status=status, **_context(entity, **extra))


def _panel(entity: str, status: int = 200, **extra):
    """The panel after a change under htmx; else the page again (at its address if all went well)."""
    if hx.is_htmx():
        return hx.render_fragment(
            "custom_fields/index.html", "panel", status=status, **_context(entity, **extra)
        )
    if status == 200:
        return hx.location(url_for("custom_fields.index", entity=entity))
    return _page(entity, status, **extra)


@bp.route("")
@requires("custom_fields.manage")
def index():
    return _page(_entity(request.args.get("entity")))


@bp.route("", methods=["POST"])
@requires("custom_fields.manage")
def create():
    entity = _entity(request.form.get("entity"))
    form = _definition_form(formdata=request.form)
    if form.validate_on_submit():
        try:
            definition = cf.create_definition(
                entity,
                form.label.data or "",
                form.field_type.data,
                form.choices.data,
                form.required.data,
            )
        except cf.DefinitionError as error:
            db.session.rollback()
            _place_errors(form, error)
        else:
            db.session.commit()
            hx.toast(_("Field %(label)s added.", label=definition.label))
            return _panel(entity)
    return _panel(entity, 422, new_form=form)


@bp.route("/<int:field_id>/edit")
@requires("custom_fields.manage")
def edit(field_id: int):
    definition = _load(field_id)
    form = _definition_form(definition)
    if hx.is_partial():
        return _row(definition, form)
    return _page(definition.entity, editing=definition.id, edit_form=form)


@bp.route("/<int:field_id>")
@requires("custom_fields.manage")
def show(field_id: int):
    """One field's row as it is now (what "Cancel" goes back to)."""
    definition = _load(field_id)
    if not hx.is_partial():
        return hx.location(url_for("custom_fields.index", entity=definition.entity))
    return _row(definition)


def _row(definition, form=None, status: int = 200):
    return hx.render_fragment(
        "custom_fields/index.html",
        "row",
        status=status,
        d=definition,
        editing=definition.id if form else None,
        edit_form=form,
        type_labels=TYPE_LABELS,
        entity=definition.entity,
    )


@bp.route("/<int:field_id>", methods=["POST"])
@requires("custom_fields.manage")
def update(field_id: int):
    definition = _load(field_id)
    form = _definition_form(definition, request.form)
    if form.validate_on_submit():
        try:
            cf.update_definition(
                definition,
                form.label.data or "",
                form.field_type.data,
                form.choices.data,
                form.required.data,
            )
        except cf.DefinitionError as error:
            db.session.rollback()
            _place_errors(form, error)
        else:
            db.session.commit()
            hx.toast(_("Field %(label)s saved.", label=definition.label))
            if hx.is_partial():
                return _row(definition)
            return _panel(definition.entity)
    if hx.is_partial():
        return _row(definition, form, 422)
    return _page(definition.entity, 422, editing=definition.id, edit_form=form)


@bp.route("/<int:field_id>/move", methods=["POST"])
@requires("custom_fields.manage")
def move(field_id: int):
    definition = _load(field_id)
    direction = request.form.get("direction")
    if direction not in ("up", "down"):
        abort(400)
    cf.move(definition, -1 if direction == "up" else 1)
    db.session.commit()
    return _panel(definition.entity, focus=(definition.id, direction))


@bp.route("/reorder", methods=["POST"])
@requires("custom_fields.manage")
def reorder():
    """The order the admin dropped the fields in (SortableJS fills this form's ids)."""
    entity = request.form.get("entity")
    if entity not in CUSTOM_FIELD_ENTITIES:
        abort(400)
    ids = [int(value) for value in request.form.getlist("ids") if value.isdigit()]
    cf.reorder(entity, ids)
    db.session.commit()
    hx.toast(_("Order saved."))
    return _panel(entity)


@bp.route("/<int:field_id>/active", methods=["POST"])
@requires("custom_fields.manage")
def set_active(field_id: int):
    definition = _load(field_id)
    active = request.form.get("active")
    if active not in ("0", "1"):
        abort(400)
    try:
        cf.set_active(definition, active == "1")
    except cf.DefinitionError as error:
        db.session.rollback()
        hx.toast(next(iter(error.errors.values())), "error")
        return _panel(definition.entity, 422)
    db.session.commit()
    if active == "1":
        hx.toast(_("Field %(label)s is back.", label=definition.label))
    else:
        hx.toast(
            _(
                "Field %(label)s deactivated: its values stay on the records.",
                label=definition.label,
            )
        )
    return _panel(definition.entity)
