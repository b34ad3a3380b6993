"""Email: write from the CRM, read a message, its attachments, and the open-tracking pixel."""

import base64
import io
import re

from flask import Blueprint, abort, current_app, make_response, request, send_file, url_for
from flask_babel import gettext as _
from flask_login import current_user

from crm import htmx as hx
from crm.blueprints.email.forms import DELIVERY_LABELS, PRIVACY_LABELS, ComposeForm, PrivacyForm
from crm.extensions import db
from crm.models import Company, Contact, Deal, EmailAttachment, EmailTemplate, Incident
from crm.permissions import get_or_404_for, public, requires
from crm.services import canned_responses, email_compose, outbox

bp = Blueprint("email", __name__, url_prefix="/email")

RECORDS = {"contact": Contact, "company": Company, "deal": Deal, "incident": Incident}
RECORD_PAGES = {
    "contact": ("contacts.detail", "contact_id"),
    "company": ("companies.detail", "company_id"),
    "deal": ("deals.detail", "deal_id"),
    "incident": ("incidents.detail", "incident_id"),
}
# A transparent 1x1 GIF.
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
CONTENT_TYPE = re.compile(r"^[\w.+-]+/[\w.+-]+$")
BODY_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:{images}; frame-ancestors 'self'"
)


# ---- for the other pages' templates -----------------------------------------------------


bp.add_app_template_global(DELIVERY_LABELS, "delivery_labels")


@bp.app_template_global("compose_url")
def compose_url(record) -> str:
    kind = type(record).__name__.lower()
    return url_for("email.compose", **{f"{kind}_id": record.id})


# ---- composing --------------------------------------------------------------------------


def _record_from_args():
    for kind, model in RECORDS.items():
        record_id = request.args.get(f"{kind}_id", type=int)
        if record_id:
            return get_or_404_for(current_user, model, record_id)
    return _record_from_key(request.values.get("record"))


def _record_from_key(key: str | None):
    kind, _sep, raw_id = (key or "").partition(":")
    if kind not in RECORDS or not raw_id.isdigit():
        return None
    return get_or_404_for(current_user, RECORDS[kind], int(raw_id))


def _form(about: email_compose.About, formdata=None) -> ComposeForm:
    user = current_user._get_current_object()
    mailboxes = email_compose.sender_choices(user)
    if formdata is not None:
        form = ComposeForm(formdata=formdata)
    else:
        suggested = email_compose.recipients(about)
        form = ComposeForm(
            formdata=None,
            data={
                "record": about.key,
                "mailbox": str(mailboxes[0].id) if mailboxes else "",
                "to": suggested[0] if suggested else "",
                "track_opens": user.track_email_opens and email_compose.may_track(about.contact),
                "privacy": outbox.default_privacy(mailboxes[0] if mailboxes else None),
            },
        )
    form.mailbox.choices = [(str(m.id), str(m)) for m in mailboxes] or [
        ("", current_app.config["MAIL_FROM"])
    ]
    form.template.choices = [("", _("No template"))] + [
        (str(t.id), t.name) for t in email_compose.templates()
    ]
    form.mailboxes = mailboxes
    return form


def _context(form: ComposeForm, about: email_compose.About, **extra) -> dict:
    context = {
        "form": form,
        "about": about,
        "suggestions": email_compose.recipients(about),
        "may_track": email_compose.may_track(about.contact),
        "max_bytes": current_app.config["MAIL_ATTACHMENT_MAX_BYTES"],
        "max_files": email_compose.MAX_ATTACHMENTS,
        "attachment_error": None,
        "record_url": _record_page(about),
        "record_name": _record_name(about.record),
    }
    context.update(extra)
    return context


@bp.route("/compose")
@requires("email.send")
def compose():
    about = email_compose.about(_record_from_args())
    return hx.render("email/compose.html", **_context(_form(about), about))


@bp.route("/compose/template")
@requires("email.send")
def fill_template():
    """The subject and text of the chosen template, filled for the record (gaps kept)."""
    about = email_compose.about(_record_from_key(request.args.get("record")))
    form = _form(about)
    template = None
    if request.args.get("template", type=int):
        template = db.session.get(EmailTemplate, request.args.get("template", type=int))
    if template is not None:
        filled = canned_responses.render(template, _placeholders(about))
        form.subject.data, form.body.data = filled.subject, filled.body
        form.template.data = str(template.id)
    hx.trigger("email:preview")
    return hx.render_fragment("email/compose.html", "message_fields", form=form)


def _placeholders(about: email_compose.About):
    return canned_responses.PlaceholderContext(
        user=current_user._get_current_object(), **about.as_kwargs()
    )


