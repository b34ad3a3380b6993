"""Mailboxes: the shared ones (admins) and each user's own, with a connection check."""

from flask import Blueprint, abort, make_response, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from crm import htmx as hx
from crm.blueprints.mailboxes.forms import MailboxForm, SharedMailboxForm
from crm.extensions import db
from crm.models import Mailbox, QuarantinedEmail
from crm.permissions import requires
from crm.services import mailboxes as service
from crm.services import users

bp = Blueprint("mailboxes", __name__, url_prefix="/admin/mailboxes")

PURPOSE_LABELS = {
    "support": _l("Support"),
    "sales": _l("Sales"),
    "personal": _l("Personal"),
    "other": _l("Other"),
}
FORM_PARTIALS = {"mailbox-form": "form"}


@bp.app_context_processor
def _labels():
    return {"mailbox_purpose_labels": PURPOSE_LABELS}


# ---- forms ---------------------------------------------------------------------------


def _shared_form(mailbox: Mailbox | None = None, formdata=None) -> SharedMailboxForm:
    if formdata is not None:
        form = SharedMailboxForm()
    elif mailbox is not None:
        data = service.settings_of(mailbox)
        data["team"] = str(mailbox.team_id or "")
        form = SharedMailboxForm(formdata=None, data=data)
    else:
        form = SharedMailboxForm(formdata=None)
    form.set_teams(users.all_teams())
    return form


def _own_form(mailbox: Mailbox | None, formdata=None) -> MailboxForm:
    if formdata is not None:
        return MailboxForm()
    if mailbox is not None:
        return MailboxForm(formdata=None, data=service.settings_of(mailbox))
    return MailboxForm(
        formdata=None, data={"address": current_user.email, "name": current_user.name}
    )


def _form_context(form, mailbox: Mailbox | None, mine: bool, **extra) -> dict:
    context = {
        "form": form,
        "mailbox": mailbox,
        "mine": mine,
        "check": None,
        "waiting": _waiting(mailbox),
        "passwords": {d: service.has_password(mailbox, d) for d in ("imap", "smtp")},
    }
    context.update(extra)
    return context


def _form_page(form, mailbox: Mailbox | None, *, mine: bool = False, status: int = 200, **extra):
    context = _form_context(form, mailbox, mine, **extra)
    return hx.render("mailboxes/form.html", FORM_PARTIALS, status=status, **context)


def _waiting(mailbox: Mailbox | None) -> int:
    if mailbox is None or mailbox.id is None:
        return 0
    return service.waiting_count(mailbox)


def _shared_or_404(mailbox_id: int) -> Mailbox:
    mailbox = service.shared_mailbox(mailbox_id)
    if mailbox is None:
        abort(404)
    return mailbox


# ---- shared mailboxes (admins) -------------------------------------------------------


@bp.route("")
@requires("mailboxes.manage")
def index():
    return hx.render("mailboxes/index.html", rows=service.shared_mailboxes())


@bp.route("/new")
@requires("mailboxes.manage")
def new():
    return _form_page(_shared_form(), None)


@bp.route("", methods=["POST"])
@requires("mailboxes.manage")
def create():
    form = _shared_form(formdata=request.form)
    mailbox = _save_shared(form, None)
    if mailbox is None:
        return _form_page(form, None, status=422)
    hx.toast(_("Mailbox %(address)s added.", address=mailbox.address))
    return hx.location(url_for("mailboxes.edit", mailbox_id=mailbox.id))


def _save_shared(form: SharedMailboxForm, mailbox: Mailbox | None) -> Mailbox | None:
    if not form.validate_settings(stored=mailbox):
        return None
    try:
        saved = service.save_shared(mailbox, form.settings())
    except service.MailboxRefused as refused:
        db.session.rollback()
        _refusal(form, str(refused))
        return None
    db.session.commit()
    return saved


def _refusal(form, what: str) -> None:
    if what == "address":
        form.address.errors = [_("Another mailbox already has this address.")]
    else:
        form.purpose.errors = [_("Pick what this mailbox is for.")]


@bp.route("/<int:mailbox_id>")
@requires("mailboxes.manage")
def edit(mailbox_id: int):
    mailbox = _shared_or_404(mailbox_id)
    return _form_page(_shared_form(mailbox), mailbox)


