"""Contacts: the list, quick-add, and the 360° page with inline edits and the timeline."""

import json

from flask import Blueprint, abort, current_app, make_response, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy.orm import joinedload

from crm import htmx as hx
from crm.blueprints.contacts.forms import (
    CONTACT_FIELDS,
    ActivityForm,
    QuickAddForm,
    field_form_class,
)
from crm.blueprints.custom_fields.inputs import CustomInputs, definition_or_404, save_inline
from crm.blueprints.deals.forms import DealQuickAddForm
from crm.blueprints.incidents.routes import customer_panel_context
from crm.blueprints.tasks.routes import follow_up_form, record_panel_context
from crm.extensions import commit_keeping_loaded, db
from crm.form_helpers import choices
from crm.labels import STAGE_LABELS
from crm.models import Contact
from crm.models.contacts import CONSENT_STATUSES, STAGES
from crm.permissions import get_or_404_for, has_permission, requires
from crm.services import contact_fields, contacts, personal_data
from crm.services.deals import contact_deals
from crm.services.timeline import contact_timeline, record_activity

bp = Blueprint("contacts", __name__, url_prefix="/contacts")

LIST_PARTIALS = {"contact-rows": "rows", "load-more": "rows"}


def _list_context(filters: contacts.ContactFilters) -> dict:
    page = contacts.list_contact_rows(current_user, filters, current_app.config["PAGE_SIZE"])
    return {"page": page, "filters": filters}


def _filter_choices() -> dict:
    owners, tags = contacts.filter_choices(contact_fields.OWNER_ROLES)
    return {"owners": owners, "tags": tags, "stages": STAGES}


def _quick_add() -> dict:
    return {"form": QuickAddForm(formdata=None), "custom": CustomInputs.for_create("contact")}


@bp.route("")
@requires("contacts.list")
def index():
    filters = contacts.ContactFilters.from_args(request.args)
    return hx.render(
        "contacts/index.html",
        LIST_PARTIALS,
        whole_page=lambda: {**_filter_choices(), **_quick_add()},
        **_list_context(filters),
    )


@bp.route("", methods=["POST"])
@requires("contacts.create")
def create():
    form = QuickAddForm()
    # The required custom fields are asked for here; checked with the rest, nothing saved
    # unless all is right.
    custom = CustomInputs.for_create("contact", request.form)
    duplicates = []
    form_valid = form.validate_on_submit()
    custom_values = custom.validate()
    if form_valid and custom_values is not None:
        duplicates = contacts.find_duplicates(form.email.data, form.phone.data)
        if not duplicates or form.confirm_duplicate.data == "1":
            contact = contacts.create_contact(
                current_user,
                first_name=form.first_name.data or "",
                last_name=form.last_name.data or "",
                email=form.email.data,
                phone=form.phone.data,
                company_name=form.company.data,
                source="quick_add",
            )
            contact.custom_fields = custom_values
            # The new row is rendered from the objects at hand, not read back.
            commit_keeping_loaded()
            hx.toast(_("%(name)s added.", name=contact.name))
            if not hx.is_htmx():
                return hx.location(url_for("contacts.detail", contact_id=contact.id))
            # On a company page the next contact is likely from the same company.
            keep = {"company": form.company.data} if request.form.get("keep_company") else {}
            return hx.render_fragment(
                "contacts/index.html",
                "quick_add",
                "new_row",
                form=QuickAddForm(formdata=None, data=keep),
                custom=CustomInputs.for_create("contact"),
                contact=contact,
            )
    if not hx.is_htmx():
        return hx.render(
            "contacts/index.html",
            form=form,
            custom=custom,
            duplicates=duplicates,
            status=422,
            **_list_context(contacts.ContactFilters()),
            **_filter_choices(),
        )
    return hx.render_fragment(
        "contacts/index.html",
        "quick_add",
        form=form,
        custom=custom,
        duplicates=duplicates,
        status=422,
    )