@bp.route("/compose/preview", methods=["POST"])
@requires("email.send")
def preview():
    """The message as it will go out: placeholders filled, the missing ones marked."""
    about = email_compose.about(_record_from_key(request.form.get("record")))
    filled = canned_responses.render_subject_body(
        request.form.get("subject", ""), request.form.get("body", ""), _placeholders(about)
    )
    return hx.render_fragment(
        "email/compose.html",
        "preview",
        subject=_marked(filled.subject),
        body=_marked(filled.body),
        missing=filled.missing,
    )


def _marked(text: str) -> list[tuple[str, bool]]:
    """Text cut into (piece, is_a_gap) for the preview to highlight the gaps."""
    pieces, last = [], 0
    for match in canned_responses.PLACEHOLDER.finditer(text):
        pieces.append((text[last : match.start()], False))
        pieces.append((match.group(0), True))
        last = match.end()
    pieces.append((text[last:], False))
    return [piece for piece in pieces if piece[0]]


def _attachments() -> tuple[list[outbox.Attachment], str | None, int]:
    """The uploaded files, or why they are refused and with which status."""
    files = [f for f in request.files.getlist("attachments") if f and f.filename]
    if len(files) > email_compose.MAX_ATTACHMENTS:
        message = _("At most %(count)s attachments.", count=email_compose.MAX_ATTACHMENTS)
        return [], message, 422
    limit = current_app.config["MAIL_ATTACHMENT_MAX_BYTES"]
    found, total = [], 0
    for upload in files:
        content = upload.read(limit + 1 - total)
        total += len(content)
        if total > limit:
            megabytes = limit // (1024 * 1024)
            message = _("Attachments are limited to %(size)s MB in all.", size=megabytes)
            return [], message, 413
        content_type = upload.mimetype if CONTENT_TYPE.match(upload.mimetype or "") else ""
        found.append(outbox.Attachment(_file_name(upload.filename), content_type, content))
    return found, None, 200


def _file_name(name: str) -> str:
    name = re.split(r"[\\/]", name)[-1]
    name = "".join(ch for ch in name if ch.isprintable() and ch not in '"')
    return name.strip()[:255] or "attachment"


@bp.route("/compose", methods=["POST"])
@requires("email.send")
def send():
    about = email_compose.about(_record_from_key(request.form.get("record")))
    form = _form(about, formdata=request.form)
    valid = form.validate_on_submit()
    to, bad_to = email_compose.parse_addresses(form.to.data)
    cc, bad_cc = email_compose.parse_addresses(form.cc.data)
    if bad_to:
        form.to.errors.append(_("Not an email address: %(list)s", list=", ".join(bad_to)))
    elif form.to.data and not to:
        form.to.errors.append(_("Say whom to send it to."))
    if bad_cc:
        form.cc.errors.append(_("Not an email address: %(list)s", list=", ".join(bad_cc)))
    if len(to) + len(cc) > email_compose.MAX_RECIPIENTS:
        form.to.errors.append(
            _("At most %(count)s recipients.", count=email_compose.MAX_RECIPIENTS)
        )
    mailbox = None
    if form.mailbox.data:
        mailbox = next((m for m in form.mailboxes if str(m.id) == form.mailbox.data), None)
        if mailbox is None:
            form.mailbox.errors.append(_("Pick one of your mailboxes."))
    filled = canned_responses.render_subject_body(
        form.subject.data or "", form.body.data or "", _placeholders(about)
    )
    if filled.missing:
        form.body.errors.append(
            _(
                "Fill in the gaps before sending: %(gaps)s",
                gaps=", ".join(filled.missing),
            )
        )
    attachments, attachment_error, status = _attachments()
    if not valid or attachment_error or any(f.errors for f in form):
        return hx.render(
            "email/compose.html",
            {"compose": "form"},
            status=status if attachment_error and status == 413 else 422,
            **_context(form, about, attachment_error=attachment_error),
        )
    track = bool(form.track_opens.data) and email_compose.may_track(about.contact)
    message = outbox.queue_message(
        current_user._get_current_object(),
        mailbox,
        to,
        cc,
        filled.subject,
        filled.body,
        attachments=attachments,
        track_opens=track,
        privacy=form.privacy.data,
        **about.as_kwargs(),
    )
    db.session.commit()
    hx.toast(_("Email on its way to %(to)s.", to=", ".join(to)))
    return hx.location(_record_page(about) or url_for("email.message", message_id=message.id))


def _record_name(record) -> str:
    if isinstance(record, Deal):
        return record.title
    if isinstance(record, Incident):
        return f"{record.reference} {record.subject}"
    return record.name if record is not None else ""


