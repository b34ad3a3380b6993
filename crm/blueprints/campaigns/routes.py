"""Segments (a builder with a live count) and mailing campaigns (prepare, preview, send,
follow the results), the public unsubscribe page, and a deal's campaign attribution."""

from datetime import datetime
from decimal import Decimal

from flask import Blueprint, abort, current_app, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from werkzeug.datastructures import MultiDict

from crm import htmx as hx
from crm.blueprints.campaigns.forms import REPLY_LABELS, AttributionForm, CampaignForm, SegmentForm
from crm.extensions import csrf, db
from crm.form_helpers import choices
from crm.labels import STAGE_LABELS
from crm.models import Campaign, Deal, EmailTemplate, Mailbox, User
from crm.models.contacts import CONSENT_STATUSES, STAGES
from crm.permissions import get_or_404_for, public, requires
from crm.services import campaigns as service
from crm.services import deals as deal_service
from crm.services import forecast as fc
from crm.services import segments
from crm.services.reports import ANY_DATE, PERIOD_CHOICES, ReportError, ReportingPeriod

bp = Blueprint("campaigns", __name__)

BUILDER_PAGE = "segments/builder.html"
CAMPAIGN_PAGE = "campaigns/detail.html"
RECIPIENTS_PAGE_SIZE = 50


# ---- segments ---------------------------------------------------------------------------------


def _builder_context(draft: segments.Draft, form: SegmentForm, segment=None) -> dict:
    return {
        "draft": draft,
        "form": form,
        "segment": segment,
        # Counted as built: a condition still being filled in is left out (and says so).
        "count": segments.count(current_user, draft.complete),
        "preview": segments.preview(current_user, draft.complete),
        "field_choices": segments.field_choices(),
        "spec_for": segments.spec_for,
        "stages": [(s, STAGE_LABELS[s]) for s in STAGES],
        "consents": CONSENT_STATUSES,
        "activity_kinds": segments.ACTIVITY_KINDS,
        "tags": segments.tags(),
        "owners": _owners(),
        "pipelines": segments.pipelines(),
        "custom_definitions": {d.key: d for d in segments.custom_definitions()},
    }


def _owners() -> list[User]:
    from crm.services.contact_fields import possible_owners

    return possible_owners()


def _segment(segment_id: int):
    segment = segments.get_for(current_user, segment_id)
    if segment is None:
        abort(404)
    return segment


@bp.route("/segments")
@requires("segments.use")
def segment_index():
    return hx.render("segments/index.html", segments=segments.segments_for(current_user))


@bp.route("/segments/new")
@requires("segments.use")
def new_segment():
    draft = segments.from_form(MultiDict({"add": request.args.get("add", "")}))
    form = SegmentForm(formdata=None)
    return hx.render(BUILDER_PAGE, **_builder_context(draft, form))


@bp.route("/segments/builder", methods=["POST"])
@requires("segments.use")
def segment_builder():
    """The conditions as changed (a field picked, one added or removed) with the live count
    and the preview: the builder's body, whatever its state (nothing is saved)."""
    draft = segments.from_form(request.form)
    form = SegmentForm(formdata=None, data={"name": request.form.get("name", "")})
    segment = None
    if request.form.get("segment_id", "").isdigit():
        segment = segments.get_for(current_user, int(request.form["segment_id"]))
    return hx.render_fragment(BUILDER_PAGE, "builder", **_builder_context(draft, form, segment))


def _save_segment(segment):
    form = SegmentForm()
    draft = segments.from_form(request.form)
    if not form.validate_on_submit() or not draft.valid:
        context = _builder_context(draft, form, segment)
        return hx.render(BUILDER_PAGE, {"segment-form": "form"}, status=422, **context)
    saved = segments.save(
        current_user, segment, name=form.name.data, shared=form.shared.data, draft=draft
    )
    db.session.commit()
    hx.toast(_("Segment “%(name)s” saved.", name=saved.name))
    return hx.location(url_for("campaigns.segment", segment_id=saved.id))


@bp.route("/segments", methods=["POST"])
@requires("segments.use")
def create_segment():
    return _save_segment(None)


@bp.route("/segments/<int:segment_id>")
@requires("segments.use")
def segment(segment_id: int):
    found = _segment(segment_id)
    form = SegmentForm(formdata=None, obj=found)
    return hx.render(BUILDER_PAGE, **_builder_context(segments.from_segment(found), form, found))


@bp.route("/segments/<int:segment_id>", methods=["POST"])
@requires("segments.use")
def update_segment(segment_id: int):
    found = _segment(segment_id)
    if not segments.may_change(current_user, found):
        abort(403)
    return _save_segment(found)


