"""The service-level watch: every minute (worker.py cron), warn before a due time
passes and flag and announce it when it has.

watch_sla() looks at the incidents whose clock runs (new or open; waiting on the
customer pauses it) with an unmet due time inside the warning window or past.
For each it takes a lock on the incident's row (SELECT ... FOR UPDATE on
PostgreSQL; on SQLite a first write takes the database's write lock), reads
incident.sla_notified again, and only then raises what is still missing, so
that two watchers running at once announce each thing once:
- "warning" once per target (first response, resolution) when the business
  time left falls within the policy's warning window;
- "breach" once per target when the due time has passed: the *_breached flag
  is set, and the notice also goes by email.
The recipients are the assignee and the managers of the incident's team (or of
the assignee's team); the administrators when there is no such manager. The
in-app notices are written in the same transaction as sla_notified. Breach
emails are sent by one job per recipient (send_breach_email) enqueued after
the commit, under a fixed job id and with a fixed Message-ID, so a resend is
the same message.
"""

import logging
from datetime import UTC, datetime

from babel.dates import format_datetime
from flask import current_app, url_for
from flask_babel import force_locale
from flask_babel import gettext as _
from rq import Queue, Retry
from sqlalchemy import and_, or_, select, update

from crm.extensions import db
from crm.i18n import language_for
from crm.mail import MailError, message_id, send_message
from crm.models import Incident, User
from crm.models.support import RUNNING_STATUSES
from crm.queues import redis_connection
from crm.services import business_time as bt
from crm.services import notifications, support_settings
from crm.services.reminders import user_zone
from crm.services.sla import TARGETS

log = logging.getLogger(__name__)

BATCH = 500
EMAIL_RETRY_INTERVALS = (30, 120, 600)


class TemporaryMailError(Exception):
    """Raised to have RQ retry the email after its Retry interval."""


def _now() -> datetime:
    return datetime.now(UTC)


# ---- finding and locking -------------------------------------------------------


def watched_ids(at: datetime, calendar, policies) -> list[int]:
    """Incidents with a running clock and an unflagged due time within the widest
    warning window (counted in business time, so a Friday evening sees Monday's)."""
    widest = max(p.warning_minutes for p in policies.values())
    horizon = bt.add_business_minutes(calendar, at, widest)
    first = and_(
        Incident.first_responded_at.is_(None),
        Incident.first_response_breached.is_(False),
        Incident.first_response_due_at <= horizon,
    )
    resolution = and_(
        Incident.resolved_at.is_(None),
        Incident.resolution_breached.is_(False),
        Incident.resolution_due_at <= horizon,
    )
    query = (
        select(Incident.id)
        .where(
            Incident.status.in_(RUNNING_STATUSES),
            Incident.paused_at.is_(None),
            or_(first, resolution),
        )
        .order_by(Incident.id)
        .limit(BATCH)
    )
    return list(db.session.scalars(query))


def _lock(incident_id: int) -> Incident | None:
    """The incident, re-read under a lock held until the transaction ends."""
    if db.session.get_bind().dialect.name == "postgresql":
        return db.session.get(Incident, incident_id, with_for_update=True, populate_existing=True)
    # SQLite: a write begins the transaction with the write lock; what we read
    # afterwards cannot change under us until we commit.
    db.session.execute(
        update(Incident)
        .where(Incident.id == incident_id)
        .values(sla_notified=Incident.sla_notified, updated_at=Incident.updated_at)
        .execution_options(synchronize_session=False)
    )
    return db.session.get(Incident, incident_id, populate_existing=True)


# ---- who hears of it -------------------------------------------------------------


def recipients(incident: Incident) -> list[User]:
    people: dict[int, User] = {}
    if incident.assignee is not None and incident.assignee.active:
        people[incident.assignee.id] = incident.assignee
    team_id = incident.team_id or (incident.assignee.team_id if incident.assignee else None)
    managers = []
    if team_id is not None:
        managers = db.session.scalars(
            select(User).where(User.team_id == team_id, User.role == "manager", User.active)
        ).all()
    if not managers:
        managers = db.session.scalars(
            select(User).where(User.role == "admin", User.active).order_by(User.id)
        ).all()
    for user in managers:
        people.setdefault(user.id, user)
    return list(people.values())


def _locale_of(user: User) -> str:
    return language_for(user)


def notice_text(incident: Incident, target: str, kind: str, user: User, minutes_left: float):
    """(title, body) in the recipient's language, the due time on their clock."""
    locale, zone = _locale_of(user), user_zone(user)
    due = format_datetime(
        getattr(incident, f"{target}_due_at"), "short", tzinfo=zone, locale=locale
    )
    with force_locale(locale):
        ref = f"{incident.reference} {incident.subject}"
        if kind == "warning":
            title = (
                _("First response due soon: %(incident)s", incident=ref)
                if target == "first_response"
                else _("Resolution due soon: %(incident)s", incident=ref)
            )
            body = _(
                "Due at %(time)s: %(minutes)d min of business time left.",
                time=due,
                minutes=max(0, int(minutes_left)),
            )
        else:
            title = (
                _("First response overdue: %(incident)s", incident=ref)
                if target == "first_response"
                else _("Resolution overdue: %(incident)s", incident=ref)
            )
            body = _("It was due at %(time)s.", time=due)
    return title, body


