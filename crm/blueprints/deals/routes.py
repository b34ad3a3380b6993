"""A deal's own page, quick-add, the list view.

Every change to a deal names the version the user saw (a hidden field); a save
based on an older version answers 409 with who changed it, never overwriting.
The page answers htmx with its whole #deal-page block, so that every form on it
carries the new version afterwards.
"""

import re
from decimal import Decimal
from urllib.parse import urlsplit

from flask import abort, current_app, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import selectinload

from crm import htmx as hx
from crm.blueprints.custom_fields.inputs import CustomInputs
from crm.blueprints.deals import bp
from crm.blueprints.deals.forms import DealForm, DealQuickAddForm, LineForm, MoveForm, NoteForm
from crm.blueprints.tasks.routes import record_panel_context
from crm.extensions import db
from crm.form_helpers import choices
from crm.models import Contact, Deal, DealLine, Pipeline, Product, Stage, User
from crm.models.search_keys import fold
from crm.permissions import get_or_404_for, has_permission, requires, visible_contacts
from crm.services import deal_list, deals
from crm.services.companies import find_or_create_company
from crm.services.contact_fields import possible_owners
from crm.services.deal_filters import DealFilters
from crm.services.text_search import search_condition
from crm.services.timeline import deal_timeline, record_activity

PAGE_BLOCKS = {"deal-page": "page"}
_REFERENCE = re.compile(r"#(\d+)\)?\s*$")


def contact_reference(contact: Contact) -> str:
    """How a contact appears in the picker; the id at the end is what the server reads."""
    company = f" · {contact.company.name}" if contact.company else ""
    return f"{contact.name}{company} (#{contact.id})"


def _contact_from_reference(text: str) -> Contact | None:
    found = _REFERENCE.search(text or "")
    if not found:
        return None
    query = visible_contacts(current_user).where(Contact.id == int(found.group(1)))
    return db.session.scalars(query).first()


def _load(deal_id: int) -> Deal:
    return get_or_404_for(current_user, Deal, deal_id, *deals.page_options())


def _safe_return(target: str | None) -> str | None:
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


@bp.route("", methods=["POST"])
@requires("deals.edit")
def create():
    form = DealQuickAddForm()
    custom = CustomInputs.for_create("deal", request.form)
    pipeline = None
    form_valid = form.validate_on_submit()
    custom_values = custom.validate()
    if form_valid and custom_values is not None:
        stage = db.session.get(Stage, form.stage.data) if form.stage.data else None
        pipeline = stage.pipeline if stage else None
        if pipeline is None and form.pipeline.data:
            pipeline = db.session.get(Pipeline, form.pipeline.data)
        pipeline = pipeline or deals.default_pipeline()
        contact = None
        if form.contact.data:
            contact = get_or_404_for(current_user, Contact, form.contact.data)
        if pipeline is None:
            form.title.errors.append(
                _("No pipeline exists yet: ask an administrator to create one.")
            )
        else:
            company = (
                find_or_create_company(current_user, form.company.data)
                if form.company.data
                else None
            )
            deal = deals.create_deal(
                current_user,
                title=form.title.data,
                pipeline=pipeline,
                stage=stage,
                amount=form.amount.data,
                contact=contact,
                company=company,
                source="quick_add",
            )
            deal.custom_fields = custom_values
            db.session.commit()
            hx.toast(_("Deal “%(title)s” created.", title=deal.title))
            return hx.location(
                _safe_return(form.return_to.data) or url_for("deals.detail", deal_id=deal.id)
            )
    return hx.render_fragment(
        "deals/_quick_add.html", "form", form=form, deal_custom=custom, status=422
    )


def _page_context(deal: Deal, **extra) -> dict:
    form = extra.pop("form", None) or _deal_form(deal)
    custom = extra.pop("custom", None) or CustomInputs.for_record("deal", deal.custom_fields)
    context = {
        "deal": deal,
        "form": form,
        "custom": custom,
        "line_form": extra.pop("line_form", None) or LineForm(formdata=None),
        "note_form": extra.pop("note_form", None) or NoteForm(formdata=None),
        "move_form": extra.pop("move_form", None),
        "stages": deal.pipeline.stages,
        "timeline": deal_timeline(deal, current_user),
        "margin": deals.margin(deal),
        "stalled": deals.is_stalled(deal),
        "conflict": None,
        **record_panel_context("deal", deal),
    }
    context.update(extra)
    return context


