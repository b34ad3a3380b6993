"""My account's security: password, signed-in sessions, two-factor sign-in.

The forms live on the settings page (main.settings); enrolling in two-factor sign-in has
a page of its own. A role that must use two factors (admin setting) sends its users here
after sign-in, and nowhere else, until they are enrolled.
"""

from flask import Blueprint, abort, make_response, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, logout_user

from crm import htmx as hx
from crm.blueprints.auth.forms import ChangePasswordForm, ConfirmCodeForm, PasswordCheckForm
from crm.extensions import db
from crm.permissions import requires
from crm.services import audit, sessions, two_factor, users
from crm.services.passwords import verify_password

bp = Blueprint("account", __name__, url_prefix="/settings")

# What a user who must enrol may still open.
ENROLMENT_ENDPOINTS = {
    "static",
    "auth.logout",
    "account.two_factor",
    "account.two_factor_start",
    "account.two_factor_qr",
    "account.two_factor_confirm",
}


def security_context(**extra) -> dict:
    """What the security sections of the settings page show."""
    user = current_user._get_current_object()
    context = {
        "password_form": ChangePasswordForm(formdata=None),
        "user_sessions": sessions.active_sessions(user),
        "this_session": user.current_session,
        "two_factor_on": user.two_factor_enabled,
        "recovery_left": two_factor.remaining_recovery_codes(user)
        if user.two_factor_enabled
        else 0,
    }
    context.update(extra)
    return context


@bp.before_app_request
def _enrol_first():
    if request.endpoint in ENROLMENT_ENDPOINTS or request.endpoint is None:
        return None
    if not current_user.is_authenticated or not two_factor.must_enrol(current_user):
        return None
    if request.endpoint in ("auth.login", "auth.two_factor"):
        return None
    return hx.location(url_for("account.two_factor"))


@bp.route("/password", methods=["POST"])
@requires("account.settings")
def change_password():
    user = current_user._get_current_object()
    form = ChangePasswordForm()
    if form.validate_on_submit():
        if users.change_password(user, form.current.data, form.password.data):
            audit.record("password_change", user, summary=_("Password changed"))
            db.session.commit()
            hx.toast(_("Password changed. Your other sessions are signed out."))
            return hx.location(url_for("main.settings"))
        form.current.errors.append(_("This is not your current password."))
    if not hx.is_htmx():  # without JavaScript: the first reason, back on the settings page
        errors = [error for field in form for error in field.errors]
        hx.toast(errors[0] if errors else _("This is not your current password."), "error")
        return hx.location(url_for("main.settings"))
    return hx.render_fragment(
        "main/settings.html", "password_card", status=422, **security_context(password_form=form)
    )


@bp.route("/sessions/<int:session_id>/revoke", methods=["POST"])
@requires("account.settings")
def revoke_session(session_id: int):
    user = current_user._get_current_object()
    row = sessions.session_of(user, session_id)
    if row is None:
        abort(404)
    sessions.revoke(row)
    audit.record("sessions_revoked", user, summary=row.user_agent or "")
    db.session.commit()
    if user.current_session is not None and row.id == user.current_session.id:
        logout_user()
        return hx.full_reload(url_for("auth.login"))
    hx.toast(_("That session is signed out."))
    if not hx.is_htmx():
        return hx.location(url_for("main.settings"))
    return make_response("", 200)


@bp.route("/email-tracking", methods=["POST"])
@requires("email.send")
def email_tracking():
    """ "Track when my emails are opened": the composer's default for my messages."""
    user = current_user._get_current_object()
    user.track_email_opens = request.form.get("track_email_opens") == "on"
    db.session.commit()
    hx.toast(
        _("Your emails will say when they are opened.")
        if user.track_email_opens
        else _("Your emails will not be tracked.")
    )
    if not hx.is_htmx():
        return hx.location(url_for("main.settings"))
    return hx.render_fragment("email/_tracking_setting.html", "tracking_card")


# ---- two-factor sign-in -------------------------------------------------------------


def _two_factor_page(status: int = 200, **extra):
    user = current_user._get_current_object()
    secret = two_factor.pending_secret(user)
    context = {
        "enabled": user.two_factor_enabled,
        "secret": secret,
        "required": user.role in two_factor.required_roles(),
        "confirm_form": ConfirmCodeForm(formdata=None),
        "password_form": PasswordCheckForm(formdata=None),
        "recovery_left": two_factor.remaining_recovery_codes(user),
    }
    context.update(extra)
    return hx.render("account/two_factor.html", status=status, **context)


@bp.route("/two-factor", endpoint="two_factor")
@requires("account.settings")
def two_factor_settings():
    return _two_factor_page()


@bp.route("/two-factor/start", methods=["POST"])
@requires("account.settings")
def two_factor_start():
    try:
        two_factor.begin_enrolment(current_user._get_current_object())
    except two_factor.TwoFactorError:
        return hx.location(url_for("account.two_factor"))
    db.session.commit()
    return hx.location(url_for("account.two_factor"))


@bp.route("/two-factor/qr.svg")
@requires("account.settings")
def two_factor_qr():
    user = current_user._get_current_object()
    secret = two_factor.pending_secret(user)
    if secret is None:
        abort(404)
    response = make_response(two_factor.qr_svg(two_factor.provisioning_uri(user, secret)))
    response.headers["Content-Type"] = "image/svg+xml"
    return response


def _show_codes(codes: list[str]):
    return hx.render("account/recovery_codes.html", codes=codes)


@bp.route("/two-factor/confirm", methods=["POST"])
@requires("account.settings")
def two_factor_confirm():
    user = current_user._get_current_object()
    form = ConfirmCodeForm()
    if form.validate_on_submit():
        try:
            codes = two_factor.confirm_enrolment(user, form.code.data)
        except two_factor.TwoFactorError as error:
            if str(error) == "not_enrolling":
                return hx.location(url_for("account.two_factor"))
            form.code.errors.append(_("This code is not right. Check the time on your phone."))
        else:
            db.session.commit()
            hx.toast(_("Two-factor sign-in is on."))
            return _show_codes(codes)
    return _two_factor_page(status=422, confirm_form=form)


def _password_checked(form: PasswordCheckForm) -> bool:
    if not form.validate_on_submit():
        return False
    if verify_password(current_user.password_hash, form.current.data):
        return True
    form.current.errors.append(_("This is not your current password."))
    return False


@bp.route("/two-factor/recovery-codes", methods=["POST"])
@requires("account.settings")
def two_factor_recovery_codes():
    user = current_user._get_current_object()
    form = PasswordCheckForm()
    if not user.two_factor_enabled:
        return hx.location(url_for("account.two_factor"))
    if not _password_checked(form):
        return _two_factor_page(status=422, password_form=form)
    codes = two_factor.new_recovery_codes(user)
    audit.record("two_factor", user, summary=_("New recovery codes"))
    db.session.commit()
    return _show_codes(codes)


@bp.route("/two-factor/disable", methods=["POST"])
@requires("account.settings")
def two_factor_disable():
    user = current_user._get_current_object()
    form = PasswordCheckForm()
    if user.role in two_factor.required_roles():
        form.current.errors = [_("Your role must use two-factor sign-in.")]
        return _two_factor_page(status=422, password_form=form)
    if not _password_checked(form):
        return _two_factor_page(status=422, password_form=form)
    two_factor.disable(user)
    db.session.commit()
    hx.toast(_("Two-factor sign-in is off."))
    return hx.location(url_for("account.two_factor"))
