"""Leads: the hot list, scoring and routing rules, and the public web forms that capture leads.

Admin pages (scoring rules, routing rules, web forms) answer every change with their
panel re-rendered (422 with the errors beside the fields, nothing saved); changing a
scoring rule enqueues a rescore of every lead once committed.
"""

from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_limiter.errors import RateLimitExceeded
from flask_login import current_user
from markupsafe import escape
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from crm import htmx as hx
from crm.blueprints.leads.forms import (
    ACTIVITY_LABELS,
    FIELD_LABELS,
    OPERATOR_LABELS,
    RULE_FORMS,
    SOURCE_LABELS,
    DryRunForm,
    LeadFormSettings,
    MoveForm,
    PublicLeadForm,
    RoutingRuleForm,
)
from crm.extensions import csrf, db, limiter
from crm.form_helpers import choices
from crm.models import LeadForm, RoutingRule, ScoringRule, Team, User
from crm.models.leads import LEAD_SOURCES
from crm.permissions import public, requires
from crm.services import lead_routing, lead_scoring, leads

bp = Blueprint("leads", __name__, url_prefix="/leads")

HOT_PAGE = "leads/hot.html"
HOT_PARTIALS = {"lead-rows": "rows", "load-more": "rows"}
SCORING_PAGE = "leads/scoring.html"
ROUTING_PAGE = "leads/routing.html"
FORMS_PAGE = "leads/forms.html"
HONEYPOT = "website"
DEFAULT_FORM_LIMIT = "5 per minute;50 per day"


@bp.app_template_global("lead_source_label")
def lead_source_label(source: str | None) -> str:
    if source in leads.MANUAL_SOURCES:
        return str(SOURCE_LABELS["manual"])
    return str(SOURCE_LABELS.get(source, source or ""))


def _panel(page: str, endpoint: str, context: dict, status: int = 200, block: str = "panel"):
    """The panel after a change under htmx; the page otherwise (a plain form post)."""
    if hx.is_htmx():
        return hx.render_fragment(page, block, status=status, **context)
    if status == 200:
        return hx.location(url_for(endpoint))
    return hx.render(page, status=status, **context)


def _rescore_everyone() -> None:
    try:
        lead_scoring.enqueue_rescore_all()
    except Exception:  # Redis away: the hourly sweep rescores within a day
        current_app.logger.warning("could not enqueue the rescore of all leads", exc_info=True)


# ---- the hot list ------------------------------------------------------------------------


@bp.route("")
@requires("leads.view")
def hot():
    filters = leads.HotFilters.from_args(request.args, current_user)
    page = leads.hot_leads(current_user, filters, current_app.config["PAGE_SIZE"])
    return hx.render(
        HOT_PAGE,
        HOT_PARTIALS,
        page=page,
        filters=filters,
        scopes=leads.scopes_for(current_user),
        sources=LEAD_SOURCES,
    )


# ---- scoring rules -------------------------------------------------------------------------


def _field_choices() -> list[tuple[str, str]]:
    from crm.services.custom_fields import definitions

    pairs = [(key, str(label)) for key, label in FIELD_LABELS.items()]
    try:
        custom = definitions("contact")
    except NotImplementedError:  # custom fields not there yet
        custom = []
    pairs += [(f"custom.{d.key}", d.label) for d in custom]
    return pairs


def _rule_form(kind: str, formdata=None, rule: ScoringRule | None = None):
    form_class = RULE_FORMS[kind]
    prefix = f"edit-{rule.id}" if rule is not None else kind
    if formdata is None and rule is not None:
        form = form_class(formdata=None, prefix=prefix, obj=rule)
        form.load(rule.condition or {})
    elif formdata is None:
        form = form_class(formdata=None, prefix=prefix)
    else:
        form = form_class(prefix=prefix)
    if kind == "field":
        form.field.choices = choices(_field_choices())
    return form


def _scoring_context(**overrides) -> dict:
    context = {
        "rules": leads.ordered(ScoringRule),
        "add_forms": {kind: _rule_form(kind) for kind in RULE_FORMS},
        "editing": None,
        "edit_form": None,
        "field_labels": dict(_field_choices()),
        "operator_labels": OPERATOR_LABELS,
        "activity_labels": ACTIVITY_LABELS,
    }
    add_forms = overrides.pop("add_forms", {})
    context["add_forms"].update(add_forms)
    context.update(overrides)
    return context


