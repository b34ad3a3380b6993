"""Administration: users (invite, role, deactivate) and the state of the worker."""

from flask import Blueprint, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from crm import htmx as hx
from crm.blueprints.admin.forms import InviteForm, RoleForm, SkillsForm
from crm.extensions import db
from crm.form_helpers import choices
from crm.labels import ROLE_LABELS
from crm.models import Team, User
from crm.permissions import requires
from crm.services import users

bp = Blueprint("admin", __name__, url_prefix="/admin")

ACCOUNT_ERRORS = {
    "duplicate": lambda: _("A user with this email already exists."),
    "last_admin": lambda: _("There must stay at least one active administrator."),
    "self": lambda: _("You cannot deactivate yourself."),
    "unknown role": lambda: _("Unknown role."),
}


def _invite_form(formdata=None) -> InviteForm:
    form = InviteForm(formdata=formdata)
    form.team.choices = choices(
        [("", _("No team"))] + [(str(t.id), t.name) for t in users.all_teams()]
    )
    return form


def _users_context(**extra) -> dict:
    context = {"users": users.all_users(), "invite_form": _invite_form(), "invitation": None}
    context.update(extra)
    return context


@bp.route("/users")
@requires("users.manage")
def list_users():
    return hx.render("admin/users.html", **_users_context())


@bp.route("/users", methods=["POST"])
@requires("users.manage")
def invite():
    form = _invite_form(request.form)
    if form.validate_on_submit():
        team = db.session.get(Team, int(form.team.data)) if form.team.data else None
        try:
            user = users.invite_user(form.email.data, form.name.data, form.role.data, team)
        except users.AccountError as error:
            form.email.errors.append(ACCOUNT_ERRORS[str(error)]())
        else:
            db.session.commit()
            hx.toast(_("%(name)s invited. Send them the link shown.", name=user.name))
            link = url_for(
                "auth.accept_invitation", token=users.invitation_token(user), _external=True
            )
            return hx.render(
                "admin/users.html",
                {"users-panel": "panel"},
                **_users_context(invitation=(user, link)),
            )
    return hx.render(
        "admin/users.html", {"users-panel": "panel"}, status=422, **_users_context(invite_form=form)
    )


def _user_or_404(user_id: int) -> User:
    return db.get_or_404(User, user_id)


def _answer(user: User, error: str | None = None, invitation=None):
    """The updated row under htmx, the whole page otherwise."""
    if not hx.is_htmx():
        return hx.location(url_for("admin.list_users"))
    return hx.render_fragment(
        "admin/_user_row.html",
        "row",
        u=user,
        error=error,
        invitation=invitation,
        status=422 if error else 200,
    )


@bp.route("/users/<int:user_id>/role", methods=["POST"])
@requires("users.manage")
def change_role(user_id: int):
    user = _user_or_404(user_id)
    form = RoleForm()
    if not form.validate_on_submit():
        return _answer(user, _("Unknown role."))
    try:
        users.change_role(current_user, user, form.role.data)
    except users.AccountError as error:
        db.session.rollback()
        return _answer(user, ACCOUNT_ERRORS[str(error)]())
    db.session.commit()
    hx.toast(_("%(name)s is now %(role)s.", name=user.name, role=ROLE_LABELS[user.role]))
    return _answer(user)


@bp.route("/users/<int:user_id>/skills", methods=["POST"])
@requires("users.manage")
def change_skills(user_id: int):
    """What a technician can do (gas, boilers, ...): the dispatch board filters and warns by it."""
    from crm.services.interventions import MAX_SKILL_LENGTH, MAX_SKILLS, parse_skills

    user = _user_or_404(user_id)
    form = SkillsForm()
    try:
        skills = parse_skills(form.skills.data or "") if form.validate_on_submit() else None
    except ValueError:
        skills = None
    if skills is None:
        return _answer(
            user,
            _(
                "At most %(count)d skills of %(length)d characters, separated by commas.",
                count=MAX_SKILLS,
                length=MAX_SKILL_LENGTH,
            ),
        )
    user.skills = skills or None
    db.session.commit()
    hx.toast(_("Skills of %(name)s saved.", name=user.name))
    return _answer(user)