# ---- the watch ----------------------------------------------------------------------


def _notices_due(
    incident: Incident, at: datetime, calendar, policies
) -> list[tuple[str, str, float]]:
    """(target, kind, business minutes left) of what is still to announce."""
    notified = incident.sla_notified or {}
    policy = policies.get(incident.priority) or support_settings.DEFAULT_POLICIES["normal"]
    due_now = []
    for target in TARGETS:
        due = getattr(incident, f"{target}_due_at")
        met = incident.first_responded_at if target == "first_response" else incident.resolved_at
        if due is None or met is not None:
            continue
        sent = notified.get(target, [])
        left = bt.business_minutes_between(calendar, at, due)
        if at >= due:
            if "breach" not in sent:
                due_now.append((target, "breach", left))
        elif left <= policy.warning_minutes and "warning" not in sent:
            due_now.append((target, "warning", left))
    return due_now


def check_incident(
    incident_id: int, at: datetime, calendar, policies
) -> list[tuple[int, str, int]]:
    """Announce what is due for one incident, once; returns the breach emails to send
    as (incident id, target, user id)."""
    db.session.commit()  # start from a fresh transaction: the lock comes first
    incident = _lock(incident_id)
    if (
        incident is None
        or incident.status not in RUNNING_STATUSES
        or incident.paused_at is not None
    ):
        db.session.rollback()
        return []
    notices = _notices_due(incident, at, calendar, policies)
    if not notices:
        db.session.rollback()
        return []
    people = recipients(incident)
    notified = {k: list(v) for k, v in (incident.sla_notified or {}).items()}
    flags = {}
    emails = []
    url = url_for("incidents.detail", incident_id=incident.id)
    for target, kind, left in notices:
        for user in people:
            title, body = notice_text(incident, target, kind, user, left)
            notifications.notify(user, title, kind=f"sla_{kind}", body=body, url=url)
            if kind == "breach" and user.email and user.email_reminders:
                emails.append((incident.id, target, user.id))
        notified.setdefault(target, [])
        notified[target].append(kind)
        if kind == "breach":
            flags[f"{target}_breached"] = True
            if "warning" not in notified[target]:
                notified[target].insert(0, "warning")  # too late to warn: never warn after
    # A Core UPDATE: the incident's updated_at is the people's, not the watch's.
    db.session.execute(
        update(Incident)
        .where(Incident.id == incident.id)
        .values(sla_notified=notified, updated_at=Incident.updated_at, **flags)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return emails


def watch_sla(at: datetime | None = None) -> dict:
    """The periodic job: warn, flag and announce; returns counts for the job's result."""
    at = at or _now()
    support_settings.forget_cached()
    calendar = support_settings.load_calendar()
    policies = support_settings.load_policies()
    ids = watched_ids(at, calendar, policies)
    emails = []
    base_url = current_app.config["BASE_URL"]
    with current_app.test_request_context("/", base_url=base_url):
        for incident_id in ids:
            emails += check_incident(incident_id, at, calendar, policies)
    for incident_id, target, user_id in emails:
        enqueue_breach_email(incident_id, target, user_id)
    return {"watched": len(ids), "emails": len(emails)}


# ---- breach emails ------------------------------------------------------------------------


def email_job_id(incident_id: int, target: str, user_id: int) -> str:
    return f"sla-breach-{incident_id}-{target}-{user_id}"


def enqueue_breach_email(incident_id: int, target: str, user_id: int, connection=None):
    queue = Queue("mail", connection=connection or redis_connection())
    return queue.enqueue(
        send_breach_email,
        incident_id,
        target,
        user_id,
        job_id=email_job_id(incident_id, target, user_id),
        retry=Retry(max=len(EMAIL_RETRY_INTERVALS), interval=list(EMAIL_RETRY_INTERVALS)),
        result_ttl=600,
        failure_ttl=24 * 3600,
    )


def send_breach_email(incident_id: int, target: str, user_id: int) -> str:
    incident, user = db.session.get(Incident, incident_id), db.session.get(User, user_id)
    if incident is None or user is None or not user.active or not user.email:
        return "skipped"
    base = current_app.config["BASE_URL"].rstrip("/")
    with current_app.test_request_context("/", base_url=base):
        title, body = notice_text(incident, target, "breach", user, 0)
        link = url_for("incidents.detail", incident_id=incident.id, _external=True)
        with force_locale(_locale_of(user)):
            text = "\n".join([title, "", body, "", _("Open in the CRM: %(url)s", url=link)])
    to = user.email
    db.session.commit()  # nothing held open while SMTP takes its time
    try:
        send_message(
            to,
            title,
            text,
            message_id=message_id("sla", f"{incident_id}-{target}-breach-{user_id}"),
        )
    except MailError as error:
        if error.temporary:
            raise TemporaryMailError(str(error)) from error
        log.warning("Breach email for incident %s to %s refused: %s", incident_id, to, error)
        return f"failed: {error}"
    return "emailed"
