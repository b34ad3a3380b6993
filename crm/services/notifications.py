"""In-app notifications (the bell) and the words of a reminder.

A reminder is written in its recipient's language and time zone, not the
worker's: "Weekly review at 14:30" is 14:30 on the recipient's clock, on either
side of a daylight-saving change, because the time is converted from aware UTC
with the zone's rules of that very day.
"""

from dataclasses import dataclass
from datetime import datetime

from babel.dates import format_date, format_time
from flask import current_app, url_for
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import func, select, update

from crm.extensions import db
from crm.i18n import language_for
from crm.models.agenda import Notification, Reminder
from crm.services.recurrence import occurrence_key
from crm.services.reminders import dialect_insert, now, user_zone

RECENT_LIMIT = 8


@dataclass(frozen=True)
class ReminderText:
    title: str  # "Weekly review at 14:30"
    body: str  # place, people: the second line
    url: str  # path inside the app
    locale: str


def _locale_of(user) -> str:
    return language_for(user)


def reminder_text(reminder: Reminder) -> ReminderText:
    """The title, body and link of `reminder`, in its recipient's language and zone.

    Needs a request context for url_for (the job pushes one on BASE_URL).
    """
    user = reminder.user
    locale = _locale_of(user)
    zone = user_zone(user)
    today = now().astimezone(zone).date()
    with force_locale(locale):
        if reminder.event is not None:
            return _event_text(reminder, zone, today, locale)
        return _task_text(reminder, zone, today, locale)


def _when(moment: datetime, zone, today, locale: str) -> tuple[str, str, bool]:
    local = moment.astimezone(zone)
    clock = format_time(local, "short", tzinfo=zone, locale=locale)
    day = format_date(local.date(), "full", locale=locale)
    return clock, day, local.date() == today


def _event_text(reminder: Reminder, zone, today, locale: str) -> ReminderText:
    event = reminder.event
    clock, day, is_today = _when(reminder.occurrence_start, zone, today, locale)
    if event.all_day:
        title = (
            _("%(title)s today", title=event.title)
            if is_today
            else _("%(title)s on %(day)s", title=event.title, day=day)
        )
    elif is_today:
        title = _("%(title)s at %(time)s", title=event.title, time=clock)
    else:
        title = _("%(title)s on %(day)s at %(time)s", title=event.title, day=day, time=clock)
    details = []
    if event.location:
        details.append(_("Where: %(place)s", place=event.location))
    # The other people of the meeting: the organizer and attendees, the recipient left out.
    others = [event.organizer] if event.organizer else []
    others += [a.user or a.contact for a in event.attendees]
    people = list(dict.fromkeys(p.name for p in others if p is not None and p != reminder.user))
    if people:
        details.append(_("With: %(people)s", people=", ".join(people)))
    # The occurrence reminded of; a single event is its own only occurrence.
    key = occurrence_key(event.id, reminder.occurrence_start if event.rrule else None)
    url = url_for("agenda.show_event", key=key)
    return ReminderText(title, "\n".join(details), url, locale)


def _task_text(reminder: Reminder, zone, today, locale: str) -> ReminderText:
    task = reminder.task
    clock, day, is_today = _when(reminder.occurrence_start, zone, today, locale)
    if task.all_day:
        title = (
            _("Task due today: %(title)s", title=task.title)
            if is_today
            else _("Task due on %(day)s: %(title)s", title=task.title, day=day)
        )
    elif is_today:
        title = _("Task due at %(time)s: %(title)s", title=task.title, time=clock)
    else:
        title = _(
            "Task due on %(day)s at %(time)s: %(title)s", title=task.title, day=day, time=clock
        )
    linked = task.contact or task.company or task.deal
    body = ""
    if linked is not None:
        body = _("About: %(record)s", record=getattr(linked, "name", None) or linked.title)
    return ReminderText(title, body, url_for("tasks.show", task_id=task.id), locale)


def reminder_email(reminder: Reminder, text: ReminderText) -> tuple[str, str]:
    """Subject and plain-text body of a reminder email."""
    base = current_app.config["BASE_URL"].rstrip("/")
    with force_locale(text.locale):
        subject = _("Reminder: %(title)s", title=text.title)
        lines = [text.title, ""]
        if text.body:
            lines += [text.body, ""]
        lines += [_("Open in the CRM: %(url)s", url=base + text.url), ""]
        lines += ["-- ", _("You get these reminders by email; turn them off in your settings.")]
    return subject, "\n".join(lines)


# ---- the bell --------------------------------------------------------------


def notify_reminder(reminder: Reminder, text: ReminderText) -> bool:
    """Raise the reminder's notification; False when it was raised already."""
    statement = (
        dialect_insert(Notification)
        .values(
            user_id=reminder.user_id,
            kind="reminder",
            title=text.title[:300],
            body=text.body or None,
            url=text.url,
            reminder_id=reminder.id,
            created_at=now(),
        )
        .on_conflict_do_nothing()
    )
    return db.session.execute(statement).rowcount == 1


def notify(
    user, title: str, *, kind: str = "info", body: str | None = None, url: str | None = None
):
    """Raise a notification that is not a reminder (a follow-up handed over, a breach)."""
    notification = Notification(
        user_id=user.id, kind=kind, title=title[:300], body=body or None, url=url, created_at=now()
    )
    db.session.add(notification)
    return notification


def unread_count(user) -> int:
    return db.session.scalar(
        select(func.count())
        .select_from(Notification)
        .where(Notification.user_id == user.id, Notification.read_at.is_(None))
    )


def recent(user, limit: int = RECENT_LIMIT, before_id: int | None = None) -> list[Notification]:
    query = select(Notification).where(Notification.user_id == user.id)
    if before_id:
        query = query.where(Notification.id < before_id)
    return list(db.session.scalars(query.order_by(Notification.id.desc()).limit(limit)))


def mark_read(user, notification_id: int | None = None) -> int:
    """Mark one notification (or all of them) read; returns how many changed."""
    statement = update(Notification).where(
        Notification.user_id == user.id, Notification.read_at.is_(None)
    )
    if notification_id is not None:
        statement = statement.where(Notification.id == notification_id)
    result = db.session.execute(
        statement.values(read_at=now()).execution_options(synchronize_session=False)
    )
    return result.rowcount