@bp.route("/segments/<int:segment_id>/delete", methods=["POST"])
@requires("segments.use")
def delete_segment(segment_id: int):
    found = _segment(segment_id)
    if not segments.may_change(current_user, found):
        abort(403)
    name = found.name
    db.session.delete(found)
    db.session.commit()
    hx.toast(_("Segment “%(name)s” deleted.", name=name))
    return hx.location(url_for("campaigns.segment_index"))


# ---- campaigns: the list ------------------------------------------------------------------------


def _period(args):
    """The list's period (customers acquired in it); "all" by default. (period, error)."""
    today = datetime.now(fc.user_timezone(current_user)).date()
    try:
        period = ReportingPeriod.parse(args, today, allow_any=True, default=ANY_DATE)
    except ReportError as error:
        return ReportingPeriod(ANY_DATE, None, None), (error.field, error.message)
    return period, None


def _service_period(period: ReportingPeriod) -> service.Period:
    if period.is_any:
        return service.Period()
    start, end = period.utc_bounds(fc.user_timezone(current_user))
    return service.Period(start, end)


@bp.route("/campaigns")
@requires("campaigns.manage")
def index():
    period, error = _period(request.args)
    sort = request.args.get("sort", "started")
    sort = sort if sort in service.SORTS else "started"
    descending = request.args.get("dir", "desc") != "asc"
    rows = service.campaign_list(
        current_user, sort=sort, descending=descending, period=_service_period(period)
    )
    status = 422 if error else 200
    return hx.render(
        "campaigns/index.html",
        {"campaign-list": "list"},
        status=status,
        rows=rows,
        sort=sort,
        descending=descending,
        period=period,
        period_choices={ANY_DATE: _("Any time"), **PERIOD_CHOICES},
        error=error,
        args=request.args,
    )


# ---- campaigns: writing one ---------------------------------------------------------------------


def _campaign_form(formdata=None, campaign: Campaign | None = None) -> CampaignForm:
    if formdata is None:
        form = CampaignForm(formdata=None, obj=campaign)
        if campaign is not None:
            form.segment.data = str(campaign.segment_id or "")
            form.template.data = str(campaign.template_id or "")
            form.mailbox.data = str(campaign.mailbox_id or "")
        elif request.args.get("segment_id", "").isdigit():
            form.segment.data = request.args["segment_id"]
    else:
        form = CampaignForm(formdata=formdata)
    form.segment.choices = choices(
        [("", _("Choose a segment"))]
        + [(str(s.id), s.name) for s in segments.segments_for(current_user)]
    )
    form.template.choices = choices(
        [("", _("No template: write the text below"))]
        + [(str(t.id), t.name) for t in service.templates()]
    )
    default_sender = current_app.config["MAIL_FROM"]
    form.mailbox.choices = choices(
        [("", _("The default sender (%(address)s)", address=default_sender))]
        + [(str(m.id), str(m)) for m in service.sender_mailboxes()]
    )
    form.replies_to.choices = choices(REPLY_LABELS.items())
    return form


def _chosen(form: CampaignForm):
    """The segment, template and mailbox the form names; None for one that is not offered
    (with an error beside its field)."""
    segment = None
    if form.segment.data and form.segment.data.isdigit():
        segment = segments.get_for(current_user, int(form.segment.data))
    if segment is None:
        form.segment.errors = [*form.segment.errors, _("Choose a segment.")]
    template = None
    if form.template.data:
        template = (
            db.session.get(EmailTemplate, int(form.template.data))
            if form.template.data.isdigit()
            else None
        )
        if template is None or template not in service.templates():
            form.template.errors = [*form.template.errors, _("Choose a template from the list.")]
            template = False
    mailbox = None
    if form.mailbox.data:
        mailbox = (
            db.session.get(Mailbox, int(form.mailbox.data)) if form.mailbox.data.isdigit() else None
        )
        if mailbox is None or mailbox not in service.sender_mailboxes():
            form.mailbox.errors = [*form.mailbox.errors, _("Choose a shared mailbox.")]
            mailbox = False
    if segment is None or template is False or mailbox is False:
        return None
    return segment, template, mailbox


def _check_text(form: CampaignForm, template) -> bool:
    ok = True
    if template is None and not form.subject.data:
        form.subject.errors = [*form.subject.errors, _("Write a subject, or choose a template.")]
        ok = False
    if template is None and not (form.body.data or "").strip():
        form.body.errors = [*form.body.errors, _("Write the text, or choose a template.")]
        ok = False
    from crm.services.canned_responses import unknown_placeholders

    unknown = unknown_placeholders(f"{form.subject.data or ''}\n{form.body.data or ''}")
    if unknown:
        form.body.errors = [
            *form.body.errors,
            _("Unknown placeholders: %(list)s", list=", ".join(unknown)),
        ]
        ok = False
    return ok


