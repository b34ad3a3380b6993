"""Task pages and changes: my tasks, quick-add, complete in one click, inline edit.

The same form serves the task list, the "Open tasks" panel of a contact, company
or deal page, and the follow-up proposed after a call; its hidden `context` says
where it lives, so the answer is the piece of that page that changed.
"""

from zoneinfo import ZoneInfo

from flask import Blueprint, current_app, render_template, request, url_for
from flask_babel import format_time
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from crm import htmx as hx
from crm.blueprints.tasks.forms import TaskForm
from crm.extensions import db
from crm.form_helpers import choices
from crm.i18n import select_timezone
from crm.models import Company, Contact, Deal, Task, User
from crm.permissions import (
    get_or_404_for,
    has_permission,
    requires,
    visible_companies,
    visible_contacts,
    visible_deals,
)
from crm.services import tasks as task_service
from crm.services.record_search import find_records
from crm.services.recurrence import to_local_naive
from crm.services.reminders import user_zone

bp = Blueprint("tasks", __name__, url_prefix="/tasks")

LIST_PARTIALS = {"task-groups": "groups"}
RECORD_MODELS = {"contact": Contact, "company": Company, "deal": Deal}
RECORD_PERMISSIONS = {"contact": "contacts.view", "company": "contacts.view", "deal": "deals.view"}
LINK_SEARCH_LIMIT = 5


def viewer_zone() -> ZoneInfo:
    return ZoneInfo(select_timezone())


# ---- forms -----------------------------------------------------------------


def task_form(formdata=None, task: Task | None = None, **data) -> TaskForm:
    """A TaskForm with its assignee choices; filled from `task` or `data` when not posted."""
    form = TaskForm(formdata=formdata)
    people = task_service.assignable_users(current_user)
    if task is not None and task.assignee is not None and task.assignee not in people:
        people.append(task.assignee)
    form.assignee.choices = choices((str(u.id), u.name) for u in people)
    if formdata is None:
        if task is not None:
            _fill_from_task(form, task)
        else:
            form.assignee.data = str(current_user.id)
        for name, value in data.items():
            getattr(form, name).data = value
    # Several task forms share a page (a panel, the follow-up, an editor): unique ids.
    slug = form.context.data or (f"edit-{task.id}" if task is not None else "new")
    for form_field in form:
        form_field.id = f"task-{slug.replace(':', '-')}-{form_field.name}"
    return form


def _fill_from_task(form: TaskForm, task: Task) -> None:
    form.title.data = task.title
    form.notes.data = task.notes
    form.assignee.data = str(task.assignee_id or current_user.id)
    form.reminder.data = "" if task.reminder_minutes is None else str(task.reminder_minutes)
    if task.due_at is not None:
        zone = user_zone(task.assignee) if task.all_day and task.assignee else viewer_zone()
        local = to_local_naive(task.due_at, zone)
        form.due_date.data = local.date()
        form.due_time.data = None if task.all_day else local.time()
    linked = link_of(task)
    form.link.data, form.link_label = linked if linked else ("", None)


def link_of(task: Task) -> tuple[str, str] | None:
    """("deal:7", "Renewal 2027") for the record a task is about, the most precise first."""
    if task.deal is not None:
        return f"deal:{task.deal.id}", task.deal.title
    if task.contact is not None:
        return f"contact:{task.contact.id}", task.contact.name
    if task.company is not None:
        return f"company:{task.company.id}", task.company.name
    return None


def _linked_record(form: TaskForm):
    """The record the form links to, fetched through the viewer's scope, or None."""
    kind, _sep, record_id = (form.link.data or "").partition(":")
    if not kind:
        return None, None
    if not has_permission(current_user, RECORD_PERMISSIONS[kind]):
        form.link.errors.append(_("You cannot link a task to this record."))
        return kind, False
    record = db.session.scalars(
        {"contact": visible_contacts, "company": visible_companies, "deal": visible_deals}[kind](
            current_user
        ).where(RECORD_MODELS[kind].id == int(record_id))
    ).first()
    if record is None:
        form.link.errors.append(_("This record does not exist any more."))
        return kind, False
    return kind, record