def _scoring_rule(rule_id: int) -> ScoringRule:
    rule = db.session.get(ScoringRule, rule_id)
    if rule is None:
        abort(404)
    return rule


@bp.route("/scoring")
@requires("leads.rules")
def scoring_rules():
    return hx.render(SCORING_PAGE, {"scoring-panel": "panel"}, **_scoring_context())


@bp.route("/scoring", methods=["POST"])
@requires("leads.rules")
def create_scoring_rule():
    kind = request.form.get("rule_type", "")
    if kind not in RULE_FORMS:
        abort(400)
    form = _rule_form(kind, request.form)
    if not form.validate_on_submit():
        context = _scoring_context(add_forms={kind: form}, opened=kind)
        return _panel(SCORING_PAGE, "leads.scoring_rules", context, 422)
    rule = ScoringRule(
        name=form.name.data,
        points=form.points.data,
        active=form.active.data,
        condition=form.condition(),
    )
    leads.add_last(ScoringRule, rule)
    db.session.add(rule)
    db.session.commit()
    _rescore_everyone()
    hx.toast(_("Rule “%(name)s” added. Scores are being recomputed.", name=rule.name))
    return _panel(SCORING_PAGE, "leads.scoring_rules", _scoring_context())


@bp.route("/scoring/<int:rule_id>/edit")
@requires("leads.rules")
def edit_scoring_rule(rule_id: int):
    rule = _scoring_rule(rule_id)
    kind = (rule.condition or {}).get("type", "field")
    if kind not in RULE_FORMS:
        abort(404)
    context = _scoring_context(editing=rule.id, edit_form=_rule_form(kind, rule=rule))
    if hx.is_htmx():
        return hx.render_fragment(SCORING_PAGE, "panel", **context)
    return hx.render(SCORING_PAGE, **context)


@bp.route("/scoring/<int:rule_id>", methods=["POST"])
@requires("leads.rules")
def update_scoring_rule(rule_id: int):
    rule = _scoring_rule(rule_id)
    kind = (rule.condition or {}).get("type", "field")
    if kind not in RULE_FORMS:
        abort(404)
    form = _rule_form(kind, request.form, rule=rule)
    if not form.validate_on_submit():
        context = _scoring_context(editing=rule.id, edit_form=form)
        return _panel(SCORING_PAGE, "leads.scoring_rules", context, 422)
    rule.name, rule.points, rule.active = form.name.data, form.points.data, form.active.data
    rule.condition = form.condition()
    db.session.commit()
    _rescore_everyone()
    hx.toast(_("Rule “%(name)s” saved. Scores are being recomputed.", name=rule.name))
    return _panel(SCORING_PAGE, "leads.scoring_rules", _scoring_context())


@bp.route("/scoring/<int:rule_id>/delete", methods=["POST"])
@requires("leads.rules")
def delete_scoring_rule(rule_id: int):
    rule = _scoring_rule(rule_id)
    name = rule.name
    db.session.delete(rule)
    db.session.commit()
    _rescore_everyone()
    hx.toast(_("Rule “%(name)s” deleted. Scores are being recomputed.", name=name))
    return _panel(SCORING_PAGE, "leads.scoring_rules", _scoring_context())


@bp.route("/scoring/<int:rule_id>/move", methods=["POST"])
@requires("leads.rules")
def move_scoring_rule(rule_id: int):
    rule = _scoring_rule(rule_id)
    form = MoveForm()
    if form.validate_on_submit() and leads.move(ScoringRule, rule, form.direction.data):
        db.session.commit()
    # The order only changes how the reasons are listed: no rescore needed for the points.
    return _panel(SCORING_PAGE, "leads.scoring_rules", _scoring_context(moved=rule.id))


@bp.route("/scoring/rescore", methods=["POST"])
@requires("leads.rules")
def rescore_all():
    _rescore_everyone()
    hx.toast(_("Every lead's score is being recomputed."))
    return _panel(SCORING_PAGE, "leads.scoring_rules", _scoring_context())


# ---- routing rules -------------------------------------------------------------------------


def _people_choices(form) -> None:
    users = db.session.scalars(
        select(User)
        .where(User.active.is_(True), User.role.in_(lead_routing.ROUND_ROBIN_ROLES))
        .order_by(User.name)
    )
    teams = db.session.scalars(select(Team).order_by(Team.name))
    form.owner.choices = choices(
        [("", _("Nobody in particular"))] + [(str(u.id), u.name) for u in users]
    )
    form.team.choices = choices([("", _("No team"))] + [(str(t.id), t.name) for t in teams])
    form.regions.choices = choices(
        (code, name) for code, (name, _deps) in lead_routing.REGIONS.items()
    )


