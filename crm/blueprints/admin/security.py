"""Administration of security: the roles that must sign in with two factors, resetting a
user's second factor, and the audit log (read only: no route edits or deletes an entry)."""

from flask import current_app, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import SelectMultipleField
from wtforms.widgets import CheckboxInput, ListWidget

from crm import htmx as hx
from crm.blueprints.admin.routes import _user_or_404, bp
from crm.extensions import db
from crm.form_helpers import choices
from crm.i18n import select_timezone
from crm.labels import ROLE_LABELS
from crm.models.audit import ACTIONS
from crm.permissions import requires
from crm.services import audit, two_factor, users
from crm.services.audit_search import AuditFilters, entity_types, list_entries

ACTION_LABELS = {
    "create": _l("created"),
    "update": _l("changed"),
    "delete": _l("deleted"),
    "export": _l("exported"),
    "erase": _l("erased"),
    "login": _l("signed in"),
    "login_failed": _l("failed sign-in"),
    "logout": _l("signed out"),
    "role_change": _l("role changed"),
    "two_factor": _l("two-factor sign-in"),
    "sessions_revoked": _l("sessions ended"),
    "password_change": _l("password changed"),
    "settings": _l("settings"),
}
# Records that have a page of their own: the log links to them.
RECORD_PAGES = {
    "contact": ("contacts.detail", "contact_id"),
    "company": ("companies.detail", "company_id"),
    "deal": ("deals.detail", "deal_id"),
}


class TwoFactorRolesForm(FlaskForm):
    roles = SelectMultipleField(
        _l("Roles that must sign in with two factors"),
        choices=choices(ROLE_LABELS.items()),
        widget=ListWidget(prefix_label=False),
        option_widget=CheckboxInput(),
    )


def _security_page(form=None, status: int = 200):
    if form is None:
        form = TwoFactorRolesForm(
            formdata=None, data={"roles": sorted(two_factor.required_roles())}
        )
    people = [u for u in users.all_users() if u.active]
    return hx.render("admin/security.html", form=form, people=people, status=status)


@bp.route("/security")
@requires("security.manage")
def security():
    return _security_page()


@bp.route("/security", methods=["POST"])
@requires("security.manage")
def save_security():
    form = TwoFactorRolesForm()
    if not form.validate_on_submit():
        return _security_page(form, status=422)
    two_factor.set_required_roles(form.roles.data or [])
    db.session.commit()
    hx.toast(_("Security settings saved."))
    return hx.location(url_for("admin.security"))


@bp.route("/users/<int:user_id>/two-factor/reset", methods=["POST"])
@requires("security.manage")
def reset_two_factor(user_id: int):
    """For a user who lost both their phone and their recovery codes."""
    user = _user_or_404(user_id)
    two_factor.disable(user)
    user.end_all_sessions()
    audit.record("two_factor", user, summary=_("Second factor reset by an administrator"))
    db.session.commit()
    hx.toast(_("Two-factor sign-in of %(name)s is reset.", name=user.name))
    return hx.location(url_for("admin.security"))


@bp.route("/audit")
@requires("audit.view")
def audit_log():
    filters = AuditFilters.from_args(request.args)
    entries, next_before = list_entries(
        filters, current_app.config["PAGE_SIZE"], zone=select_timezone()
    )
    return hx.render(
        "admin/audit.html",
        {"audit-rows": "rows", "audit-more": "rows"},
        entries=entries,
        next_before=next_before,
        filters=filters,
        people=users.all_users(),
        entity_types=entity_types(),
        actions=ACTIONS,
        action_labels=ACTION_LABELS,
        record_pages=RECORD_PAGES,
    )