def _form_values(form: TaskForm) -> dict | None:
    """The task fields the form describes, or None with errors set beside the fields."""
    if not form.validate_on_submit():
        return None
    assignee = db.session.get(User, int(form.assignee.data))
    kind, record = _linked_record(form)
    if record is False:
        return None
    zone = user_zone(assignee) if form.due_time.data is None else viewer_zone()
    due_at, all_day = task_service.due_from_local(form.due_date.data, form.due_time.data, zone)
    values = {
        "title": form.title.data,
        "due_at": due_at,
        "all_day": all_day,
        "assignee": assignee,
        "notes": (form.notes.data or "").strip() or None,
        "reminder_minutes": form.reminder_minutes,
        "contact": record if kind == "contact" else None,
        "company": record if kind == "company" else None,
        "deal": record if kind == "deal" else None,
    }
    if kind == "contact" and record.company is not None:
        values["company"] = record.company
    if kind == "deal":
        values["contact"], values["company"] = record.contact, record.company
    return values


# ---- the list --------------------------------------------------------------


def _filters() -> dict:
    status = request.args.get("status", "open")
    assignee = request.args.get("assignee", "me")
    return {"status": status if status in ("open", "done") else "open", "assignee": assignee}


def _list_context(filters: dict) -> dict:
    zone = viewer_zone()
    context = {"filters": filters, "zone": zone, "now": task_service.now()}
    if filters["status"] == "done":
        context["done"] = task_service.done_tasks(current_user, filters["assignee"])
    else:
        context["groups"] = task_service.open_task_groups(current_user, filters["assignee"], zone)
    if task_service.can_plan_for_others(current_user):
        context["people"] = task_service.assignable_users(current_user)
    return context


def _more_context(filters: dict, group: str) -> dict:
    """The next page of one group: the rows a "more" link (or a scroll) asks for."""
    zone = viewer_zone()
    page = task_service.more_open_tasks(
        current_user,
        filters["assignee"],
        zone,
        group,
        request.args.get("cursor"),
        current_app.config["PAGE_SIZE"],
    )
    return {"filters": filters, "zone": zone, "now": task_service.now(), "group": page}


@bp.route("")
@requires("tasks.use")
def index():
    filters = _filters()
    group = request.args.get("group")
    if group in task_service.GROUPS and filters["status"] == "open":
        # The rest of a group, after its cursor: just those rows under htmx; the page with
        # that group going on from there without JavaScript.
        more = _more_context(filters, group)
        if hx.is_partial() and hx.target_id() == f"more-{group}":
            return render_template("tasks/_more.html", **more)
        context = _list_context(filters)
        context["groups"] = [more["group"] if g.name == group else g for g in context["groups"]]
        return hx.render("tasks/index.html", form=task_form(context="list"), **context)
    form = task_form(context="list")
    return hx.render("tasks/index.html", LIST_PARTIALS, form=form, **_list_context(filters))


@bp.route("", methods=["POST"])
@requires("tasks.use")
def create():
    form = task_form(request.form)
    values = _form_values(form)
    where = form.context.data or "list"
    if values is None:
        return _answer_form(form, where, status=422)
    source = form.source_activity.data
    task = task_service.create_task(
        current_user, source_activity_id=int(source) if source else None, **values
    )
    db.session.commit()
    hx.toast(_("Task added: %(title)s", title=task.title))
    hx.trigger("crm:tasks")
    return _answer_form(None, where, task=task)


def _answer_form(form, where: str, status: int = 200, task: Task | None = None):
    """The answer to a posted task form, shaped for the place the form lives in."""
    kind, _sep, record_id = where.partition(":")
    if kind == "followup":
        contact = get_or_404_for(current_user, Contact, int(record_id))
        if form is not None:
            return render_template(
                "tasks/_follow_up.html", form=form, contact=contact, status=status
            ), status
        context = _panel_context("contact", contact)
        return render_template("tasks/_follow_up_done.html", task=task, **context)
    if kind in RECORD_MODELS:
        record = get_or_404_for(current_user, RECORD_MODELS[kind], int(record_id))
        context = _panel_context(kind, record, form=form)
        return render_template("tasks/_panel.html", **context), status
    if not hx.is_htmx():
        if form is None:
            return hx.location(url_for("tasks.index"))
        context = _list_context(_filters())
        return hx.render("tasks/index.html", form=form, status=status, **context)
    if form is not None:
        return hx.render_fragment("tasks/index.html", "quick_add", form=form, status=status)
    return hx.render_fragment(
        "tasks/index.html",
        "quick_add",
        "groups_refresh",
        form=task_form(context="list"),
        new_task_id=task.id if task else None,
        **_list_context(_filters()),
    )


def _panel_context(kind: str, record, form=None) -> dict:
    tasks = task_service.open_tasks_for(current_user, **{kind: record})
    return {
        "record_kind": kind,
        "record": record,
        "open_tasks": tasks,
        "task_form": form or task_form(link=f"{kind}:{record.id}", context=f"{kind}:{record.id}"),
        "zone": viewer_zone(),
        "now": task_service.now(),
    }