def _detail_context(contact: Contact, **extra) -> dict:
    context = {
        "contact": contact,
        "fields": CONTACT_FIELDS,
        "timeline": contact_timeline(contact, current_user),
        "deals": contact_deals(current_user, contact),
        "deal_form": DealQuickAddForm(formdata=None),
        "activity_form": ActivityForm(formdata=None),
        "stages": STAGES,
        "consent_statuses": CONSENT_STATUSES,
        "editing": None,
        "custom_editing": None,  # (key, CustomInputs) of a custom field edited without htmx
        **record_panel_context("contact", contact),
        **customer_panel_context(contact=contact),
        "erase_open": False,
    }
    context.update(extra)
    return context


# What the page shows of the contact itself, joined into the query that reads it.
PAGE_LOADS = (joinedload(Contact.company), joinedload(Contact.owner), joinedload(Contact.tags))


@bp.route("/<int:contact_id>")
@requires("contacts.view")
def detail(contact_id: int):
    contact = get_or_404_for(current_user, Contact, contact_id, *PAGE_LOADS)
    return hx.render("contacts/detail.html", **_detail_context(contact))


def _editable(name: str, contact: Contact) -> None:
    if name not in CONTACT_FIELDS:
        abort(404)
    permission = "contacts.assign" if name == "owner" else "contacts.edit"
    if not has_permission(current_user, permission):
        abort(403)


def _field_form(name: str, contact: Contact, formdata=None):
    form = field_form_class(name)(formdata=formdata)
    if name == "owner":
        form.value.choices = choices(
            [("", _("Nobody"))] + [(str(u.id), u.name) for u in contact_fields.possible_owners()]
        )
    if formdata is None:
        form.value.data = contact_fields.current_value(contact, name)
    return form


def _render_field(contact: Contact, name: str, form=None, status: int = 200, warning=None):
    context = {
        "contact": contact,
        "name": name,
        "label": CONTACT_FIELDS[name][0],
        "form": form,
        "warning": warning,
    }
    if hx.is_partial():
        return hx.render_fragment("contacts/_field.html", "field", status=status, **context)
    return hx.render(
        "contacts/detail.html",
        status=status,
        **_detail_context(contact, editing=name, editing_form=form),
    )


@bp.route("/<int:contact_id>/fields/<name>")
@requires("contacts.view")
def show_field(contact_id: int, name: str):
    contact = get_or_404_for(current_user, Contact, contact_id)
    if name not in CONTACT_FIELDS:
        abort(404)
    return _render_field(contact, name)


@bp.route("/<int:contact_id>/fields/<name>/edit")
@requires("contacts.edit")
def edit_field(contact_id: int, name: str):
    contact = get_or_404_for(current_user, Contact, contact_id)
    _editable(name, contact)
    return _render_field(contact, name, _field_form(name, contact))


@bp.route("/<int:contact_id>/fields/<name>", methods=["POST"])
@requires("contacts.edit")
def update_field(contact_id: int, name: str):
    contact = get_or_404_for(current_user, Contact, contact_id)
    _editable(name, contact)
    form = _field_form(name, contact, formdata=request.form)
    if form.validate_on_submit():
        try:
            contact_fields.apply_value(current_user, contact, name, form.value.data or "")
        except contact_fields.FieldRefused as refused:
            db.session.rollback()
            form.value.errors = [_refusal_message(str(refused))]
        else:
            db.session.commit()
            warning = None
            if name in ("email", "phone"):
                others = contacts.find_duplicates(
                    contact.email if name == "email" else None,
                    contact.phone if name == "phone" else None,
                    exclude_id=contact.id,
                )
                warning = others[0] if others else None
            if not hx.is_htmx():
                return hx.location(url_for("contacts.detail", contact_id=contact.id))
            return _render_field(contact, name, warning=warning)
    return _render_field(contact, name, form, status=422)


# ---- custom fields, edited in place like the fields above ------------------------------


