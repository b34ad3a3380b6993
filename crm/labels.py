"""Display names of stored codes, translated at render time."""

from flask_babel import lazy_gettext as _l
from flask_babel import lazy_pgettext

ROLE_LABELS = {
    "admin": _l("Administrator"),
    "manager": _l("Manager"),
    "sales": _l("Sales rep"),
    "support": _l("Support agent"),
    "technician": _l("Technician"),
}

STAGE_LABELS = {
    "lead": _l("Lead"),
    "prospect": _l("Prospect"),
    "customer": _l("Customer"),
    "former": _l("Former customer"),
}

ACTIVITY_LABELS = {
    "note": _l("Note"),
    "call": _l("Call"),
    "email": _l("Email"),
    "meeting": _l("Meeting"),
    "visit": _l("Visit"),
    "system": _l("Change"),
}

CALL_OUTCOME_LABELS = {
    "reached": _l("Reached"),
    "voicemail": _l("Left a voicemail"),
    "no_answer": _l("No answer"),
    "wrong_number": _l("Wrong number"),
}

# Incidents (crm/models/support.py), shared by the queue, the SLA and dispatch pages.
INCIDENT_KIND_LABELS = {
    "information": _l("Information request"),
    "technical": _l("Technical incident"),
    "complaint": _l("Complaint"),
}

PRIORITY_LABELS = {
    "low": _l("Low"),
    "normal": _l("Normal"),
    "high": _l("High"),
    "urgent": _l("Urgent"),
}

INCIDENT_STATUS_LABELS = {
    "new": _l("New"),
    "open": lazy_pgettext("incident status", "Open"),
    "waiting": _l("Waiting on customer"),
    "resolved": _l("Resolved"),
    "closed": _l("Closed"),
}

CHANNEL_LABELS = {
    "phone": _l("Phone"),
    "email": _l("Email"),
    "web": _l("Web"),
    "visit": _l("Visit"),
}

# Interventions (crm/models/support.py): the dispatch board and the technician's day.
INTERVENTION_STATUS_LABELS = {
    "unscheduled": _l("Unscheduled"),
    "planned": _l("Planned"),
    "en_route": _l("En route"),
    "on_site": _l("On site"),
    "done": lazy_pgettext("intervention status", "Done"),
    "cancelled": _l("Cancelled"),
}

AREA_LABELS = {
    "home": _l("Start"),
    "contacts": _l("Contacts"),
    "leads": _l("Leads"),
    "companies": _l("Companies"),
    "deals": _l("Deals"),
    "products": _l("Products"),
    "forecast": _l("Forecast"),
    "agenda": _l("Agenda"),
    "tasks": _l("Tasks"),
    "incidents": _l("Incidents"),
    "interventions": _l("Interventions"),
    "reports": _l("Reports"),
    "dashboards": _l("Dashboard"),
    "admin": _l("Administration"),
}


def navigation() -> list[tuple[str, str, str, str]]:
    """(endpoint, label, permission, blueprint) of each area in the side bar."""
    return _existing(
        [
            ("main.home", AREA_LABELS["home"], "home.view", "home"),
            ("dashboards.index", AREA_LABELS["dashboards"], "dashboards.view", "dashboards"),
            ("contacts.index", AREA_LABELS["contacts"], "contacts.list", "contacts"),
            ("leads.hot", AREA_LABELS["leads"], "leads.view", "leads"),
            ("companies.index", AREA_LABELS["companies"], "contacts.list", "companies"),
            ("deals.board", AREA_LABELS["deals"], "deals.view", "deals"),
            ("deals.forecast", AREA_LABELS["forecast"], "forecast.view", "forecast"),
            ("products.index", AREA_LABELS["products"], "products.view", "products"),
            ("agenda.index", AREA_LABELS["agenda"], "agenda.view", "agenda"),
            ("tasks.index", AREA_LABELS["tasks"], "tasks.use", "tasks"),
            ("incidents.index", AREA_LABELS["incidents"], "incidents.view", "incidents"),
            (
                "interventions.index",
                AREA_LABELS["interventions"],
                "interventions.view",
                "interventions",
            ),
            ("reports.index", AREA_LABELS["reports"], "reports.view", "reports"),
            ("campaigns.index", _l("Campaigns"), "campaigns.manage", "campaigns"),
            ("campaigns.segment_index", _l("Segments"), "segments.use", "segments"),
            ("admin.list_users", AREA_LABELS["admin"], "users.manage", "admin"),
        ]
    )


