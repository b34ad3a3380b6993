"""The start page, personal settings, and the areas still to come."""

from zoneinfo import ZoneInfo

from flask import Blueprint, request
from flask_babel import gettext as _
from flask_babel import refresh
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from crm import htmx as hx
from crm.blueprints.account.routes import security_context
from crm.blueprints.main.forms import SettingsForm
from crm.extensions import db
from crm.i18n import select_timezone
from crm.models import Activity, Contact, Task
from crm.permissions import has_permission, requires, visible_activities, visible_contacts
from crm.services import reminders, tasks
from crm.services.recurrence import local_midnight

bp = Blueprint("main", __name__)


@bp.route("/")
@requires("home.view")
def home():
    recent_activities = []
    my_leads = []
    if has_permission(current_user, "contacts.list"):
        recent_activities = list(
            db.session.scalars(
                visible_activities(current_user)
                .where(Activity.author_id == current_user.id)
                # Many-to-one: joined into the same query rather than a second one.
                .options(joinedload(Activity.contact))
                .order_by(Activity.occurred_at.desc())
                .limit(8)
            )
        )
        my_leads = list(
            db.session.scalars(
                visible_contacts(current_user)
                .where(Contact.owner_id == current_user.id, Contact.stage == "lead")
                .options(joinedload(Contact.company))
                .order_by(Contact.last_activity_at)
                .limit(8)
            )
        )
    zone = ZoneInfo(select_timezone())
    return hx.render(
        "main/home.html",
        recent_activities=recent_activities,
        my_leads=my_leads,
        my_day=tasks.my_day(current_user, zone),
        zone=zone,
        now=tasks.now(),
    )


def _keep_all_day_task_dates(user, old_zone: str, new_zone: str) -> None:
    """A task due on a day is stored at that day's midnight where its assignee lives: when
    they move, it stays due on the same date (Paris to New York would make it the day before)."""
    if old_zone == new_zone:
        return
    old, new = ZoneInfo(old_zone), ZoneInfo(new_zone)
    open_on_a_day = select(Task).where(
        Task.assignee_id == user.id,
        Task.status == "open",
        Task.all_day.is_(True),
        Task.due_at.is_not(None),
    )
    for task in db.session.scalars(open_on_a_day):
        task.due_at = local_midnight(task.due_at.astimezone(old).date(), new)


@bp.route("/settings", methods=["GET", "POST"])
@requires("account.settings")
def settings():
    form = SettingsForm(obj=None)
    if request.method == "GET":
        form.locale.data = current_user.locale or ""
        form.timezone.data = select_timezone()
        form.email_reminders.data = current_user.email_reminders
    if form.validate_on_submit():
        replan = (current_user.timezone or None, current_user.email_reminders) != (
            form.timezone.data,
            form.email_reminders.data,
        )
        _keep_all_day_task_dates(current_user, select_timezone(), form.timezone.data)
        current_user.locale = form.locale.data or None
        current_user.timezone = form.timezone.data
        current_user.email_reminders = form.email_reminders.data
        if replan:
            # All-day reminders are at 09:00 on their clock; email rows come or go.
            reminders.replan_for_user(current_user._get_current_object())
        db.session.commit()
        refresh()  # the confirmation below is already in the new language
        hx.toast(_("Settings saved."))
        return hx.location(request.path)
    status = 422 if request.method == "POST" else 200
    return hx.render("main/settings.html", form=form, status=status, **security_context())