def _render_custom_field(contact: Contact, definition, ci=None, status: int = 200):
    if hx.is_partial():
        return hx.render_fragment(
            "custom_fields/_record_field.html",
            "field",
            status=status,
            d=definition,
            values=contact.custom_fields or {},
            urls=_custom_urls(contact, definition.key),
            editable=has_permission(current_user, "contacts.edit"),
            ci=ci,
        )
    return hx.render(
        "contacts/detail.html",
        status=status,
        **_detail_context(contact, custom_editing=(definition.key, ci) if ci else None),
    )


def _custom_urls(contact: Contact, key: str) -> dict:
    return {
        "page": url_for("contacts.detail", contact_id=contact.id),
        "show": url_for("contacts.show_custom_field", contact_id=contact.id, field_key=key),
        "edit": url_for("contacts.edit_custom_field", contact_id=contact.id, field_key=key),
        "update": url_for("contacts.update_custom_field", contact_id=contact.id, field_key=key),
    }


@bp.app_template_global()
def contact_custom_urls(contact: Contact, key: str) -> dict:
    return _custom_urls(contact, key)


@bp.route("/<int:contact_id>/custom/<field_key>")
@requires("contacts.view")
def show_custom_field(contact_id: int, field_key: str):
    contact = get_or_404_for(current_user, Contact, contact_id)
    return _render_custom_field(contact, definition_or_404("contact", field_key))


@bp.route("/<int:contact_id>/custom/<field_key>/edit")
@requires("contacts.edit")
def edit_custom_field(contact_id: int, field_key: str):
    contact = get_or_404_for(current_user, Contact, contact_id)
    definition = definition_or_404("contact", field_key)
    ci = CustomInputs.for_record("contact", contact.custom_fields, keys=[field_key])
    return _render_custom_field(contact, definition, ci)


@bp.route("/<int:contact_id>/custom/<field_key>", methods=["POST"])
@requires("contacts.edit")
def update_custom_field(contact_id: int, field_key: str):
    contact = get_or_404_for(current_user, Contact, contact_id)
    return save_inline(
        contact,
        "contact",
        field_key,
        request.form,
        lambda definition, ci=None, status=200: _render_custom_field(
            contact, definition, ci, status
        ),
        url_for("contacts.detail", contact_id=contact.id),
    )


def _refusal_message(code: str) -> str:
    return {
        "name_required": _("A contact needs a first or a last name."),
        "reach_required": _("Keep at least an email or a phone number."),
    }[code]


@bp.route("/<int:contact_id>/stage", methods=["POST"])
@requires("contacts.edit")
def change_stage(contact_id: int):
    contact = get_or_404_for(
        current_user, Contact, contact_id, joinedload(Contact.company), joinedload(Contact.owner)
    )
    stage = request.form.get("stage", "")
    if stage not in STAGES:
        abort(400)
    if contacts.change_stage(current_user, contact, stage):
        commit_keeping_loaded()
        hx.toast(_("%(name)s is now: %(stage)s.", name=contact.name, stage=STAGE_LABELS[stage]))
    if not hx.is_htmx():
        return hx.location(url_for("contacts.detail", contact_id=contact.id))
    return hx.render_fragment(
        "contacts/detail.html",
        "header",
        "timeline_refresh",
        contact=contact,
        stages=STAGES,
        timeline=contact_timeline(contact, current_user),
    )


@bp.route("/<int:contact_id>/activities", methods=["POST"])
@requires("activities.log")
def log_activity(contact_id: int):
    # The company comes with the contact: the entry goes on its timeline too.
    contact = get_or_404_for(current_user, Contact, contact_id, joinedload(Contact.company))
    form = ActivityForm()
    if not form.validate_on_submit():
        return hx.render(
            "contacts/detail.html",
            {"composer": "composer"},
            status=422,
            **_detail_context(contact, activity_form=form),
        )
    kind = form.kind.data
    activity = record_activity(
        current_user,
        kind,
        contact=contact,
        body=(form.body.data or "").strip() or None,
        outcome=form.outcome.data if kind == "call" else None,
    )
    commit_keeping_loaded()
    hx.toast(_("Call logged.") if kind == "call" else _("Note added."))
    if not hx.is_htmx():
        return hx.location(url_for("contacts.detail", contact_id=contact.id))
    fresh = ActivityForm(formdata=None)
    fresh.kind.data = kind
    # After a call, a follow-up task is proposed, ready to accept in one click.
    follow_up = follow_up_form(contact, activity.id) if kind == "call" else None
    # Only the blocks sent back are read: not the panels of the whole page.
    return hx.render_fragment(
        "contacts/detail.html",
        "composer",
        "timeline_refresh",
        "follow_up",
        contact=contact,
        timeline=contact_timeline(contact, current_user),
        activity_form=fresh,
        follow_up=follow_up,
    )


