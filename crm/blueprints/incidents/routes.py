"""Incidents: the support queue, quick-add and the full form, an incident's page with its
inline fields, conversation and canned responses, and a complaint's commercial follow-up."""

from flask import Blueprint, abort, current_app, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from crm import htmx as hx
from crm.blueprints.custom_fields.inputs import CustomInputs, definition_or_404, save_inline
from crm.blueprints.incidents.forms import ROUND_ROBIN, IncidentForm, MessageForm
from crm.extensions import commit_keeping_loaded, db
from crm.labels import INCIDENT_STATUS_LABELS
from crm.models import Company, Contact, EmailTemplate, Incident, Product, Team, User
from crm.models.support import INCIDENT_STATUSES
from crm.permissions import (
    get_or_404_for,
    has_permission,
    requires,
    visible_companies,
    visible_contacts,
)
from crm.services import canned_responses
from crm.services import incidents as service
from crm.services.record_search import find_records
from crm.services.reminders import now

bp = Blueprint("incidents", __name__, url_prefix="/incidents")

LIST_PARTIALS = {"incident-rows": "rows", "load-more": "rows"}
CUSTOMER_SEARCH_LIMIT = 8


# ---- forms and customers -----------------------------------------------------


def _products() -> list[Product]:
    return list(
        db.session.scalars(select(Product).where(Product.active.is_(True)).order_by(Product.name))
    )


def _incident_form(
    formdata=None, *, teams: list[Team] | None = None, products: list | None = None, **data
) -> IncidentForm:
    """The incident form: from the request when `formdata` is given, else from `data`.

    `teams`: when the caller has read them already (the queue shows them too).
    `products`: [] for the queue's quick-add, which does not offer them (a query saved).
    """
    form = IncidentForm() if formdata is not None else IncidentForm(formdata=None, data=data)
    teams = service.teams() if teams is None else teams
    form.set_choices(
        service.agents(), teams, _products() if products is None else products, current_user
    )
    return form


def _customer(value: str | None) -> Contact | Company | None:
    """The contact or company a "contact:12" / "company:3" value names, if visible."""
    kind, _sep, raw_id = (value or "").partition(":")
    if not raw_id.isdigit():
        return None
    if kind == "contact":
        scope, model = visible_contacts(current_user), Contact
    elif kind == "company":
        scope, model = visible_companies(current_user), Company
    else:
        return None
    return db.session.scalars(scope.where(model.id == int(raw_id))).first()


def _prefill() -> dict:
    """The customer given in the address: "New incident" on a contact or company page."""
    if request.args.get("contact_id", type=int):
        return {"customer": f"contact:{request.args.get('contact_id', type=int)}"}
    if request.args.get("company_id", type=int):
        return {"customer": f"company:{request.args.get('company_id', type=int)}"}
    return {}


def _form_context(form: IncidentForm, custom: CustomInputs | None = None) -> dict:
    return {
        "form": form,
        "chosen": _customer(form.customer.data),
        # The required custom fields, asked for on creation.
        "custom": custom if custom is not None else CustomInputs.for_create("incident"),
    }


# ---- the queue ---------------------------------------------------------------


def _queue_rows(filters: service.IncidentFilters) -> dict:
    """What the rows need: the page of incidents and the clock their SLA badges read."""
    page = service.list_incidents(current_user, filters, current_app.config["PAGE_SIZE"])
    return {"page": page, "filters": filters, "now": now()}


def _queue_page(teams: list[Team] | None = None) -> dict:
    """What only the whole queue page shows around the rows: tab counts, the team filter."""
    return {
        "counts": service.view_counts(current_user),
        "teams": service.teams() if teams is None else teams,
    }


def _queue_context(filters: service.IncidentFilters, teams: list[Team] | None = None) -> dict:
    return {**_queue_rows(filters), **_queue_page(teams)}


def _whole_queue_page() -> dict:
    teams = service.teams()  # read once: the form's choices and the queue's filter
    form = _incident_form(teams=teams, products=[], **_prefill())
    return {**_form_context(form), **_queue_page(teams)}


@bp.route("")
@requires("incidents.view")
def index():
    filters = service.IncidentFilters.from_args(request.args, current_user)
    # A search, a filter or a scroll asks for rows only: no form, tab counts or teams.
    return hx.render(
        "incidents/index.html",
        LIST_PARTIALS,
        whole_page=_whole_queue_page,
        **_queue_rows(filters),
    )