def _deal_form(deal: Deal, formdata=None) -> DealForm:
    form = DealForm(formdata=formdata)
    if formdata is None and not has_permission(current_user, "deals.assign"):
        # Shown as the owner's name, not as a select: no need to read who else could be.
        owners = [deal.owner] if deal.owner else []
    else:
        owners = possible_owners()
    form.owner.choices = choices([("", _("Nobody"))] + [(str(u.id), u.name) for u in owners])
    if formdata is None:
        form.version.data = deal.version_id
        form.title.data = deal.title
        form.amount.data = deal.amount
        form.currency.data = deal.currency
        form.expected_close.data = deal.expected_close
        form.owner.data = str(deal.owner_id or "")
        form.contact.data = contact_reference(deal.contact) if deal.contact else ""
        form.company.data = deal.company.name if deal.company else ""
        form.source.data = deal.source or ""
    return form


def _render_page(deal: Deal, status: int = 200, **extra):
    if sa_inspect(deal).expired:
        # After a commit: read the deal and what its page shows again in two queries,
        # rather than one per expired object as the page reads them. By the identity key:
        # even `deal.id` would reload the row first.
        deal = deals.reload_for_page(sa_inspect(deal).identity[0])
    return hx.render(
        "deals/detail.html", PAGE_BLOCKS, status=status, **_page_context(deal, **extra)
    )


def _conflict(deal: Deal, **extra):
    """409: someone saved first. Their version is shown; the user's input stays in the form."""
    db.session.rollback()
    db.session.refresh(deal)
    who = deal.updated_by.name if deal.updated_by else _("someone")
    message = _("This deal was changed by %(name)s. Reload to see their changes.", name=who)
    if hx.is_htmx() and not hx.is_partial():
        hx.toast(message, "error")
    return _render_page(deal, status=409, conflict=message, **extra)


@bp.route("/<int:deal_id>")
@requires("deals.view")
def detail(deal_id: int):
    return _render_page(_load(deal_id))


@bp.route("/<int:deal_id>", methods=["POST"])
@requires("deals.edit")
def update(deal_id: int):
    deal = _load(deal_id)
    form = _deal_form(deal, request.form)
    custom = CustomInputs.for_record("deal", deal.custom_fields, request.form)
    form_valid = form.validate_on_submit()
    custom_values = custom.validate(deal.custom_fields)
    if not form_valid or custom_values is None:
        return _render_page(deal, status=422, form=form, custom=custom)
    try:
        deals.check_version(deal, form.version.data)
        # Look everything up before touching the deal: one UPDATE, at commit.
        with db.session.no_autoflush:
            related = _related_records(deal, form)
            if related is None:
                db.session.rollback()
                return _render_page(deal, status=422, form=form, custom=custom)
            _apply_fields(deal, form, related)
            deal.custom_fields = custom_values
        deals.save(deal)
    except deals.StaleDeal:
        return _conflict(deal, form=form, custom=custom)
    hx.toast(_("Deal saved."))
    if not hx.is_htmx():
        return hx.location(url_for("deals.detail", deal_id=deal.id))
    return _render_page(deal)


def _related_records(deal: Deal, form: DealForm) -> dict | None:
    """Owner, contact and company named by the form; None (with errors on the form) if one is wrong."""
    owner_id = int(form.owner.data) if form.owner.data else None
    related = {"owner": deal.owner, "contact": None, "company": None}
    if owner_id != deal.owner_id:
        if not has_permission(current_user, "deals.assign"):
            form.owner.errors.append(_("Only a manager can give a deal to someone else."))
            return None
        related["owner"] = db.session.get(User, owner_id) if owner_id else None
    if form.contact.data:
        related["contact"] = _contact_from_reference(form.contact.data)
        if related["contact"] is None:
            form.contact.errors.append(_("Pick a contact from the suggestions."))
            return None
    if form.company.data:
        related["company"] = find_or_create_company(current_user, form.company.data)
    return related


def _apply_fields(deal: Deal, form: DealForm, related: dict) -> None:
    deal.title = form.title.data
    deal.title_key = fold(form.title.data)
    if not deal.lines and form.amount.data is not None:
        deal.amount = form.amount.data
    deal.currency = form.currency.data
    deal.expected_close = form.expected_close.data
    deal.source = form.source.data or None
    deal.owner = related["owner"]
    deal.contact = related["contact"]
    deal.company = related["company"]
    deal.updated_by = current_user