def _save_campaign(campaign: Campaign | None, form: CampaignForm):
    valid = form.validate_on_submit()
    chosen = _chosen(form)
    if not valid or chosen is None:
        return None
    segment, template, mailbox = chosen
    template_changed = template is not None and (
        campaign is None or campaign.template_id != template.id
    )
    if not template_changed and not _check_text(form, template):
        return None
    return service.save(
        current_user,
        campaign,
        name=form.name.data,
        segment=segment,
        template=template,
        mailbox=mailbox,
        rate_per_minute=form.rate_per_minute.data,
        track_opens=form.track_opens.data,
        replies_to=form.replies_to.data,
        cost=form.cost.data if form.cost.data is not None else Decimal("0"),
        currency=form.currency.data,
        subject=None if template_changed else form.subject.data,
        body=None if template_changed else form.body.data,
    )


@bp.route("/campaigns/new")
@requires("campaigns.manage")
def new():
    return hx.render("campaigns/new.html", form=_campaign_form())


@bp.route("/campaigns", methods=["POST"])
@requires("campaigns.manage")
def create():
    form = _campaign_form(request.form)
    campaign = _save_campaign(None, form)
    if campaign is None:
        return hx.render("campaigns/new.html", {"campaign-form": "form"}, status=422, form=form)
    db.session.commit()
    hx.toast(
        _("Campaign “%(name)s” prepared: check the preview, then send it.", name=campaign.name)
    )
    return hx.location(url_for("campaigns.detail", campaign_id=campaign.id))


def _campaign(campaign_id: int) -> Campaign:
    campaign = service.get_for(current_user, campaign_id)
    if campaign is None:
        abort(404)
    return campaign


def _preview_context(campaign: Campaign) -> dict:
    contact_id = request.args.get("contact_id", type=int)
    return {
        "preview": service.preview(campaign, current_user, contact_id),
        "preview_contacts": service.preview_contacts(campaign, current_user),
    }


def _detail_context(campaign: Campaign, **extra) -> dict:
    context = {
        "campaign": campaign,
        "skip_labels": service.SKIP_LABELS,
        "reply_labels": REPLY_LABELS,
    }
    if campaign.status == "draft":
        context.update(
            form=extra.pop("form", None) or _campaign_form(campaign=campaign),
            plan=service.plan(campaign, current_user),
            **_preview_context(campaign),
            unknown=service.unknown_placeholders(campaign),
        )
    else:
        results = service.results_for(current_user, [campaign])[campaign.id]
        rows, next_after = service.recipients_page(
            campaign, current_user, size=RECIPIENTS_PAGE_SIZE
        )
        context.update(results=results, recipients=rows, next_after=next_after)
    context.update(extra)
    return context


@bp.route("/campaigns/<int:campaign_id>")
@requires("campaigns.manage")
def detail(campaign_id: int):
    campaign = _campaign(campaign_id)
    if hx.is_partial() and hx.target_id() == "campaign-preview" and campaign.status == "draft":
        # Another recipient picked for the preview: only the preview is worked out.
        return hx.render_fragment(
            CAMPAIGN_PAGE, "preview", campaign=campaign, **_preview_context(campaign)
        )
    return hx.render(CAMPAIGN_PAGE, {"campaign-figures": "figures"}, **_detail_context(campaign))


@bp.route("/campaigns/<int:campaign_id>", methods=["POST"])
@requires("campaigns.manage")
def update(campaign_id: int):
    campaign = _campaign(campaign_id)
    if campaign.status != "draft":
        return _refused(campaign, _("Only a draft can be changed."))
    form = _campaign_form(request.form)
    saved = _save_campaign(campaign, form)
    if saved is None:
        db.session.rollback()
        campaign = _campaign(campaign_id)
        return hx.render(
            CAMPAIGN_PAGE,
            {"campaign-page": "page"},
            status=422,
            **_detail_context(campaign, form=form),
        )
    db.session.commit()
    hx.toast(_("Campaign saved."))
    return hx.render(CAMPAIGN_PAGE, {"campaign-page": "page"}, **_detail_context(campaign))


def _refused(campaign: Campaign, message: str):
    if hx.is_htmx():
        return hx.error_response(409, message)
    return hx.render(CAMPAIGN_PAGE, status=409, refused=message, **_detail_context(campaign))


def _start_chain(campaign: Campaign) -> None:
    from crm.jobs.campaigns import ensure_chain

    try:
        ensure_chain(campaign.id)
    except Exception:  # noqa: BLE001  (Redis away: the sweeper starts it within a minute)
        current_app.logger.warning("could not start campaign %s", campaign.id, exc_info=True)


@bp.route("/campaigns/<int:campaign_id>/send", methods=["POST"])
@requires("campaigns.manage")
def send(campaign_id: int):
    campaign = _campaign(campaign_id)
    try:
        count = service.start(campaign, current_user)
    except service.CampaignError as error:
        db.session.rollback()
        return _refused(_campaign(campaign_id), str(error))
    db.session.commit()
    _start_chain(campaign)
    hx.toast(
        _(
            "Sending to %(count)s people, %(rate)s a minute.",
            count=count,
            rate=campaign.rate_per_minute,
        )
    )
    return hx.location(url_for("campaigns.detail", campaign_id=campaign.id))