@bp.route("/<int:contact_id>/delete", methods=["POST"])
@requires("contacts.delete")
def delete(contact_id: int):
    contact = get_or_404_for(current_user, Contact, contact_id)
    name = contact.name
    db.session.delete(contact)
    db.session.commit()
    hx.toast(_("%(name)s deleted.", name=name))
    return hx.location(url_for("contacts.index"))


# ---- personal data (GDPR) and consent ---------------------------------------------------


@bp.route("/<int:contact_id>/personal-data", methods=["POST"])
@requires("contacts.export_personal_data")
def export_personal_data(contact_id: int):
    """A download, by POST: exporting is an event of the audit log, and GET changes nothing."""
    contact = get_or_404_for(current_user, Contact, contact_id)
    kind = request.form.get("format")
    if kind not in ("json", "csv"):
        abort(400)
    data = personal_data.export(current_user, contact)
    personal_data.record_export(current_user, contact, kind)
    db.session.commit()
    if kind == "json":
        body, mimetype = json.dumps(data, ensure_ascii=False, indent=2), "application/json"
    else:
        body, mimetype = personal_data.as_csv(data), "text/csv"
    response = make_response(body)
    response.mimetype = mimetype
    response.headers["Content-Disposition"] = (
        f'attachment; filename="contact-{contact.id}-personal-data.{kind}"'
    )
    return response


@bp.route("/<int:contact_id>/erase", methods=["POST"])
@requires("contacts.erase")
def erase(contact_id: int):
    contact = get_or_404_for(current_user, Contact, contact_id)
    if contact.erased_at is not None:
        return hx.location(url_for("contacts.detail", contact_id=contact.id))
    if request.form.get("confirm") != "yes":
        hx.toast(_("Tick the box to confirm the erasure."), "error")
        return hx.render(
            "contacts/detail.html", status=422, **_detail_context(contact, erase_open=True)
        )
    personal_data.erase(current_user, contact)
    db.session.commit()
    hx.toast(_("The personal data of contact #%(id)d is erased.", id=contact.id))
    return hx.location(url_for("contacts.detail", contact_id=contact.id))


def _consent_answer(contact: Contact):
    if not hx.is_htmx():
        return hx.location(url_for("contacts.detail", contact_id=contact.id))
    return hx.render_fragment(
        "contacts/detail.html", "consent", contact=contact, consent_statuses=CONSENT_STATUSES
    )


@bp.route("/<int:contact_id>/consent", methods=["POST"])
@requires("contacts.edit")
def set_consent(contact_id: int):
    contact = get_or_404_for(current_user, Contact, contact_id)
    status = request.form.get("consent_status", "")
    if status not in CONSENT_STATUSES:
        abort(400)
    personal_data.set_consent(contact, status)
    commit_keeping_loaded()
    hx.toast(_("Consent saved."))
    return _consent_answer(contact)


@bp.route("/<int:contact_id>/unsubscribe", methods=["POST"])
@requires("contacts.edit")
def set_unsubscribed(contact_id: int):
    contact = get_or_404_for(current_user, Contact, contact_id)
    value = request.form.get("unsubscribed")
    if value not in ("0", "1"):
        abort(400)
    personal_data.set_unsubscribed(contact, value == "1")
    commit_keeping_loaded()
    hx.toast(_("Unsubscribed.") if value == "1" else _("Subscribed again."))
    return _consent_answer(contact)
