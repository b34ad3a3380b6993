"""Events on the agenda: the form in a dialog, details, drag moves, answers and reports.

Each answer to a change made from the agenda carries the re-rendered agenda
(an <hx-partial> for #agenda, in the state the address bar shows) and an
`agenda:saved` event that closes the dialog; from any other page the browser
goes to the agenda week of the event.
"""

import hashlib
import re
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import abort, request, url_for
from flask_babel import format_datetime, format_time
from flask_babel import gettext as _
from flask_login import current_user
from jinja2_fragments.flask import render_block
from sqlalchemy.orm import selectinload

from crm import htmx as hx
from crm.blueprints.agenda.forms import (
    KIND_LABELS,
    REPEAT_LABELS,
    WEEKDAY_LABELS,
    EventForm,
    MoveForm,
    ReportForm,
)
from crm.blueprints.agenda.routes import bp, current_agenda_query, view_context, viewer_zone
from crm.extensions import db
from crm.form_helpers import choices
from crm.i18n import DEFAULT_TIMEZONE
from crm.models import Company, Contact, Deal, Event, Incident, User
from crm.models.agenda import NO_REMINDER
from crm.models.types import utcnow
from crm.permissions import (
    can_edit_event,
    event_details_visible,
    get_or_404_for,
    requires,
    visible_companies,
    visible_contacts,
    visible_deals,
    visible_incidents,
)
from crm.services import events as event_service
from crm.services.agenda_views import active_users, may_plan_for
from crm.services.recurrence import (
    Occurrence,
    build_rule,
    from_local_naive,
    local_midnight,
    to_local_naive,
)
from crm.services.text_search import search_condition

DIALOG = "event-dialog-body"
_REFERENCE = re.compile(r"#(\d+)\)?\s*$")
REFUSALS = {
    "ends_before_start": lambda: _("The end is before the start."),
    "not_started": lambda: _("The report can be written once the meeting has started."),
    "unknown_response": lambda: _("Unknown answer."),
}


# ---- references for the pickers ------------------------------------------------------------


def contact_reference(contact: Contact) -> str:
    company = f" · {contact.company.name}" if contact.company else ""
    return f"{contact.name}{company} (#{contact.id})"


def company_reference(company: Company) -> str:
    return f"{company.name} (#{company.id})"


def deal_reference(deal: Deal) -> str:
    return f"{deal.title} (#{deal.id})"


def incident_reference(incident: Incident) -> str:
    return f"{incident.subject} (#{incident.id})"


# Each kind of linked record: its model, who may see which (a link is to a record the
# user may see, else "Pick one from the list"), and its text in the picker.
LINKS = {
    "contact": (Contact, visible_contacts, contact_reference),
    "company": (Company, visible_companies, company_reference),
    "deal": (Deal, visible_deals, deal_reference),
    "incident": (Incident, visible_incidents, incident_reference),
}


def _linked(kind: str, text: str):
    """The record a picker's text names ("Name (#12)"), if the user may see it."""
    model, scope, _reference = LINKS[kind]
    found = _REFERENCE.search(text or "")
    if not found:
        return None
    return db.session.scalars(scope(current_user).where(model.id == int(found.group(1)))).first()


def _kept_link(kind: str, text: str, event: Event):
    """The record `event` is linked to already, when `text` still names it: saving an event
    keeps a link that its editor may no longer see (the organizer of a meeting about an
    incident planned for them by their manager, say)."""
    found = _REFERENCE.search(text or "")
    if found and getattr(event, f"{kind}_id") == int(found.group(1)):
        return getattr(event, kind)
    return None


def _linked_by_id(kind: str, record_id):
    model, scope, _reference = LINKS[kind]
    if not record_id:
        return None
    return db.session.scalars(scope(current_user).where(model.id == record_id)).first()


# ---- the form ---------------------------------------------------------------------------


def _prepare(form: EventForm, organizer: User | None = None) -> EventForm:
    users = active_users()
    form.users.choices = choices((u.id, u.name) for u in users)
    form.organizers = [u for u in users if may_plan_for(current_user, u)]
    form.organizer.choices = choices((str(u.id), u.name) for u in form.organizers)
    if form.organizer.data in (None, "", "None"):
        form.organizer.data = str((organizer or current_user).id)
    return form


def _chosen_contacts(ids) -> list[Contact]:
    ids = [i for i in ids or () if isinstance(i, int)]
    if not ids:
        return []
    query = (
        visible_contacts(current_user)
        .where(Contact.id.in_(ids))
        .options(selectinload(Contact.company))
    )
    return list(db.session.scalars(query))


