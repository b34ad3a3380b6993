"""Canned responses: the email templates support answers with, managed under
/incidents/templates by those who configure support."""

from flask import url_for
from flask_babel import gettext as _
from flask_login import current_user

from crm import htmx as hx
from crm.blueprints.incidents.forms import TemplateForm
from crm.blueprints.incidents.routes import bp
from crm.extensions import db
from crm.models import EmailTemplate
from crm.permissions import requires
from crm.services import canned_responses


def _validated(form: TemplateForm, template: EmailTemplate | None) -> bool:
    valid = form.validate_on_submit()
    if form.name.data and canned_responses.name_taken(
        form.name.data, template.id if template else None
    ):
        form.name.errors.append(_("Another template has this name."))
        valid = False
    for field in (form.subject, form.body):
        unknown = canned_responses.unknown_placeholders(field.data)
        if unknown:
            field.errors.append(
                _(
                    "Unknown placeholder: %(names)s. Use %(known)s.",
                    names=", ".join(unknown),
                    known=", ".join(canned_responses.KNOWN),
                )
            )
            valid = False
    return valid


def _page(form: TemplateForm, editing: EmailTemplate | None = None, status: int = 200):
    return hx.render(
        "incidents/templates.html",
        {"template-form": "form"},
        status=status,
        form=form,
        editing=editing,
        templates=canned_responses.all_templates(),
        known=canned_responses.KNOWN,
    )


@bp.route("/templates")
@requires("support.configure")
def templates():
    return _page(TemplateForm(formdata=None))


@bp.route("/templates/<int:template_id>")
@requires("support.configure")
def edit_template(template_id: int):
    template = db.get_or_404(EmailTemplate, template_id)
    return _page(TemplateForm(formdata=None, obj=template), editing=template)


@bp.route("/templates", methods=["POST"])
@requires("support.configure")
def create_template():
    return _save(None)


@bp.route("/templates/<int:template_id>", methods=["POST"])
@requires("support.configure")
def update_template(template_id: int):
    return _save(db.get_or_404(EmailTemplate, template_id))


def _save(template: EmailTemplate | None):
    form = TemplateForm()
    if not _validated(form, template):
        return _page(form, editing=template, status=422)
    saved = canned_responses.save_template(
        current_user,
        template,
        name=form.name.data,
        subject=form.subject.data,
        body=form.body.data,
        usage=form.usage.data,
    )
    db.session.commit()
    hx.toast(_("Template %(name)s saved.", name=saved.name))
    return hx.location(url_for("incidents.templates"))


@bp.route("/templates/<int:template_id>/delete", methods=["POST"])
@requires("support.configure")
def delete_template(template_id: int):
    template = db.get_or_404(EmailTemplate, template_id)
    name = template.name
    db.session.delete(template)
    db.session.commit()
    hx.toast(_("Template %(name)s deleted.", name=name))
    return hx.location(url_for("incidents.templates"))