@bp.route("/<int:mailbox_id>", methods=["POST"])
@requires("mailboxes.manage")
def update(mailbox_id: int):
    mailbox = _shared_or_404(mailbox_id)
    form = _shared_form(formdata=request.form)
    if _save_shared(form, mailbox) is None:
        db.session.refresh(mailbox)
        return _form_page(form, mailbox, status=422)
    hx.toast(_("Mailbox %(address)s saved.", address=mailbox.address))
    return _form_page(_shared_form(mailbox), mailbox)


@bp.route("/check", methods=["POST"])
@requires("mailboxes.manage")
def check_new():
    """Test the settings typed in the new-mailbox form, without saving anything."""
    return _check(_shared_form(formdata=request.form), None)


@bp.route("/<int:mailbox_id>/check", methods=["POST"])
@requires("mailboxes.manage")
def check(mailbox_id: int):
    """Test a shared mailbox: its saved settings (from the list), or those typed in its
    form (an empty password there means the stored one)."""
    mailbox = _shared_or_404(mailbox_id)
    if "address" not in request.form:
        return _check_result(service.check_connection(mailbox), mailbox, row=True)
    return _check(_shared_form(formdata=request.form), mailbox)


def _check(form: MailboxForm, mailbox: Mailbox | None, mine: bool = False):
    if not form.validate_settings(stored=mailbox, for_check=True):
        if not hx.is_htmx():
            return _form_page(form, mailbox, mine=mine, status=422)
        # The button aimed at the result slot: the errors belong beside the fields.
        response = hx.render_fragment(
            "mailboxes/form.html", "form", status=422, **_form_context(form, mailbox, mine)
        )
        response.headers["HX-Retarget"] = "#mailbox-form"
        response.headers["HX-Reswap"] = "outerHTML"
        return response
    trial = _trial(mailbox, form.settings())
    result = service.check_connection(trial)
    if not hx.is_htmx():
        return _form_page(form, mailbox, mine=mine, check=result)
    return _check_result(result, mailbox)


def _trial(mailbox: Mailbox | None, settings: dict) -> Mailbox:
    """A mailbox that is never saved: the typed settings over the stored passwords."""
    trial = Mailbox()
    if mailbox is not None:
        trial.imap_password, trial.smtp_password = mailbox.imap_password, mailbox.smtp_password
    return service.apply_settings(trial, settings)


def _check_result(result, mailbox: Mailbox | None, row: bool = False):
    hx.toast(
        _("Both connections work.") if result.ok else _("The connection check found a problem."),
        "success" if result.ok else "error",
    )
    return hx.render_fragment(
        "mailboxes/_check.html", "check", check=result, mailbox=mailbox, row=row
    )


@bp.route("/<int:mailbox_id>/sync", methods=["POST"])
@requires("mailboxes.manage")
def sync(mailbox_id: int):
    mailbox = _shared_or_404(mailbox_id)
    return _sync(mailbox, url_for("mailboxes.index"))


def _sync(mailbox: Mailbox, back: str):
    if not mailbox.active or not mailbox.imap_host:
        return hx.error_response(422, _("This mailbox is inactive or has no IMAP server."))
    service.request_sync(mailbox)
    hx.toast(
        _("Sync of %(address)s queued: new mail arrives in a moment.", address=mailbox.address)
    )
    if not hx.is_htmx():
        return hx.location(back)
    return make_response("", 204)


@bp.route("/<int:mailbox_id>/deactivate", methods=["POST"])
@requires("mailboxes.manage")
def deactivate(mailbox_id: int):
    return _set_active(_shared_or_404(mailbox_id), False)


@bp.route("/<int:mailbox_id>/activate", methods=["POST"])
@requires("mailboxes.manage")
def activate(mailbox_id: int):
    return _set_active(_shared_or_404(mailbox_id), True)