def _local(moment: datetime, zone: ZoneInfo) -> datetime:
    return to_local_naive(moment, zone)


def _fill_times(form: EventForm, start: datetime, end: datetime, all_day: bool, zone: ZoneInfo):
    """Put aware UTC times in the form as the viewer's wall clock (or the event's days)."""
    local_start, local_end = _local(start, zone), _local(end, zone)
    form.all_day.data = all_day
    form.start_date.data = local_start.date()
    form.start_time.data = local_start.time()
    if all_day:
        last = (local_end - timedelta(days=1)).date()
        form.end_date.data = last if last > local_start.date() else None
        form.start_time.data = time(9)
        form.end_time.data = time(10)
    else:
        form.end_time.data = local_end.time()
        form.end_date.data = local_end.date() if local_end.date() != local_start.date() else None


def _parse_local(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def _new_form() -> EventForm:
    """The form for a new event, filled from the slot clicked and the page it came from."""
    form = EventForm(formdata=None)
    zone = viewer_zone()
    start = _parse_local(request.args.get("start"))
    end = _parse_local(request.args.get("end"))
    day = request.args.get("day")
    if start is None and day:
        try:
            start = datetime.combine(date.fromisoformat(day), time(9))
        except ValueError:
            start = None
    if start is None:
        now = _local(utcnow(), zone)
        start = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    if end is None or end <= start:
        end = start + timedelta(hours=1)
    all_day = request.args.get("all_day") == "1"
    _fill_times(form, from_local_naive(start, zone), from_local_naive(end, zone), all_day, zone)
    if all_day:
        form.end_date.data = None
    kind = request.args.get("kind")
    if kind in KIND_LABELS and kind != "task":
        form.kind.data = kind
    organizer = None
    organizer_id = request.args.get("organizer", type=int)
    if organizer_id:
        organizer = db.session.get(User, organizer_id)
        if organizer is None or not may_plan_for(current_user, organizer):
            organizer = None
    incident = _linked_by_id("incident", request.args.get("incident_id", type=int))
    if "incident_id" in request.args and incident is None:
        abort(404)  # no such incident, or not one this user may see
    for kind_name in LINKS:
        record = _linked_by_id(kind_name, request.args.get(f"{kind_name}_id", type=int))
        if record is not None:
            getattr(form, f"linked_{kind_name}").data = LINKS[kind_name][2](record)
    contact = _linked_by_id("contact", request.args.get("contact_id", type=int))
    if contact is not None:
        form.contacts.data = [contact.id]
        if contact.company and not form.linked_company.data:
            form.linked_company.data = company_reference(contact.company)
    deal = _linked_by_id("deal", request.args.get("deal_id", type=int))
    if deal is not None and not form.linked_contact.data and deal.contact:
        form.linked_contact.data = contact_reference(deal.contact)
        form.contacts.data = [deal.contact.id]
    if deal is not None and not form.linked_company.data and deal.company:
        form.linked_company.data = company_reference(deal.company)
    if incident is not None:
        # Planned from the incident's page: the link is fixed, its customer is invited.
        form.incident_fixed.data = "1"
        customer = _linked_by_id("contact", incident.contact_id)
        if customer is not None and not form.linked_contact.data:
            form.linked_contact.data = contact_reference(customer)
            form.contacts.data = [customer.id]
        company_id = incident.company_id or (customer.company_id if customer else None)
        company = _linked_by_id("company", company_id)
        if company is not None and not form.linked_company.data:
            form.linked_company.data = company_reference(company)
    person = contact or (deal.contact if deal else None)
    if incident is not None:
        form.title.data = incident.subject
    elif person is not None:
        form.title.data = _("Meeting with %(name)s", name=person.name)
    elif deal is not None:
        form.title.data = deal.title
    return _prepare(form, organizer)


def _edit_form(occurrence: Occurrence) -> EventForm:
    event = occurrence.event
    root = event_service.root_of(event)
    form = EventForm(formdata=None)
    zone = ZoneInfo(event.timezone) if event.all_day else viewer_zone()
    _fill_times(form, occurrence.start, occurrence.end, event.all_day, zone)
    form.title.data = event.title
    form.kind.data = event.kind
    form.location.data = event.location
    form.description.data = event.description
    form.private.data = event.private
    form.reminder.data = reminder_choice(event.reminder_minutes)
    form.organizer.data = str(event.organizer_id) if event.organizer_id else None
    form.users.data = [a.user_id for a in event.attendees if a.user_id]
    form.contacts.data = [a.contact_id for a in event.attendees if a.contact_id]
    form.linked_contact.data = contact_reference(event.contact) if event.contact else ""
    form.linked_company.data = company_reference(event.company) if event.company else ""
    form.linked_deal.data = deal_reference(event.deal) if event.deal else ""
    form.linked_incident.data = ""
    if event.incident_id is not None:
        # An incident the editor may not see keeps its link, but not its subject.
        seen = _linked_by_id("incident", event.incident_id)
        form.linked_incident.data = incident_reference(seen) if seen else f"#{event.incident_id}"
    _fill_rule(form, root.rrule)
    form.scope.data = "this"
    return _prepare(form)


def _fill_rule(form: EventForm, rule: str | None) -> None:
    parts = dict(p.partition("=")[::2] for p in (rule or "").split(";") if "=" in p)
    form.repeat.data = parts.get("FREQ", "") if parts.get("FREQ") in REPEAT_LABELS else ""
    form.interval.data = int(parts.get("INTERVAL", "1") or 1)
    form.weekdays.data = [d for d in parts.get("BYDAY", "").split(",") if d]
    if "UNTIL" in parts:
        form.ends.data = "until"
        form.until.data = datetime.strptime(parts["UNTIL"][:8], "%Y%m%d").date()
    elif "COUNT" in parts:
        form.ends.data = "count"
        form.count.data = int(parts["COUNT"])
    else:
        form.ends.data = "never"


def reminder_minutes(choice: str | None) -> int | None:
    """The reminder select's value as stored: "" the default, "none" no reminder at all."""
    if choice == "none":
        return NO_REMINDER
    return int(choice) if choice and choice.isdigit() else None


def reminder_choice(minutes: int | None) -> str:
    if minutes is None:
        return ""
    return "none" if minutes == NO_REMINDER else str(minutes)


def _fields(form: EventForm, occurrence: Occurrence | None = None):
    """EventFields from a validated form, or None with the errors beside the fields."""
    ok = True
    organizer = None  # editing: unchanged unless chosen; creating: me unless chosen
    if form.organizer.data and len(form.organizers) > 1:
        organizer = next((u for u in form.organizers if str(u.id) == form.organizer.data), None)
        if organizer is None:
            form.organizer.errors.append(_("You cannot plan for this person."))
            ok = False
    if occurrence is None and organizer is None:
        organizer = current_user
    all_day = form.all_day.data
    if organizer is not None:
        event_zone = ZoneInfo(organizer.timezone or DEFAULT_TIMEZONE)
    else:
        event_zone = ZoneInfo(occurrence.event.timezone)
    first = form.start_date.data
    last = form.end_date.data or first
    if all_day:
        if last < first:
            form.end_date.errors.append(_("The end is before the start."))
            return None
        starts_at = local_midnight(first, event_zone)
        ends_at = local_midnight(last + timedelta(days=1), event_zone)
    else:
        zone = viewer_zone()
        starts_at = from_local_naive(datetime.combine(first, form.start_time.data), zone)
        ends_at = from_local_naive(datetime.combine(last, form.end_time.data), zone)
        if ends_at <= starts_at:
            form.end_time.errors.append(_("The end is before the start."))
            ok = False
    rule = None
    if form.repeat.data and (occurrence is None or form.scope.data == "series"):
        if form.ends.data == "until" and form.until.data and form.until.data < first:
            form.until.errors.append(_("The series must end after it starts."))
            ok = False
        else:
            rule = build_rule(
                form.repeat.data,
                form.interval.data or 1,
                form.weekdays.data if form.repeat.data == "WEEKLY" else None,
                until=form.until.data if form.ends.data == "until" else None,
                count=form.count.data if form.ends.data == "count" else None,
            )
    links = {}
    for kind in LINKS:
        field = getattr(form, f"linked_{kind}")
        text = (field.data or "").strip()
        links[kind] = _linked(kind, text) if text else None
        if text and links[kind] is None and occurrence is not None:
            links[kind] = _kept_link(kind, text, occurrence.event)
        if text and links[kind] is None:
            field.errors.append(_("Pick one from the list."))
            ok = False
    contacts = _chosen_contacts(form.contacts.data)
    if len(contacts) != len(set(form.contacts.data or ())):
        form.contacts.errors.append(_("Unknown contact."))
        ok = False
    if not ok:
        return None
    return event_service.EventFields(
        title=form.title.data,
        kind=form.kind.data,
        starts_at=starts_at,
        ends_at=ends_at,
        all_day=all_day,
        location=form.location.data or None,
        description=(form.description.data or "").strip() or None,
        private=form.private.data,
        rrule=rule,
        reminder_minutes=reminder_minutes(form.reminder.data),
        organizer=organizer,
        user_ids=list(form.users.data or ()),
        contact_ids=[c.id for c in contacts],
        contact=links["contact"],
        company=links["company"],
        deal=links["deal"],
        incident=links["incident"],
    )


def _time_of(moment: datetime) -> str:
    return format_time(moment, "short")


def _conflict_signature(windows, user_ids) -> str:
    text = "|".join(f"{a.isoformat()}-{b.isoformat()}" for a, b in windows)
    text += "|" + ",".join(str(i) for i in sorted(set(user_ids)))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _conflicts_for(fields, timezone: str, exclude_id: int | None):
    if fields.all_day:
        return [], ""
    organizer_id = fields.organizer.id if fields.organizer else None
    people = [*fields.user_ids, organizer_id]
    windows = event_service.windows_of(fields, timezone)
    found = event_service.find_conflicts(windows, people, exclude_id)
    return found, _conflict_signature(windows, people)


def _form_page(form, occurrence=None, conflicts=(), status=200):
    fixed_incident = None
    if form.incident_fixed.data == "1" and not form.linked_incident.errors:
        fixed_incident = _linked("incident", form.linked_incident.data)
    context = {
        "form": form,
        "fixed_incident": fixed_incident,
        "occurrence": occurrence,
        "chosen_contacts": _chosen_contacts(form.contacts.data),
        "conflicts": conflicts,
        "kind_labels": KIND_LABELS,
        "weekday_labels": WEEKDAY_LABELS,
        "time_of": _time_of,
    }
    if hx.target_id() == DIALOG and hx.is_partial():
        return hx.render_fragment("agenda/event_page.html", "dialog", status=status, **context)
    return hx.render("agenda/event_page.html", status=status, **context)


def _after_change(message: str, event: Event | None, level: str = "success"):
    """Show the agenda as it is now, close the dialog; elsewhere, go to the agenda."""
    hx.toast(message, level)
    query = current_agenda_query()
    if hx.is_htmx() and query is not None:
        hx.trigger("agenda:saved")
        return hx.render_fragment("agenda/index.html", "changed", **view_context(query))
    args = {}
    if event is not None:
        args["date"] = event.starts_at.astimezone(viewer_zone()).date().isoformat()
    return hx.location(url_for("agenda.index", **args))


def _refused(code: str, status: int = 422):
    return hx.error_response(status, REFUSALS.get(code, lambda: code)())


def _occurrence_or_404(key: str) -> Occurrence:
    occurrence = event_service.find_occurrence(key)
    if occurrence is None:
        abort(404)
    return occurrence


def _editable_or_403(occurrence: Occurrence) -> None:
    if not can_edit_event(current_user, occurrence.event):
        abort(403)


@bp.route("/events/new")
@requires("agenda.edit")
def new_event():
    return _form_page(_new_form())


@bp.route("/events", methods=["POST"])
@requires("agenda.edit")
def create_event():
    form = _prepare(EventForm())
    fields = _fields(form) if form.validate_on_submit() else None
    if fields is None:
        return _form_page(form, status=422)
    timezone = (fields.organizer.timezone if fields.organizer else None) or DEFAULT_TIMEZONE
    conflicts, signature = _conflicts_for(fields, timezone, None)
    if conflicts and form.confirm_conflicts.data != signature:
        form.confirm_conflicts.data = signature
        return _form_page(form, conflicts=conflicts)
    event = event_service.create_event(current_user, fields)
    db.session.commit()
    return _after_change(_("Event created."), event)


def _detail_context(occurrence: Occurrence, **extra) -> dict:
    event = occurrence.event
    root = event_service.root_of(event)
    mine = next((a for a in event.attendees if a.user_id == current_user.id), None)
    context = {
        "occurrence": occurrence,
        "event": event,
        "root": root,
        "visible": event_details_visible(current_user, event),
        "editable": can_edit_event(current_user, event),
        "my_attendance": mine,
        "started": utcnow() >= occurrence.start,
        "report_form": ReportForm(formdata=None, data={"report": event.report or ""}),
        "kind_labels": KIND_LABELS,
        "repeat_labels": REPEAT_LABELS,
        "rule": dict(p.partition("=")[::2] for p in (root.rrule or "").split(";") if "=" in p),
        "is_occurrence": occurrence.recurrence_id is not None or event.parent_id is not None,
        "time_of": _time_of,
        "timedelta_day": timedelta(days=1),
    }
    context.update(extra)
    return context


def _detail_page(occurrence: Occurrence, status: int = 200, **extra):
    context = _detail_context(occurrence, **extra)
    if hx.target_id() == DIALOG and hx.is_partial():
        return hx.render_fragment("agenda/event_detail.html", "dialog", status=status, **context)
    return hx.render("agenda/event_detail.html", status=status, **context)


@bp.route("/events/<key>")
@requires("agenda.view")
def show_event(key: str):
    return _detail_page(_occurrence_or_404(key))


@bp.route("/events/<key>/edit")
@requires("agenda.edit")
def edit_event(key: str):
    occurrence = _occurrence_or_404(key)
    _editable_or_403(occurrence)
    return _form_page(_edit_form(occurrence), occurrence)


@bp.route("/events/<key>", methods=["POST"])
@requires("agenda.edit")
def update_event(key: str):
    occurrence = _occurrence_or_404(key)
    _editable_or_403(occurrence)
    form = _prepare(EventForm())
    fields = _fields(form, occurrence) if form.validate_on_submit() else None
    if fields is None:
        return _form_page(form, occurrence, status=422)
    root = event_service.root_of(occurrence.event)
    check = fields
    if fields.organizer is None:
        organizer = occurrence.event.organizer
        check = event_service.EventFields(**{**fields.__dict__, "organizer": organizer})
    conflicts, signature = _conflicts_for(check, root.timezone, root.id)
    if conflicts and form.confirm_conflicts.data != signature:
        form.confirm_conflicts.data = signature
        return _form_page(form, occurrence, conflicts=conflicts)
    scope = form.scope.data if form.scope.data in ("this", "series") else "this"
    event = event_service.update_occurrence(current_user, occurrence, fields, scope)
    db.session.commit()
    return _after_change(_("Event saved."), event)


def _move_times(form: MoveForm, occurrence: Occurrence):
    """New UTC start and end from a drag: local times (time grid) or a day (month, team)."""
    zone = viewer_zone()
    if form.day.data:
        if occurrence.event.all_day:
            zone = ZoneInfo(occurrence.event.timezone)
        local_start = _local(occurrence.start, zone)
        shift = datetime.combine(form.day.data, local_start.time()) - local_start
        length = _local(occurrence.end, zone) - local_start
        start = from_local_naive(local_start + shift, zone)
        return start, from_local_naive(local_start + shift + length, zone)
    start, end = _parse_local(form.start.data), _parse_local(form.end.data)
    if start is None or end is None:
        return None
    return from_local_naive(start, zone), from_local_naive(end, zone)


@bp.route("/events/<key>/move", methods=["POST"])
@requires("agenda.edit")
def move_event(key: str):
    occurrence = _occurrence_or_404(key)
    if not can_edit_event(current_user, occurrence.event):
        return hx.error_response(
            403, _("Only the organizer, their manager or an administrator can move this event.")
        )
    form = MoveForm()
    times = _move_times(form, occurrence) if form.validate_on_submit() else None
    if times is None:
        return hx.error_response(422, _("Drop the event on a day or a time of the agenda."))
    start, end = times
    if end <= start:
        return _refused("ends_before_start")
    root = event_service.root_of(occurrence.event)
    event = occurrence.event
    people = [a.user_id for a in event.attendees if a.user_id] + [event.organizer_id]
    conflicts = event_service.find_conflicts([(start, end)], people, root.id)
    event = event_service.move_occurrence(occurrence, start, end)
    db.session.commit()
    if conflicts and not event.all_day:
        return _after_change(conflict_message(conflicts), event, level="warning")
    return _after_change(_("Event moved."), event)


def conflict_message(conflicts) -> str:
    busy = ", ".join(
        _(
            "%(name)s (%(start)s–%(end)s)",
            name=c.user.name,
            start=format_datetime(c.occurrence.start, "short"),
            end=format_time(c.occurrence.end, "short"),
        )
        for c in conflicts[:5]
    )
    return _("Saved, but already busy then: %(people)s.", people=busy)


@bp.route("/events/<key>/delete", methods=["POST"])
@requires("agenda.edit")
def delete_event(key: str):
    occurrence = _occurrence_or_404(key)
    _editable_or_403(occurrence)
    scope = request.form.get("scope", "series")
    event_service.delete_occurrence(occurrence, "this" if scope == "this" else "series")
    db.session.commit()
    return _after_change(_("Event deleted."), None)


@bp.route("/events/<key>/respond", methods=["POST"])
@requires("agenda.edit")
def respond(key: str):
    occurrence = _occurrence_or_404(key)
    answer = request.form.get("response", "")
    if answer not in ("accepted", "declined", "tentative"):
        return _refused("unknown_response")
    if event_service.respond(current_user, occurrence.event, answer) is None:
        abort(403)
    db.session.commit()
    hx.toast(_("Accepted.") if answer == "accepted" else _("Answer saved."))
    db.session.expire_all()
    occurrence = event_service.find_occurrence(key) or occurrence
    response = _detail_page(occurrence)
    query = current_agenda_query()
    if hx.is_htmx() and query is not None:
        # Declining takes the event off my agenda: the agenda behind the dialog follows.
        agenda = render_block("agenda/index.html", "changed", **view_context(query))
        response.set_data(response.get_data(as_text=True) + agenda)
    return response


@bp.route("/events/<key>/report", methods=["POST"])
@requires("agenda.edit")
def save_report(key: str):
    occurrence = _occurrence_or_404(key)
    _editable_or_403(occurrence)
    form = ReportForm()
    if not form.validate_on_submit():
        return _detail_page(occurrence, status=422, report_form=form)
    if utcnow() < occurrence.start:
        return _refused("not_started")
    event = event_service.report_target(occurrence)
    event_service.save_report(current_user, event, form.report.data.strip())
    db.session.commit()
    hx.toast(_("Report saved on the timeline."))
    key = str(event.id)
    return _detail_page(event_service.find_occurrence(key))


# ---- an incident's meetings --------------------------------------------------------------


@bp.route("/incidents/<int:incident_id>/meetings")
@requires("agenda.view")
def incident_meetings(incident_id: int):
    """The next and the last meetings about an incident the user may see: a page of its own,
    and the list the incident's page loads once it is shown."""
    incident = get_or_404_for(current_user, Incident, incident_id)
    return hx.render(
        "agenda/incident_meetings.html",
        {"incident-meetings": "list"},
        incident=incident,
        meetings=event_service.incident_meetings(incident, current_user),
        kind_labels=KIND_LABELS,
    )


# ---- pickers ------------------------------------------------------------------------------


@bp.route("/contact-options")
@requires("agenda.edit")
def contact_options():
    """Contacts to invite, as buttons that add a chip to the form."""
    q = request.args.get("q", "").strip()[:100]
    found = []
    if len(q) >= 2:
        found = db.session.scalars(
            visible_contacts(current_user)
            .where(*search_condition(Contact.search_text, q))
            .options(selectinload(Contact.company))
            .order_by(Contact.sort_name, Contact.id)
            .limit(8)
        ).all()
    return hx.render_fragment("agenda/event_page.html", "contact_options", contacts=found, q=q)


@bp.route("/contact-chip")
@requires("agenda.edit")
def contact_chip():
    contact = _linked_by_id("contact", request.args.get("id", type=int))
    if contact is None:
        abort(404)
    return hx.render_fragment("agenda/event_page.html", "contact_chip", contact=contact)


@bp.route("/link-options")
@requires("agenda.edit")
def link_options():
    """<option>s of a linked-record picker (a <datalist>): contacts, companies, deals or
    incidents."""
    kind = request.args.get("type", "contact")
    if kind not in LINKS:
        abort(404)
    q = (request.args.get(f"linked_{kind}") or request.args.get("q") or "").strip()[:100]
    model, scope, reference = LINKS[kind]
    found = []
    if len(q) >= 2 and not _REFERENCE.search(q):
        column = {
            "contact": Contact.search_text,
            "company": Company.name_key,
            "deal": Deal.title_key,
            "incident": Incident.subject_key,
        }[kind]
        query = scope(current_user).where(*search_condition(column, q)).limit(10)
        if kind == "contact":
            query = query.options(selectinload(Contact.company))
        found = db.session.scalars(query).all()
    return hx.render_fragment(
        "agenda/event_page.html", "link_options", options=[reference(r) for r in found]
    )