@bp.route("/<int:deal_id>/stage", methods=["POST"])
@requires("deals.edit")
def change_stage(deal_id: int):
    deal = _load(deal_id)
    form = MoveForm()
    if not form.validate_on_submit():
        abort(400)
    stage = db.session.get(Stage, form.stage_id.data)
    if stage is None or stage.pipeline_id != deal.pipeline_id:
        abort(400)
    try:
        moved = deals.move_deal(current_user, deal, stage, form.version.data, form.lost_reason.data)
        if moved:
            deals.save(deal)
    except deals.LostReasonRequired:
        db.session.rollback()
        form.lost_reason.errors.append(_("Say why the deal was lost: it helps the next one."))
        return _render_page(deal, status=422, move_form=form)
    except deals.StaleDeal:
        return _conflict(deal)
    if moved:
        hx.toast(_("Deal moved to %(stage)s.", stage=stage.name))
    if not hx.is_htmx():
        return hx.location(url_for("deals.detail", deal_id=deal.id))
    return _render_page(deal)


@bp.route("/<int:deal_id>/lines", methods=["POST"])
@requires("deals.edit")
def add_line(deal_id: int):
    deal = _load(deal_id)
    form = LineForm()
    if form.validate_on_submit():
        product = _active_product(form.product_id.data)
        if form.product_id.data and product is None:
            form.product_id.errors.append(_("Pick a product from the catalogue."))
        elif product is None and not form.description.data:
            form.description.errors.append(_("Pick a product or describe the line."))
        else:
            deals.add_line(
                deal,
                product=product,
                description=form.description.data,
                quantity=form.quantity.data,
                unit_price=form.unit_price.data,
                discount_percent=form.discount.data or Decimal("0"),
            )
            deal.updated_by = current_user
            try:
                deals.save(deal)
            except deals.StaleDeal:
                return _conflict(deal, line_form=form)
            hx.toast(_("Line added."))
            if not hx.is_htmx():
                return hx.location(url_for("deals.detail", deal_id=deal.id))
            return _render_page(deal)
    return _render_page(deal, status=422, line_form=form)


def _active_product(product_id: int | None) -> Product | None:
    if not product_id:
        return None
    product = db.session.get(Product, product_id)
    return product if product is not None and product.active else None


@bp.route("/<int:deal_id>/lines/<int:line_id>/delete", methods=["POST"])
@requires("deals.edit")
def remove_line(deal_id: int, line_id: int):
    deal = _load(deal_id)
    line = db.session.get(DealLine, line_id)
    if line is None or line.deal_id != deal.id:
        abort(404)
    deals.remove_line(deal, line)
    deal.updated_by = current_user
    try:
        deals.save(deal)
    except deals.StaleDeal:
        return _conflict(deal)
    hx.toast(_("Line removed."))
    if not hx.is_htmx():
        return hx.location(url_for("deals.detail", deal_id=deal.id))
    return _render_page(deal)


@bp.route("/<int:deal_id>/notes", methods=["POST"])
@requires("deals.edit")
def add_note(deal_id: int):
    deal = _load(deal_id)
    form = NoteForm()
    if not form.validate_on_submit():
        return _render_page(deal, status=422, note_form=form)
    record_activity(
        current_user,
        "note",
        contact=deal.contact,
        company=deal.company,
        deal=deal,
        body=form.body.data,
    )
    db.session.commit()
    hx.toast(_("Note added."))
    if not hx.is_htmx():
        return hx.location(url_for("deals.detail", deal_id=deal.id))
    return _render_page(deal)


@bp.route("/<int:deal_id>/delete", methods=["POST"])
@requires("deals.delete")
def delete(deal_id: int):
    deal = _load(deal_id)
    title = deal.title
    db.session.delete(deal)
    db.session.commit()
    hx.toast(_("Deal “%(title)s” deleted.", title=title))
    return hx.location(url_for("deals.board"))


@bp.route("/contact-options")
@requires("deals.edit")
def contact_options():
    """<option>s for the contact picker of a deal (a <datalist>), ten at most."""
    q = request.args.get("contact", "").strip()[:100]
    found = []
    if len(q) >= 2 and not _REFERENCE.search(q):
        found = db.session.scalars(
            visible_contacts(current_user)
            .where(*search_condition(Contact.search_text, q))
            .options(selectinload(Contact.company))
            .order_by(Contact.sort_name, Contact.id)
            .limit(10)
        ).all()
    return hx.render_fragment(
        "deals/_contact_options.html", "options", contacts=found, reference=contact_reference
    )


@bp.route("/list")
@requires("deals.view")
def list_view():
    filters = DealFilters.from_args(request.args)
    sort = deal_list.parse_sort(request.args.get("sort"))
    page = deal_list.list_deals(
        current_user, filters, sort, request.args.get("cursor"), current_app.config["PAGE_SIZE"]
    )
    return hx.render(
        "deals/list.html",
        {"deal-rows": "rows", "load-more": "rows"},
        page=page,
        filters=filters,
        sort=sort,
        whole_page=lambda: {"owners": possible_owners()},
    )