def _control(campaign_id: int, action, done: str):
    campaign = _campaign(campaign_id)
    try:
        action(campaign)
    except service.CampaignError as error:
        db.session.rollback()
        return _refused(_campaign(campaign_id), str(error))
    db.session.commit()
    if campaign.status == "sending":
        _start_chain(campaign)
    hx.toast(done)
    return hx.render(CAMPAIGN_PAGE, {"campaign-page": "page"}, **_detail_context(campaign))


@bp.route("/campaigns/<int:campaign_id>/pause", methods=["POST"])
@requires("campaigns.manage")
def pause(campaign_id: int):
    return _control(
        campaign_id, service.pause, _("Campaign paused: nobody else is mailed until you resume.")
    )


@bp.route("/campaigns/<int:campaign_id>/resume", methods=["POST"])
@requires("campaigns.manage")
def resume(campaign_id: int):
    return _control(campaign_id, service.resume, _("Campaign resumed."))


@bp.route("/campaigns/<int:campaign_id>/cancel", methods=["POST"])
@requires("campaigns.manage")
def cancel(campaign_id: int):
    return _control(
        campaign_id, service.cancel, _("Campaign cancelled: nobody else will be mailed.")
    )


@bp.route("/campaigns/<int:campaign_id>/recipients")
@requires("campaigns.manage")
def recipients(campaign_id: int):
    campaign = _campaign(campaign_id)
    if campaign.status == "draft":
        abort(404)
    rows, next_after = service.recipients_page(
        campaign,
        current_user,
        after_id=request.args.get("after", 0, type=int),
        size=RECIPIENTS_PAGE_SIZE,
    )
    return hx.render(
        "campaigns/recipients.html",
        {"load-more": "rows"},
        skip_labels=service.SKIP_LABELS,
        campaign=campaign,
        recipients=rows,
        next_after=next_after,
    )


# ---- a deal's campaign ------------------------------------------------------------------------


@bp.route("/campaigns/deals/<int:deal_id>/attribution", methods=["POST"])
@requires("deals.edit")
def attribute_deal(deal_id: int):
    """The campaign a deal is counted for (its revenue and return), changed on the deal's page;
    answers with the deal's page so that every form there carries the new version."""
    from crm.blueprints.deals.routes import detail as deal_detail

    deal = get_or_404_for(current_user, Deal, deal_id)
    form = AttributionForm()
    offered = dict(service.campaign_choices())
    value = form.campaign.data or ""
    if value and (not value.isdigit() or int(value) not in offered):
        abort(400)
    try:
        deal_service.check_version(deal, form.version.data)
    except deal_service.StaleDeal:
        return hx.error_response(
            409, _("This deal was changed by someone else. Reload to see their changes.")
        )
    deal.campaign_id = int(value) if value else None
    deal.updated_by = current_user
    db.session.commit()
    hx.toast(_("Attribution saved."))
    return deal_detail(deal_id)


# ---- unsubscribing (public) -------------------------------------------------------------------


def _recipient(token: str):
    recipient = service.recipient_by_token(token)
    if recipient is None or recipient.contact is None:
        abort(404)
    return recipient


@bp.route("/u/<token>")
@public
def unsubscribe_page(token: str):
    recipient = _recipient(token)
    return render_template(
        "campaigns/unsubscribe.html", recipient=recipient, token=token, done=False
    )


# CSRF-exempt: mail clients post the RFC 8058 one-click request ("List-Unsubscribe=One-Click")
# with no session at all. The 32-byte token is the secret; the only thing it can do is stop
# marketing mail to the person it was sent to. A post to an unknown token is CSRF-checked.
@bp.route("/u/<token>", methods=["POST"])
@public
@csrf.exempt
def unsubscribe(token: str):
    recipient = service.recipient_by_token(token)
    if recipient is None or recipient.contact is None:
        # The exemption covers real links only: any other post is checked as usual (400).
        if current_app.config.get("WTF_CSRF_ENABLED", True):
            csrf.protect()
        abort(404)
    service.unsubscribe(recipient)
    db.session.commit()
    if request.form.get("List-Unsubscribe") == "One-Click":
        return "", 204
    return render_template(
        "campaigns/unsubscribe.html", recipient=recipient, token=token, done=True
    )


@bp.app_template_global("campaign_attribution")
def campaign_attribution(deal: Deal) -> dict:
    """For the deal page's select: the campaigns offered and the one chosen."""
    return {"choices": service.campaign_choices(), "chosen": deal.campaign_id}