@bp.route("/users/<int:user_id>/deactivate", methods=["POST"])
@requires("users.manage")
def deactivate(user_id: int):
    user = _user_or_404(user_id)
    try:
        users.deactivate(current_user, user)
    except users.AccountError as error:
        db.session.rollback()
        return _answer(user, ACCOUNT_ERRORS[str(error)]())
    db.session.commit()
    hx.toast(_("%(name)s is deactivated and signed out everywhere.", name=user.name))
    return _answer(user)


@bp.route("/users/<int:user_id>/reactivate", methods=["POST"])
@requires("users.manage")
def reactivate(user_id: int):
    user = _user_or_404(user_id)
    users.reactivate(user)
    db.session.commit()
    hx.toast(_("%(name)s can sign in again.", name=user.name))
    return _answer(user)


@bp.route("/users/<int:user_id>/invitation", methods=["POST"])
@requires("users.manage")
def new_invitation(user_id: int):
    """A fresh sign-in link (for a lost invitation or a forgotten password)."""
    user = _user_or_404(user_id)
    user.end_all_sessions()  # voids earlier links too
    db.session.commit()
    link = url_for("auth.accept_invitation", token=users.invitation_token(user), _external=True)
    return _answer(user, invitation=link)


# ---- the System page: worker health ------------------------------------------------

SYSTEM_PARTIALS = {"system-counts": "counts", "failed-jobs": "failed"}


def _system_context() -> dict:
    from crm.services import mailboxes, worker_health

    return {
        "workers": worker_health.workers(),
        "queues": worker_health.queue_counts(),
        "failed": worker_health.failed_jobs(),
        "periodic": worker_health.periodic_jobs(),
        "cron_running": worker_health.cron_running(),
        "mailboxes": mailboxes.every_mailbox(),
        "poll_seconds": SYSTEM_POLL_SECONDS,
    }


SYSTEM_POLL_SECONDS = 5


@bp.route("/system")
@requires("system.view")
def system():
    return hx.render("admin/system.html", SYSTEM_PARTIALS, **_system_context())


def _failed_jobs_answer(done: bool, message: str):
    """The refreshed counts and failed jobs under htmx, the page otherwise."""
    if not done:
        return hx.error_response(404, _("This job is no longer among the failed ones."))
    hx.toast(message)
    if not hx.is_htmx():
        return hx.location(url_for("admin.system"))
    return hx.render_fragment("admin/system.html", "failed", "counts_oob", **_system_context())


@bp.route("/system/jobs/<job_id>/retry", methods=["POST"])
@requires("system.view")
def retry_job(job_id: str):
    from crm.services import worker_health

    return _failed_jobs_answer(worker_health.retry(job_id), _("The job is queued again."))


@bp.route("/system/jobs/<job_id>/delete", methods=["POST"])
@requires("system.view")
def delete_job(job_id: str):
    from crm.services import worker_health

    return _failed_jobs_answer(worker_health.delete(job_id), _("The failed job is deleted."))


@bp.route("/system/mailboxes/<int:mailbox_id>/sync", methods=["POST"])
@requires("system.view")
def sync_mailbox(mailbox_id: int):
    """Any active mailbox, shared or personal: syncing shows nobody its mail."""
    from crm.models import Mailbox
    from crm.services import mailboxes

    mailbox = db.get_or_404(Mailbox, mailbox_id)
    if not mailbox.active or not mailbox.imap_host:
        return hx.error_response(422, _("This mailbox is inactive or has no IMAP server."))
    mailboxes.request_sync(mailbox)
    hx.toast(
        _("Sync of %(address)s queued: new mail arrives in a moment.", address=mailbox.address)
    )
    if not hx.is_htmx():
        return hx.location(url_for("admin.system"))
    return "", 204


from crm.blueprints.admin import pipelines, security  # noqa: E402,F401  (add their routes to bp)
