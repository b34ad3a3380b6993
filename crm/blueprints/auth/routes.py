"""Signing in (password, then the second factor when the user has one) and out, and
accepting an invitation."""

import time
from urllib.parse import urlsplit

from flask import Blueprint, current_app, request, session, url_for
from flask_babel import gettext as _
from flask_limiter.errors import RateLimitExceeded
from flask_login import current_user, login_user, logout_user

from crm import htmx as hx
from crm.blueprints.auth.forms import LoginForm, SetPasswordForm, TwoFactorForm
from crm.extensions import db, limiter
from crm.models import User
from crm.permissions import public, requires
from crm.services import audit, sessions, two_factor, users

bp = Blueprint("auth", __name__)

# How long the second step waits for its code after the password was right.
PENDING_SECONDS = 300


def _account_and_address() -> str:
    email = (request.form.get("email") or "").strip().lower()
    return f"{email}|{request.remote_addr}"


def _pending_and_address() -> str:
    pending = session.get("two_factor") or {}
    return f"2fa|{pending.get('user')}|{request.remote_addr}"


def _safe_next(target: str | None) -> str:
    """Only same-site paths, so the login page cannot bounce a user to another site."""
    if not target:
        return url_for("main.home")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("main.home")
    return target


def _sign_in(user: User, remember: bool, next_url: str | None):
    """Open a session of its own for this browser and record the login."""
    audit.set_actor(user)
    sessions.start(user, request.remote_addr, request.user_agent.string, remember=remember)
    audit.record("login", user)
    db.session.commit()
    login_user(user, remember=remember)
    return hx.full_reload(_safe_next(next_url))


def _ask_second_factor(user: User, remember: bool, next_url: str | None):
    session["two_factor"] = {
        "user": user.id,
        "remember": bool(remember),
        "next": next_url,
        "since": int(time.time()),
    }
    return hx.location(url_for("auth.two_factor"))


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
        if user and user.two_factor_enabled:
            db.session.commit()  # a rehashed password
            return _ask_second_factor(user, form.remember.data, request.args.get("next"))
        if user:
            return _sign_in(user, form.remember.data, request.args.get("next"))
        audit.record("login_failed", entity_type="user", summary=form.email.data or "")
        db.session.commit()
        form.form_errors.append(_("Wrong email or password."))
    status = 422 if request.method == "POST" else 200
    return hx.render("auth/login.html", form=form, status=status)


def _pending_user() -> User | None:
    pending = session.get("two_factor")
    if not pending or time.time() - pending.get("since", 0) > PENDING_SECONDS:
        return None
    user = db.session.get(User, pending.get("user"))
    return user if user and user.active and user.two_factor_enabled else None


@bp.route("/login/two-factor", methods=["GET", "POST"], endpoint="two_factor")
@public
@limiter.limit(lambda: current_app.config["LOGIN_LIMIT_PER_ADDRESS"], methods=["POST"])
@limiter.limit(
    lambda: current_app.config["LOGIN_LIMIT_PER_ACCOUNT"],
    key_func=_pending_and_address,
    methods=["POST"],
    deduct_when=lambda response: response.status_code == 422,
)
def second_step():
    """The second step: a code from the authenticator app, or a recovery code."""
    user = _pending_user()
    if user is None:
        session.pop("two_factor", None)
        return hx.location(url_for("auth.login"))
    form = TwoFactorForm()
    if form.validate_on_submit():
        kind = two_factor.verify_second_factor(user, form.code.data)
        if kind:
            pending = session.pop("two_factor")
            if kind == "recovery":
                left = two_factor.remaining_recovery_codes(user)
                hx.toast(_("Recovery code used: %(num)d left.", num=left), "warning")
            return _sign_in(user, pending.get("remember", False), pending.get("next"))
        audit.record("login_failed", user, summary=_("Wrong second-factor code"))
        db.session.commit()
        form.code.errors.append(_("This code is not right, or was already used."))
    status = 422 if request.method == "POST" else 200
    return hx.render("auth/two_factor.html", form=form, status=status)


@bp.errorhandler(RateLimitExceeded)
def too_many_attempts(error):
    message = _("Too many sign-in attempts from here. Please wait a few minutes and try again.")
    if request.endpoint == "auth.two_factor":
        form = TwoFactorForm()
        form.code.errors = [message]
        return hx.render("auth/two_factor.html", form=form, status=429)
    form = LoginForm()
    form.form_errors.append(message)
    return hx.render("auth/login.html", form=form, status=429)


@bp.route("/logout", methods=["POST"])
@requires("home.view")
def logout():
    if current_user.current_session is not None:
        sessions.revoke(current_user.current_session)
    audit.record("logout", current_user._get_current_object())
    db.session.commit()
    logout_user()
    return hx.full_reload(url_for("auth.login"))


@bp.route("/logout-everywhere", methods=["POST"])
@requires("account.settings")
def logout_everywhere():
    user = current_user._get_current_object()
    user.end_all_sessions()
    audit.record("sessions_revoked", user, summary=_("Signed out everywhere"))
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
        hx.toast(_("Welcome, %(name)s! Your password is set.", name=user.first_name))
        if user.two_factor_enabled:  # a new password is not a way around the second factor
            db.session.commit()
            return _ask_second_factor(user, False, url_for("main.home"))
        return _sign_in(user, False, url_for("main.home"))
    status = 422 if request.method == "POST" else 200
    return hx.render("auth/invitation.html", form=form, invited=user, status=status)