@bp.route("/new")
@requires("incidents.edit")
def new():
    form = _incident_form(**_prefill())
    return hx.render("incidents/new.html", **_form_context(form))


@bp.route("", methods=["POST"])
@requires("incidents.edit")
def create():
    form = _incident_form(formdata=request.form)
    custom = CustomInputs.for_create("incident", request.form)
    quick = request.form.get("form") == "quick"
    customer = None
    if form.validate_on_submit():
        customer = _customer(form.customer.data)
        if customer is None:
            form.customer.errors.append(_("Pick a contact or a company."))
    custom_values = custom.validate()
    if customer is None or custom_values is None:
        context = _form_context(form, custom)
        if quick and hx.is_htmx():
            return hx.render_fragment("incidents/index.html", "quick_add", status=422, **context)
        if quick:
            filters = service.IncidentFilters.from_args(MultiDict(), current_user)
            return hx.render(
                "incidents/index.html", status=422, **context, **_queue_context(filters)
            )
        return hx.render("incidents/new.html", {"incident-form": "form"}, status=422, **context)
    incident = service.create_incident(
        current_user,
        subject=form.subject.data,
        kind=form.kind.data,
        description=form.description.data,
        priority=form.priority.data,
        status=form.status.data,
        channel=form.channel.data,
        contact=customer if isinstance(customer, Contact) else None,
        company=customer if isinstance(customer, Company) else None,
        product=db.session.get(Product, int(form.product.data)) if form.product.data else None,
        assignee=_chosen_assignee(form.assignee.data),
        team=db.session.get(Team, int(form.team.data)) if form.team.data else None,
        round_robin=form.assignee.data == ROUND_ROBIN,
    )
    incident.custom_fields = custom_values
    db.session.commit()
    hx.toast(_("Incident %(ref)s created.", ref=incident.reference))
    if quick and hx.is_htmx():
        # The queue stays in front of the agent: the new row on top, the form ready again.
        return hx.render_fragment(
            "incidents/index.html",
            "quick_add",
            "new_row",
            incident=incident,
            now=now(),
            **_form_context(_incident_form(products=[])),
        )
    return hx.location(url_for("incidents.detail", incident_id=incident.id))


def _chosen_assignee(value: str | None) -> User | None:
    if not value or value == ROUND_ROBIN:
        return None
    if not value.isdigit():
        abort(400)
    user = db.session.get(User, int(value))
    if user is None or user not in service.agents():
        abort(400)
    return user


@bp.route("/customers")
@requires("incidents.edit")
def customers():
    """Contacts and companies matching what was typed: radio options named "customer"."""
    text = (request.args.get("customer_q") or "").strip()
    found = find_records(
        current_user, text, kinds=("contact", "company"), limit=CUSTOMER_SEARCH_LIMIT
    )
    return render_template("incidents/_customer_options.html", options=found, text=text)


# ---- one incident ------------------------------------------------------------


def _detail_context(incident: Incident, **extra) -> dict:
    context = _header_context(incident)
    incident = context["incident"]
    context.update(
        owner=service.account_owner(incident),
        follow=service.follow_ups(incident, current_user),
        visits=service.visible_interventions_of(incident, current_user),
        custom_editing=None,  # (key, CustomInputs) of a custom field edited without htmx
    )
    context.update(extra)
    return context


def _header_context(incident: Incident, **extra) -> dict:
    """What the header, the conversation and the composer show: the blocks a reply or a
    field change sends back (the follow-ups and visits beside them are not, so not read)."""
    return _conversation_context(incident, with_agents=True, **extra)


def _conversation_context(incident: Incident, with_agents: bool = False, **extra) -> dict:
    """What the conversation and the composer show (the header also needs the agents)."""
    agents, templates = service.page_choices()
    context = {
        "incident": service.load_for_page(incident),
        "agents": agents if with_agents else (),
        "templates": templates,
        "message_form": MessageForm(formdata=None),
        "statuses": INCIDENT_STATUSES,
        "status_labels": INCIDENT_STATUS_LABELS,
        "gaps": (),
        "chosen_template": None,
        "now": now(),
    }
    context.update(extra)
    return context