def _routing_form(formdata=None, rule: RoutingRule | None = None) -> RoutingRuleForm:
    prefix = f"edit-{rule.id}" if rule is not None else "new"
    form = RoutingRuleForm(prefix=prefix) if formdata is not None else None
    if form is None:
        form = RoutingRuleForm(formdata=None, prefix=prefix)
        if rule is not None:
            form.load(rule)
    _people_choices(form)
    return form


def _routing_context(**overrides) -> dict:
    rules = db.session.scalars(
        select(RoutingRule)
        .options(joinedload(RoutingRule.owner), joinedload(RoutingRule.team))
        .order_by(RoutingRule.position, RoutingRule.id)
    )
    context = {
        "rules": list(rules),
        "add_form": _routing_form(),
        "editing": None,
        "edit_form": None,
        "dry_form": DryRunForm(formdata=None),
        "decision": None,
        "default_team": lead_routing.default_team(),
        "describe": lead_routing.describe,
        "regions": lead_routing.REGIONS,
    }
    context.update(overrides)
    return context


def _routing_rule(rule_id: int) -> RoutingRule:
    rule = db.session.get(RoutingRule, rule_id)
    if rule is None:
        abort(404)
    return rule


def _save_routing(rule: RoutingRule, form: RoutingRuleForm) -> None:
    rule.name, rule.active = form.name.data, form.active.data
    rule.conditions = form.conditions()
    rule.owner_id = int(form.owner.data) if form.owner.data else None
    rule.team_id = int(form.team.data) if form.team.data else None


@bp.route("/routing")
@requires("leads.rules")
def routing_rules():
    return hx.render(ROUTING_PAGE, {"routing-panel": "panel"}, **_routing_context())


@bp.route("/routing", methods=["POST"])
@requires("leads.rules")
def create_routing_rule():
    form = _routing_form(request.form)
    if not form.validate_on_submit():
        return _panel(ROUTING_PAGE, "leads.routing_rules", _routing_context(add_form=form), 422)
    rule = RoutingRule()
    _save_routing(rule, form)
    leads.add_last(RoutingRule, rule)
    db.session.add(rule)
    db.session.commit()
    hx.toast(_("Routing rule “%(name)s” added.", name=rule.name))
    return _panel(ROUTING_PAGE, "leads.routing_rules", _routing_context())


@bp.route("/routing/<int:rule_id>/edit")
@requires("leads.rules")
def edit_routing_rule(rule_id: int):
    rule = _routing_rule(rule_id)
    context = _routing_context(editing=rule.id, edit_form=_routing_form(rule=rule))
    if hx.is_htmx():
        return hx.render_fragment(ROUTING_PAGE, "panel", **context)
    return hx.render(ROUTING_PAGE, **context)


@bp.route("/routing/<int:rule_id>", methods=["POST"])
@requires("leads.rules")
def update_routing_rule(rule_id: int):
    rule = _routing_rule(rule_id)
    form = _routing_form(request.form, rule=rule)
    if not form.validate_on_submit():
        context = _routing_context(editing=rule.id, edit_form=form)
        return _panel(ROUTING_PAGE, "leads.routing_rules", context, 422)
    _save_routing(rule, form)
    db.session.commit()
    hx.toast(_("Routing rule “%(name)s” saved.", name=rule.name))
    return _panel(ROUTING_PAGE, "leads.routing_rules", _routing_context())


@bp.route("/routing/<int:rule_id>/delete", methods=["POST"])
@requires("leads.rules")
def delete_routing_rule(rule_id: int):
    rule = _routing_rule(rule_id)
    name = rule.name
    db.session.delete(rule)
    db.session.commit()
    hx.toast(_("Routing rule “%(name)s” deleted.", name=name))
    return _panel(ROUTING_PAGE, "leads.routing_rules", _routing_context())


@bp.route("/routing/<int:rule_id>/move", methods=["POST"])
@requires("leads.rules")
def move_routing_rule(rule_id: int):
    rule = _routing_rule(rule_id)
    form = MoveForm()
    if form.validate_on_submit() and leads.move(RoutingRule, rule, form.direction.data):
        db.session.commit()
    return _panel(ROUTING_PAGE, "leads.routing_rules", _routing_context(moved=rule.id))


