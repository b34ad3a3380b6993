"""Signing in and out, and accepting an invitation."""

from urllib.parse import urlsplit

from flask import Blueprint, current_app, request, url_for
from flask_babel import gettext as _
from flask_limiter.errors import RateLimitExceeded
from flask_login import current_user, login_user, logout_user

from crm import htmx as hx
from crm.blueprints.auth.forms import LoginForm, SetPasswordForm
from crm.extensions import db, limiter
from crm.permissions import public, requires
from crm.services import users

bp = Blueprint("auth", __name__)


def _account_and_address() -> str:
    email = (request.form.get("email") or "").strip().lower()
    return f"{email}|{request.remote_addr}"


def _safe_next(target: str | None) -> str:
    """Only same-site paths, so the login page cannot bounce a user to another site."""
    if not target:
        return url_for("main.home")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("main.home")
    return target


@bp.route("/login", methods=["GET", "POST"])
@public
@limiter.limit(lambda: current_app.config["LOGIN_LIMIT_PER_ADDRESS"], methods=["POST"])
@limiter.limit(
    lambda: current_app.config["LOGIN_LIMIT_PER_ACCOUNT"],
    key_func=_account_and_address,
    methods=["POST"],
    deduct_when=lambda response: response.status_code == 422,
)
def login():
    if current_user.is_authenticated:
        return hx.location(url_for("main.home"))
    form = LoginForm()
    if form.validate_on_submit():
        user = users.authenticate(form.email.data, form.password.data)
        if user:
            db.session.commit()
            login_user(user, remember=form.remember.data)
            return hx.full_reload(_safe_next(request.args.get("next")))
        form.form_errors.append(_("Wrong email or password."))
    status = 422 if request.method == "POST" else 200
    return hx.render("auth/login.html", form=form, status=status)


@bp.errorhandler(RateLimitExceeded)
def too_many_attempts(error):
    form = LoginForm()
    form.form_errors.append(
        _("Too many sign-in attempts from here. Please wait a few minutes and try again.")
    )
    return hx.render("auth/login.html", form=form, status=429)


@bp.route("/logout", methods=["POST"])
@requires("home.view")
def logout():
    logout_user()
    return hx.full_reload(url_for("auth.login"))


@bp.route("/logout-everywhere", methods=["POST"])
@requires("account.settings")
def logout_everywhere():
    current_user.end_all_sessions()
    db.session.commit()
    logout_user()
    return hx.full_reload(url_for("auth.login"))


@bp.route("/invitation/<token>", methods=["GET", "POST"])
@public
def accept_invitation(token: str):
    user = users.user_for_invitation(token)
    if user is None:
        return hx.render("auth/invitation_invalid.html", status=404)
    form = SetPasswordForm()
    if form.validate_on_submit():
        users.set_password(user, form.password.data)
        db.session.commit()
        login_user(user)
        hx.toast(_("Welcome, %(name)s! Your password is set.", name=user.first_name))
        return hx.full_reload(url_for("main.home"))
    status = 422 if request.method == "POST" else 200
    return hx.render("auth/invitation.html", form=form, invited=user, status=status)