def _record_page(about: email_compose.About) -> str | None:
    if about.record is None:
        return None
    endpoint, arg = RECORD_PAGES[type(about.record).__name__.lower()]
    return url_for(endpoint, **{arg: about.record.id})


# ---- reading ----------------------------------------------------------------------------


def _message_or_404(message_id: int):
    message = email_compose.load_for_page(current_user._get_current_object(), message_id)
    if message is None:
        abort(404)
    return message


def _routing_reason(message) -> str | None:
    if not message.routing:
        return None
    try:
        from crm.services.mail_routing import describe

        return describe(message.routing)
    except (ImportError, NotImplementedError):
        return ", ".join(f"{key}: {value}" for key, value in message.routing.items())


def _message_context(message, **extra) -> dict:
    user = current_user._get_current_object()
    context = {
        "message": message,
        "thread": email_compose.thread_messages(user, message),
        "routing_reason": _routing_reason(message),
        "may_retry": email_compose.may_retry(user, message),
        "may_change_privacy": email_compose.may_change_privacy(user, message),
        "privacy_form": PrivacyForm(formdata=None, data={"privacy": message.privacy}),
        "privacy_labels": PRIVACY_LABELS,
        "images": request.args.get("images") == "1",
    }
    context.update(extra)
    return context


@bp.route("/messages/<int:message_id>")
@requires("email.view")
def message(message_id: int):
    message = _message_or_404(message_id)
    return hx.render("email/message.html", **_message_context(message))


@bp.route("/messages/<int:message_id>/body")
@requires("email.view")
def body(message_id: int):
    """The message's HTML alone, for the page's sandboxed frame, under a CSP of its own:
    no script, no request anywhere, remote images only after "Show images"."""
    message = _message_or_404(message_id)
    images = request.args.get("images") == "1"
    html = message.html_body or outbox.text_to_html(message.text_body or "")
    if images:
        # The sanitizer parked remote image addresses in data-remote-src (never loaded).
        html = html.replace("data-remote-src=", "src=")
    page = f'<!doctype html><meta charset="utf-8"><base target="_blank">{html}'
    response = make_response(page)
    response.headers["Content-Type"] = "text/html; charset=utf-8"
    response.headers["Content-Security-Policy"] = BODY_CSP.format(
        images=" http: https:" if images else ""
    )
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    # Remote images must not learn which message (or CRM) they are shown in.
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.route("/messages/<int:message_id>/attachments/<int:attachment_id>")
@requires("email.view")
def attachment(message_id: int, attachment_id: int):
    message = _message_or_404(message_id)
    found = db.session.scalars(
        db.select(EmailAttachment).where(
            EmailAttachment.id == attachment_id, EmailAttachment.message_id == message.id
        )
    ).one_or_none()
    if found is None:
        abort(404)
    response = send_file(
        io.BytesIO(found.content),
        mimetype=found.content_type or "application/octet-stream",
        as_attachment=True,
        download_name=found.filename,
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.route("/messages/<int:message_id>/retry", methods=["POST"])
@requires("email.send")
def retry(message_id: int):
    message = _message_or_404(message_id)
    if not email_compose.may_retry(current_user._get_current_object(), message):
        if message.status != "failed":
            return hx.error_response(422, _("Only a failed email can be sent again."))
        abort(403)
    outbox.retry(message)
    db.session.commit()
    hx.toast(_("Sending again."))
    return hx.location(url_for("email.message", message_id=message_id))


@bp.route("/messages/<int:message_id>/privacy", methods=["POST"])
@requires("email.view")
def change_privacy(message_id: int):
    message = _message_or_404(message_id)
    if not email_compose.may_change_privacy(current_user._get_current_object(), message):
        abort(403)
    form = PrivacyForm()
    if not form.validate_on_submit():
        return hx.error_response(422, _("Pick who can read it."))
    message.privacy = form.privacy.data
    db.session.commit()
    hx.toast(_("Who can read it: %(level)s.", level=PRIVACY_LABELS[message.privacy]))
    return hx.location(url_for("email.message", message_id=message_id))


# ---- open tracking ----------------------------------------------------------------------


@bp.route("/t/<token>.gif")
@public
def pixel(token: str):
    """The open-tracking pixel: a GIF whatever the token, counted only for a tracked message."""
    if 0 < len(token) <= 64:
        try:
            if outbox.record_open(token):
                db.session.commit()
            else:
                db.session.rollback()
        except Exception:  # noqa: BLE001  (a pixel never shows an error page)
            db.session.rollback()
            current_app.logger.warning("Open not recorded for a pixel", exc_info=True)
    response = make_response(PIXEL)
    response.headers["Content-Type"] = "image/gif"
    response.headers["Cache-Control"] = "no-store, max-age=0"
    return response