def _header_facts(incident: Incident) -> tuple:
    """What a message can change in the header: its status and service-level clock."""
    return (
        incident.status,
        incident.first_responded_at,
        incident.first_response_breached,
        incident.paused_at,
    )


@bp.route("/<int:incident_id>")
@requires("incidents.read")
def detail(incident_id: int):
    incident = get_or_404_for(current_user, Incident, incident_id, *service.page_options())
    return hx.render("incidents/detail.html", **_detail_context(incident))


EDITABLE = ("status", "priority", "assignee", "kind")


@bp.route("/<int:incident_id>/fields/<name>", methods=["POST"])
@requires("incidents.edit")
def update_field(incident_id: int, name: str):
    """One click in the header: status, priority, kind, assignee ("me", an id, round robin)."""
    incident = get_or_404_for(current_user, Incident, incident_id)
    if name not in EDITABLE:
        abort(404)
    value = request.form.get("value", "")
    try:
        message = _apply(incident, name, value)
    except service.IncidentRefused as refused:
        db.session.rollback()
        return hx.error_response(422, str(refused))
    db.session.commit()
    if message:
        hx.toast(message)
    if not hx.is_htmx():
        return hx.location(url_for("incidents.detail", incident_id=incident.id))
    return hx.render_fragment("incidents/detail.html", "header", **_header_context(incident))


def _apply(incident: Incident, name: str, value: str) -> str | None:
    if name == "status":
        if service.change_status(incident, value):
            return _("Status: %(status)s.", status=INCIDENT_STATUS_LABELS[value])
    elif name == "priority":
        if service.change_priority(incident, value):
            return _("Priority changed.")
    elif name == "kind":
        service.change_kind(incident, value)
    elif value == ROUND_ROBIN:
        chosen = service.assign_round_robin(incident)
        if chosen is None:
            raise service.IncidentRefused(_("No support agent is available right now."))
        return _("Assigned to %(name)s.", name=chosen.name)
    else:
        assignee = current_user if value == "me" else _chosen_assignee(value)
        if service.assign(incident, assignee):
            return _("Assigned to %(name)s.", name=assignee.name) if assignee else _("Unassigned.")
    return None


# ---- custom fields of an incident, edited in place ---------------------------------------


def _custom_urls(incident: Incident, key: str) -> dict:
    return {
        "page": url_for("incidents.detail", incident_id=incident.id),
        "show": url_for("incidents.show_custom_field", incident_id=incident.id, field_key=key),
        "edit": url_for("incidents.edit_custom_field", incident_id=incident.id, field_key=key),
        "update": url_for("incidents.update_custom_field", incident_id=incident.id, field_key=key),
    }


@bp.app_template_global()
def incident_custom_urls(incident: Incident, key: str) -> dict:
    return _custom_urls(incident, key)


def _render_custom_field(incident: Incident, definition, ci=None, status: int = 200):
    if hx.is_partial():
        return hx.render_fragment(
            "custom_fields/_record_field.html",
            "field",
            status=status,
            d=definition,
            values=incident.custom_fields or {},
            urls=_custom_urls(incident, definition.key),
            editable=has_permission(current_user, "incidents.edit"),
            ci=ci,
        )
    return hx.render(
        "incidents/detail.html",
        status=status,
        **_detail_context(incident, custom_editing=(definition.key, ci) if ci else None),
    )


@bp.route("/<int:incident_id>/custom/<field_key>")
@requires("incidents.read")
def show_custom_field(incident_id: int, field_key: str):
    incident = get_or_404_for(current_user, Incident, incident_id)
    return _render_custom_field(incident, definition_or_404("incident", field_key))


@bp.route("/<int:incident_id>/custom/<field_key>/edit")
@requires("incidents.edit")
def edit_custom_field(incident_id: int, field_key: str):
    incident = get_or_404_for(current_user, Incident, incident_id)
    definition = definition_or_404("incident", field_key)
    ci = CustomInputs.for_record("incident", incident.custom_fields, keys=[field_key])
    return _render_custom_field(incident, definition, ci)


@bp.route("/<int:incident_id>/custom/<field_key>", methods=["POST"])
@requires("incidents.edit")
def update_custom_field(incident_id: int, field_key: str):
    incident = get_or_404_for(current_user, Incident, incident_id)
    return save_inline(
        incident,
        "incident",
        field_key,
        request.form,
        lambda definition, ci=None, status=200: _render_custom_field(
            incident, definition, ci, status
        ),
        url_for("incidents.detail", incident_id=incident.id),
    )