def _set_active(mailbox: Mailbox, active: bool):
    service.set_active(mailbox, active)
    db.session.commit()
    if active:
        hx.toast(_("%(address)s is active again.", address=mailbox.address))
    else:
        hx.toast(
            _("%(address)s is deactivated: its mail is no longer read.", address=mailbox.address)
        )
    if not hx.is_htmx():
        return hx.location(url_for("mailboxes.index"))
    waiting = dict((m.id, count) for m, count in service.shared_mailboxes())
    return hx.render_fragment(
        "mailboxes/index.html", "row", mailbox=mailbox, waiting=waiting.get(mailbox.id, 0)
    )


# ---- the quarantine ------------------------------------------------------------------


def _manageable_or_404(mailbox: Mailbox | None) -> Mailbox:
    """Shared mailboxes: admins. A personal one: its owner only. Anyone else: 404."""
    if mailbox is None or not service.may_manage(current_user, mailbox):
        abort(404)
    return mailbox


def _quarantined_or_404(quarantine_id: int) -> QuarantinedEmail:
    item = db.session.get(QuarantinedEmail, quarantine_id)
    if item is None:
        abort(404)
    _manageable_or_404(item.mailbox)
    return item


@bp.route("/<int:mailbox_id>/quarantine")
@requires("mailboxes.own")
def quarantine(mailbox_id: int):
    mailbox = _manageable_or_404(db.session.get(Mailbox, mailbox_id))
    show_all = request.args.get("all") == "1"
    # Not "items": base.html sets that name for the sidebar.
    entries = service.quarantined(mailbox, include_handled=show_all)
    return hx.render(
        "mailboxes/quarantine.html",
        mailbox=mailbox,
        entries=entries,
        sizes=service.quarantine_sizes(entries),
        show_all=show_all,
    )


@bp.route("/quarantine/<int:quarantine_id>/raw")
@requires("mailboxes.own")
def quarantine_raw(quarantine_id: int):
    """The message exactly as received, to open in a mail client: never shown inline."""
    item = _quarantined_or_404(quarantine_id)
    response = make_response(item.raw or b"")
    response.headers["Content-Type"] = "message/rfc822"
    response.headers["Content-Disposition"] = f'attachment; filename="{service.eml_filename(item)}"'
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.route("/quarantine/<int:quarantine_id>/handled", methods=["POST"])
@requires("mailboxes.own")
def quarantine_handled(quarantine_id: int):
    item = _quarantined_or_404(quarantine_id)
    service.mark_handled(item)
    db.session.commit()
    hx.toast(_("Marked as handled."))
    if not hx.is_htmx():
        return hx.location(url_for("mailboxes.quarantine", mailbox_id=item.mailbox_id))
    sizes = service.quarantine_sizes([item])
    return hx.render_fragment(
        "mailboxes/quarantine.html", "quarantined_row", item=item, sizes=sizes
    )


# ---- the user's own mailbox ----------------------------------------------------------


@bp.route("/mine")
@requires("mailboxes.own")
def mine():
    mailbox = service.own_mailbox(current_user)
    return _form_page(_own_form(mailbox), mailbox, mine=True)


@bp.route("/mine", methods=["POST"])
@requires("mailboxes.own")
def save_mine():
    mailbox = service.own_mailbox(current_user)
    form = _own_form(mailbox, formdata=request.form)
    if form.validate_settings(stored=mailbox):
        try:
            mailbox = service.save_own(current_user, form.settings())
        except service.MailboxRefused:
            db.session.rollback()
            form.address.errors = [_("Another mailbox already has this address.")]
        else:
            db.session.commit()
            hx.toast(_("Your mailbox is saved."))
            return _form_page(_own_form(mailbox), mailbox, mine=True)
    mailbox = service.own_mailbox(current_user)
    return _form_page(form, mailbox, mine=True, status=422)


@bp.route("/mine/check", methods=["POST"])
@requires("mailboxes.own")
def check_mine():
    mailbox = service.own_mailbox(current_user)
    return _check(_own_form(mailbox, formdata=request.form), mailbox, mine=True)


@bp.route("/mine/sync", methods=["POST"])
@requires("mailboxes.own")
def sync_mine():
    mailbox = service.own_mailbox(current_user)
    if mailbox is None:
        return hx.error_response(422, _("Save your mailbox first."))
    return _sync(mailbox, url_for("mailboxes.mine"))