@bp.route("/routing/dry-run", methods=["POST"])
@requires("leads.rules")
def dry_run():
    """Where a typed sample lead would go: nothing is written, no turn is taken."""
    form = DryRunForm()
    if not form.validate_on_submit():
        context = _routing_context(dry_form=form)
        return _panel(ROUTING_PAGE, "leads.routing_rules", context, 422, block="dry_run")
    facts = lead_routing.sample_facts(
        form.country.data, form.postcode.data, form.employees.data, form.score.data
    )
    decision = lead_routing.decide_sample(facts)
    db.session.rollback()  # a dry run leaves nothing behind, not even a lock
    context = _routing_context(dry_form=form, decision=decision, facts=facts)
    if hx.is_htmx():
        return hx.render_fragment(ROUTING_PAGE, "dry_run", **context)
    return hx.render(ROUTING_PAGE, **context)


# ---- web forms: settings ----------------------------------------------------------------------


def _forms_context(**overrides) -> dict:
    base = current_app.config["BASE_URL"].rstrip("/")
    context = {
        "forms": list(db.session.scalars(select(LeadForm).order_by(LeadForm.name, LeadForm.id))),
        "add_form": LeadFormSettings(formdata=None, prefix="new"),
        "editing": None,
        "edit_form": None,
        "public_url": lambda form: base + url_for("leads.public_form", token=form.token),
        "snippet": embed_snippet,
    }
    context.update(overrides)
    return context


def embed_snippet(url: str) -> str:
    """The HTML a customer pastes into their site: a plain form posting to `url`, with the
    honeypot moved off screen by an inline style (their page, not ours: our CSP forbids it
    here, hence no template holds it)."""
    field = '  <p><label>{label} <{tag} name="{name}"{extra}>{end}</label></p>'
    rows = [
        (_("Name"), "input", "name", ' maxlength="200" autocomplete="name"'),
        (_("Email"), "input", "email", ' type="email" maxlength="254" autocomplete="email"'),
        (_("Phone"), "input", "phone", ' type="tel" maxlength="40" autocomplete="tel"'),
        (_("Company"), "input", "company", ' maxlength="200" autocomplete="organization"'),
        (_("Message"), "textarea", "message", ' maxlength="5000"'),
    ]
    lines = [f'<form method="post" action="{escape(url)}" accept-charset="utf-8">']
    for label, tag, name, extra in rows:
        end = "</textarea>" if tag == "textarea" else ""
        lines.append(field.format(label=escape(label), tag=tag, name=name, extra=extra, end=end))
    lines += [
        '  <div style="position:absolute;left:-10000px" aria-hidden="true">'
        f'<input name="{HONEYPOT}" tabindex="-1" autocomplete="off"></div>',
        f'  <p><button type="submit">{escape(_("Send"))}</button></p>',
        "</form>",
    ]
    return "\n".join(lines)


def _lead_form(form_id: int) -> LeadForm:
    lead_form = db.session.get(LeadForm, form_id)
    if lead_form is None:
        abort(404)
    return lead_form


@bp.route("/forms")
@requires("leads.rules")
def forms():
    return hx.render(FORMS_PAGE, {"forms-panel": "panel"}, **_forms_context())


@bp.route("/forms", methods=["POST"])
@requires("leads.rules")
def create_form():
    form = LeadFormSettings(prefix="new")
    if not form.validate_on_submit():
        return _panel(FORMS_PAGE, "leads.forms", _forms_context(add_form=form), 422)
    lead_form = leads.create_lead_form(
        form.name.data, form.source.data, form.redirect_url.data, form.active.data
    )
    db.session.commit()
    hx.toast(_("Web form “%(name)s” created: paste its code on your site.", name=lead_form.name))
    return _panel(FORMS_PAGE, "leads.forms", _forms_context())


@bp.route("/forms/<int:form_id>/edit")
@requires("leads.rules")
def edit_form(form_id: int):
    lead_form = _lead_form(form_id)
    edit = LeadFormSettings(formdata=None, prefix=f"edit-{form_id}", obj=lead_form)
    context = _forms_context(editing=lead_form.id, edit_form=edit)
    if hx.is_htmx():
        return hx.render_fragment(FORMS_PAGE, "panel", **context)
    return hx.render(FORMS_PAGE, **context)