@bp.route("/<int:incident_id>/messages", methods=["POST"])
@requires("incidents.edit")
def add_message(incident_id: int):
    """ "Reply to customer" or "Internal note": the button pressed says which."""
    # With what its page shows: the customer (whose timeline gets the message too) and the
    # conversation (is this the first reply?), kept through the commit for the answer.
    incident = get_or_404_for(current_user, Incident, incident_id, *service.page_options())
    kind = request.form.get("kind")
    if kind not in ("reply", "note"):
        abort(400)
    form = MessageForm()
    valid = form.validate_on_submit()
    gaps = canned_responses.unfilled(form.body.data) if kind == "reply" else []
    if gaps:
        form.body.errors.append(
            _("Fill in the gaps before sending: %(gaps)s", gaps=", ".join(gaps))
        )
    if not valid or gaps:
        return hx.render(
            "incidents/detail.html",
            {"composer": "composer"},
            status=422,
            **_detail_context(incident, message_form=form, gaps=gaps),
        )
    header = _header_facts(incident)
    message = service.add_message(current_user, incident, kind, form.body.data)
    emailed = message.email_status == "queued"
    commit_keeping_loaded()
    if kind != "reply":
        hx.toast(_("Note added."))
    elif emailed:
        hx.toast(_("Reply sent to the customer by email."))
    else:
        hx.toast(_("Reply saved, but not sent: the customer has no email address."), "warning")
    if not hx.is_htmx():
        return hx.location(url_for("incidents.detail", incident_id=incident_id))
    if _header_facts(incident) == header:
        # The header did not change (not the first reply): not sent again, nor read for.
        return hx.render_fragment(
            "incidents/detail.html",
            "composer",
            "conversation_refresh",
            **_conversation_context(incident),
        )
    return hx.render_fragment(
        "incidents/detail.html",
        "composer",
        "conversation_refresh",
        "header_refresh",
        **_header_context(incident),
    )


@bp.route("/<int:incident_id>/canned")
@requires("incidents.edit")
def canned(incident_id: int):
    """The composer filled from a canned response, its gaps shown."""
    incident = get_or_404_for(current_user, Incident, incident_id)
    template = None
    if request.args.get("template", type=int):
        template = db.session.get(EmailTemplate, request.args.get("template", type=int))
    form = MessageForm(formdata=None)
    gaps: tuple = ()
    if template is not None and template.usage in ("support", "all"):
        rendered = canned_responses.render(template, service.load_for_page(incident), current_user)
        form.body.data, gaps = rendered.body, rendered.missing
    else:
        template = None
    return hx.render(
        "incidents/detail.html",
        {"composer": "composer"},
        **_detail_context(incident, message_form=form, gaps=gaps, chosen_template=template),
    )


@bp.route("/<int:incident_id>/follow-up/<what>", methods=["POST"])
@requires("incidents.edit")
def follow_up(incident_id: int, what: str):
    """A complaint's commercial action: a task or a deal for the account's sales owner."""
    incident = get_or_404_for(current_user, Incident, incident_id)
    if what not in ("task", "deal"):
        abort(404)
    try:
        if what == "task":
            task = service.complaint_task(current_user, incident)
            message = _("Follow-up task for %(name)s.", name=task.assignee.name)
        else:
            deal = service.complaint_deal(current_user, incident)
            message = _("Follow-up deal for %(name)s.", name=deal.owner.name)
    except service.IncidentRefused as refused:
        db.session.rollback()
        return hx.error_response(422, str(refused))
    db.session.commit()
    hx.toast(message)
    if not hx.is_htmx():
        return hx.location(url_for("incidents.detail", incident_id=incident.id))
    return hx.render_fragment("incidents/detail.html", "follow_ups", **_detail_context(incident))


def customer_panel_context(*, contact=None, company=None) -> dict:
    """For the contact and company pages: their "Incidents" panel."""
    if not has_permission(current_user, "incidents.read"):
        return {"customer_incidents": []}
    return {
        "customer_incidents": service.customer_incidents(
            current_user, contact=contact, company=company
        )
    }


# These modules add their routes to bp: canned responses, and the support settings.
from crm.blueprints.incidents import canned_templates, settings  # noqa: E402,F401