def record_panel_context(kind: str, record) -> dict:
    """For the contact, company and deal pages: their "Open tasks" panel."""
    return _panel_context(kind, record)


# ---- one task --------------------------------------------------------------


def _row(task: Task, status: int = 200, **extra):
    return render_template(
        "tasks/_row.html", task=task, zone=viewer_zone(), now=task_service.now(), **extra
    ), status


@bp.route("/<int:task_id>/complete", methods=["POST"])
@requires("tasks.use")
def complete(task_id: int):
    task = get_or_404_for(current_user, Task, task_id)
    if task_service.complete_task(task):
        db.session.commit()
        hx.toast(_("Done: %(title)s", title=task.title))
        hx.trigger("crm:tasks")
    if not hx.is_htmx():
        return hx.location(request.referrer or url_for("tasks.index"))
    return _row(task, just_done=True)


@bp.route("/<int:task_id>/reopen", methods=["POST"])
@requires("tasks.use")
def reopen(task_id: int):
    task = get_or_404_for(current_user, Task, task_id)
    if task_service.reopen_task(task):
        db.session.commit()
        hx.toast(_("Open again: %(title)s", title=task.title))
        hx.trigger("crm:tasks")
    if not hx.is_htmx():
        return hx.location(request.referrer or url_for("tasks.index"))
    return _row(task)


@bp.route("/<int:task_id>")
@requires("tasks.use")
def show(task_id: int):
    task = get_or_404_for(current_user, Task, task_id)
    if hx.is_partial():
        return _row(task)
    return hx.render("tasks/edit.html", task=task, form=task_form(task=task))


@bp.route("/<int:task_id>/edit")
@requires("tasks.use")
def edit(task_id: int):
    task = get_or_404_for(current_user, Task, task_id)
    form = task_form(task=task)
    if hx.is_partial():
        return render_template("tasks/_editor.html", task=task, form=form)
    return hx.render("tasks/edit.html", task=task, form=form)


@bp.route("/<int:task_id>", methods=["POST"])
@requires("tasks.use")
def update(task_id: int):
    task = get_or_404_for(current_user, Task, task_id)
    form = task_form(request.form, task=task)
    values = _form_values(form)
    if values is None:
        if hx.is_partial():
            return render_template("tasks/_editor.html", task=task, form=form), 422
        return hx.render("tasks/edit.html", task=task, form=form, status=422)
    task_service.update_task(task, **values)
    db.session.commit()
    hx.toast(_("Task saved."))
    hx.trigger("crm:tasks")
    if not hx.is_partial():
        return hx.location(url_for("tasks.index"))
    return _row(task)


@bp.route("/<int:task_id>/delete", methods=["POST"])
@requires("tasks.use")
def delete(task_id: int):
    task = get_or_404_for(current_user, Task, task_id)
    title = task.title
    task_service.delete_task(task)
    db.session.commit()
    hx.toast(_("Task deleted: %(title)s", title=title))
    hx.trigger("crm:tasks")
    if not hx.is_htmx():
        return hx.location(url_for("tasks.index"))
    return ""


# ---- pickers and the follow-up ----------------------------------------------


@bp.route("/links")
@requires("tasks.use")
def links():
    """Records a task can be linked to, matching what was typed: radio options of the form."""
    text = (request.args.get("link_q") or "").strip()
    found = find_records(current_user, text, limit=LINK_SEARCH_LIMIT)
    return render_template("tasks/_link_options.html", options=found, text=text)


@bp.route("/follow-up/dismiss", methods=["POST"])
@requires("tasks.use")
def dismiss_follow_up():
    return ""


def follow_up_form(contact: Contact, activity_id: int) -> TaskForm:
    """The follow-up proposed after a call: in two working days at 09:00, for me."""
    due = task_service.follow_up_due(current_user)
    local = to_local_naive(due, user_zone(current_user))
    return task_form(
        title=_("Follow up: %(name)s", name=contact.name),
        due_date=local.date(),
        due_time=local.time(),
        link=f"contact:{contact.id}",
        source_activity=str(activity_id),
        context=f"followup:{contact.id}",
    )


def latest_call_id(contact: Contact) -> int | None:
    from crm.models import Activity

    return db.session.scalar(
        select(Activity.id)
        .where(
            Activity.contact_id == contact.id,
            Activity.kind == "call",
            Activity.author_id == current_user.id,
        )
        .order_by(Activity.id.desc())
        .limit(1)
    )


@bp.app_template_filter("clock")
def clock(value) -> str:
    """14:30 (or 2:30 PM) in the viewer's zone and locale."""
    return format_time(value, "short") if value else ""