@bp.route("/forms/<int:form_id>", methods=["POST"])
@requires("leads.rules")
def update_form(form_id: int):
    lead_form = _lead_form(form_id)
    form = LeadFormSettings(prefix=f"edit-{form_id}")
    if not form.validate_on_submit():
        context = _forms_context(editing=lead_form.id, edit_form=form)
        return _panel(FORMS_PAGE, "leads.forms", context, 422)
    lead_form.name, lead_form.source = form.name.data, form.source.data
    lead_form.redirect_url = form.redirect_url.data or None
    lead_form.active = form.active.data
    db.session.commit()
    hx.toast(_("Web form “%(name)s” saved.", name=lead_form.name))
    return _panel(FORMS_PAGE, "leads.forms", _forms_context())


@bp.route("/forms/<int:form_id>/delete", methods=["POST"])
@requires("leads.rules")
def delete_form(form_id: int):
    lead_form = _lead_form(form_id)
    name = lead_form.name
    db.session.delete(lead_form)
    db.session.commit()
    hx.toast(_("Web form “%(name)s” deleted: its address no longer answers.", name=name))
    return _panel(FORMS_PAGE, "leads.forms", _forms_context())


# ---- web forms: the public side -----------------------------------------------------------------


def _safe_redirect(url: str | None) -> str | None:
    """Only an absolute http(s) address: never javascript:, data: or a path of ours."""
    if not url:
        return None
    parts = urlsplit(url)
    return url if parts.scheme in ("http", "https") and parts.netloc else None


def _page_policy(lead_form: LeadForm) -> str | None:
    """The hosted page's Content-Security-Policy when the form sends the visitor on to
    another site: form-action covers the redirect after the post, so that site is allowed
    too. The rest is the app's policy (crm/__init__.py): framing stays forbidden, as
    everywhere (frame-ancestors 'none'); embedding is done with the HTML snippet."""
    target = _safe_redirect(lead_form.redirect_url)
    if target is None:
        return None
    parts = urlsplit(target)
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src 'self'; object-src 'none'; base-uri 'none'; "
        f"form-action 'self' {parts.scheme}://{parts.netloc}; frame-ancestors 'none'"
    )


def _public_page(lead_form: LeadForm, form: PublicLeadForm, status: int = 200):
    response = current_app.make_response(
        (
            render_template(
                "leads/public_form.html", lead_form=lead_form, form=form, honeypot=HONEYPOT
            ),
            status,
        )
    )
    policy = _page_policy(lead_form)
    if policy:
        response.headers["Content-Security-Policy"] = policy
    return response


def _form_limit() -> str:
    return current_app.config.get("LEAD_FORM_LIMIT", DEFAULT_FORM_LIMIT)


@bp.route("/f/<token>")
@public
def public_form(token: str):
    lead_form = leads.live_form(token)
    if lead_form is None:
        abort(404)
    return _public_page(lead_form, PublicLeadForm(formdata=None))


# CSRF-exempt: this form is posted from our customers' own websites, which cannot hold our
# session's token. It only ever creates a lead (no signed-in action is possible through it),
# and the honeypot plus the per-address rate limit stand in against abuse. The exemption
# covers live forms only: a post to any other token goes through the CSRF check (400).
@bp.route("/f/<token>", methods=["POST"])
@public
@csrf.exempt
@limiter.limit(_form_limit, methods=["POST"])
def submit_form(token: str):
    lead_form = leads.live_form(token)
    if lead_form is None:
        if current_app.config.get("WTF_CSRF_ENABLED", True):
            csrf.protect()
        abort(404)
    done = _safe_redirect(lead_form.redirect_url) or url_for("leads.thanks", token=token)
    if request.form.get(HONEYPOT):
        # A bot filled the field people never see: it is told all went well, nothing is kept.
        return redirect(done, 303)
    form = PublicLeadForm()
    if not form.validate():
        return _public_page(lead_form, form, 422)
    first_name, last_name = form.split_name()
    leads.capture_lead(
        source=lead_form.source,
        first_name=first_name,
        last_name=last_name,
        email=form.email.data,
        phone=form.phone.data,
        company_name=form.company.data,
        message=form.message.data,
        route=True,
    )
    db.session.commit()
    return redirect(done, 303)


@bp.route("/f/<token>/thanks")
@public
def thanks(token: str):
    lead_form = leads.live_form(token)
    if lead_form is None:
        abort(404)
    return render_template("leads/public_thanks.html", lead_form=lead_form)


@bp.errorhandler(RateLimitExceeded)
def too_many_submissions(error):
    return render_template("leads/public_limited.html"), 429