def sidebar_links(user) -> list[tuple[str, str, object, str]]:
    """(endpoint, url, label, blueprint) of the areas `user` may open, in side bar order.

    Kept per application and role: every page shows the side bar, and what it holds (the
    areas a role may open, by POLICY in the code, and their addresses) does not change
    while the process runs. The labels stay lazy: each page writes its reader's language.
    """
    from flask import current_app, request, url_for

    from crm.permissions import has_permission

    sidebars = current_app.extensions.setdefault("crm_sidebars", {})
    key = (user.role, request.script_root)
    links = sidebars.get(key)
    if links is None:
        links = [
            (endpoint, url_for(endpoint), label, area)
            for endpoint, label, permission, area in navigation()
            if has_permission(user, permission)
        ]
        sidebars[key] = links
    return links


def admin_areas() -> list[tuple[str, str, str]]:
    """(endpoint, label, permission) of each administration page, for the admin tabs."""
    return _existing(
        [
            ("admin.list_users", _l("Users"), "users.manage"),
            ("admin.pipelines", _l("Pipelines"), "pipelines.manage"),
            ("custom_fields.index", _l("Custom fields"), "custom_fields.manage"),
            ("mailboxes.index", _l("Mailboxes"), "mailboxes.manage"),
            ("leads.scoring_rules", _l("Lead scoring"), "leads.rules"),
            ("leads.routing_rules", _l("Lead routing"), "leads.rules"),
            ("leads.forms", _l("Web forms"), "leads.rules"),
            ("imports.index", _l("Imports"), "imports.run"),
            ("admin.security", _l("Security"), "security.manage"),
            ("admin.audit_log", _l("Audit log"), "audit.view"),
            ("admin.system", _l("System"), "system.view"),
        ]
    )


def _existing(items: list) -> list:
    """Only the areas whose page is there (a blueprint may be switched off)."""
    from flask import current_app

    return [item for item in items if item[0] in current_app.view_functions]


def system_event_text(data: dict | None) -> str:
    """The sentence for a system entry of the timeline, in the reader's language."""
    from flask_babel import gettext as _

    data = data or {}
    event = data.get("event")
    if event == "created":
        return _("Record created.")
    if event == "stage":
        return _(
            "Stage changed from %(old)s to %(new)s.",
            old=STAGE_LABELS.get(data.get("from"), data.get("from")),
            new=STAGE_LABELS.get(data.get("to"), data.get("to")),
        )
    if event == "deal_created":
        return _("Deal created: %(deal)s.", deal=data.get("deal"))
    if event == "deal_stage":
        if data.get("reason"):
            return _(
                "Deal %(deal)s moved from %(old)s to %(new)s: %(reason)s",
                deal=data.get("deal"),
                old=data.get("from"),
                new=data.get("to"),
                reason=data["reason"],
            )
        return _(
            "Deal %(deal)s moved from %(old)s to %(new)s.",
            deal=data.get("deal"),
            old=data.get("from"),
            new=data.get("to"),
        )
    if event == "owner":
        if data.get("to"):
            return _("Owner changed to %(name)s.", name=data["to"])
        return _("Owner removed.")
    if event == "incident_created":
        return _(
            "Incident %(ref)s opened: %(subject)s", ref=data.get("ref"), subject=data.get("subject")
        )
    if event == "complaint_task":
        return _(
            "Complaint %(ref)s: follow-up task for %(name)s.",
            ref=data.get("ref"),
            name=data.get("owner"),
        )
    if event == "complaint_deal":
        return _(
            "Complaint %(ref)s: follow-up deal for %(name)s.",
            ref=data.get("ref"),
            name=data.get("owner"),
        )
    if event == "intervention_status" and data.get("status") == "en_route":
        return _(
            "%(name)s is on the way: %(title)s.",
            name=data.get("technician"),
            title=data.get("title"),
        )
    if event == "intervention_status" and data.get("status") == "on_site":
        return _(
            "%(name)s arrived on site: %(title)s.",
            name=data.get("technician"),
            title=data.get("title"),
        )
    if event == "unsubscribed":
        return _(
            "Unsubscribed from marketing email (campaign %(name)s).", name=data.get("campaign")
        )
    if event == "merged":
        return _("Merged with %(name)s (#%(id)s).", name=data.get("name"), id=data.get("id"))
    return _("Record changed.")
