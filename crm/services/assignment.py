"""Who gets an incident: chosen by hand, or round-robin among the available agents.

Interface used by the incident routes:
- assign_round_robin(incident, team=None) -> User | None: picks the agent, sets
  incident.assignee and incident.assignment_reason (why, in words a user reads).

Round robin: the candidates are the active support agents of the incident's team
(else of the given team, else of the signed-in user's team, else all support
agents). An agent away (away_until today or later) or at their load limit
(open incidents: new, open or waiting; the limit is user.max_open_incidents or
SUPPORT_MAX_OPEN_INCIDENTS) is skipped. Among the others, the one assigned
longest ago (never first, then the lowest id) gets it, and their
last_assigned_at moves to now: over time each gets the same share.

Fair under concurrency: on PostgreSQL the candidates' rows are locked (SELECT
... FOR UPDATE, in id order so that two assigners never deadlock) until the
transaction commits; SQLite serialises writers, and the first write here (the
lock below) takes its write lock before anything is read.

The reason is a sentence written in the assigner's language when assigning
(assignment_reason is a plain text column that every page shows as it is): it
names the team, how many agents were available and whom it skipped and why.
"""

import contextlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from flask import current_app, has_request_context
from flask_babel import force_locale, format_date
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import func, select, update

from crm.extensions import db
from crm.i18n import DEFAULT_TIMEZONE, office_language
from crm.models import Incident, User
from crm.models.users import Team

OPEN_STATUSES = ("new", "open", "waiting")
DEFAULT_MAX_OPEN_INCIDENTS = 25
REASON_LENGTH = 300


@dataclass
class RoundRobin:
    """The outcome of one round-robin pick, for the caller and the tests."""

    chosen: User | None
    team: Team | None
    available: list[User] = field(default_factory=list)
    skipped: list[tuple[User, str]] = field(default_factory=list)  # (agent, why)
    reason: str = ""


def default_limit() -> int:
    return int(current_app.config.get("SUPPORT_MAX_OPEN_INCIDENTS", DEFAULT_MAX_OPEN_INCIDENTS))


def load_limit(user: User) -> int:
    return user.max_open_incidents if user.max_open_incidents is not None else default_limit()


def _today(zone_name: str | None = None) -> date:
    try:
        zone = ZoneInfo(zone_name or DEFAULT_TIMEZONE)
    except (KeyError, ValueError):
        zone = ZoneInfo(DEFAULT_TIMEZONE)
    return datetime.now(UTC).astimezone(zone).date()


def _signed_in_user() -> User | None:
    if has_request_context() and current_user and current_user.is_authenticated:
        return current_user
    return None


def _team_for(incident: Incident, team: Team | None) -> Team | None:
    if team is not None:
        return team
    if incident.team is not None:
        return incident.team
    user = _signed_in_user()
    return user.team if user is not None else None


def _candidates(team: Team | None) -> list[User]:
    """The team's active support agents, locked, in id order."""
    query = select(User).where(User.role == "support", User.active.is_(True)).order_by(User.id)
    if team is not None:
        query = query.where(User.team_id == team.id)
    if db.session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(of=User)
    else:
        # Take SQLite's write lock first, so no other assigner reads between our
        # reading the loads and our writing last_assigned_at.
        db.session.execute(
            update(User)
            .where(User.id == -1)
            .values(last_assigned_at=None)
            .execution_options(synchronize_session=False)
        )
    return list(db.session.scalars(query.execution_options(populate_existing=True)))


def _open_loads(user_ids: list[int], excluding: int | None) -> dict[int, int]:
    if not user_ids:
        return {}
    query = (
        select(Incident.assignee_id, func.count())
        .where(Incident.assignee_id.in_(user_ids), Incident.status.in_(OPEN_STATUSES))
        .group_by(Incident.assignee_id)
    )
    if excluding is not None:
        query = query.where(Incident.id != excluding)
    return dict(db.session.execute(query).all())


def pick(incident: Incident, team: Team | None = None, today: date | None = None) -> RoundRobin:
    """Choose without changing anything (besides the row locks)."""
    team = _team_for(incident, team)
    today = today or _today(current_app.config.get("SUPPORT_TIMEZONE"))
    agents = _candidates(team)
    if team is not None and not agents:
        # A team without support agents (a sales manager's own team): everyone's turn.
        team, agents = None, _candidates(None)
    loads = _open_loads([a.id for a in agents], incident.id)
    outcome = RoundRobin(None, team)
    for agent in agents:
        if agent.away_until is not None and agent.away_until >= today:
            outcome.skipped.append(
                (agent, _("away until %(day)s", day=format_date(agent.away_until, "d MMM")))
            )
        elif loads.get(agent.id, 0) >= load_limit(agent):
            outcome.skipped.append((agent, _("%(count)d open", count=loads.get(agent.id, 0))))
        else:
            outcome.available.append(agent)
    if outcome.available:
        never = datetime.min.replace(tzinfo=UTC)
        outcome.chosen = min(outcome.available, key=lambda a: (a.last_assigned_at or never, a.id))
    outcome.reason = _reason(outcome)
    return outcome


def _reason(outcome: RoundRobin) -> str:
    where = outcome.team.name if outcome.team is not None else _("all support agents")
    skipped = "; ".join(f"{agent.name}, {why}" for agent, why in outcome.skipped)
    if outcome.chosen is None:
        if not outcome.skipped:
            text = _("Round robin in %(team)s: no support agent", team=where)
        else:
            text = _(
                "Round robin in %(team)s: nobody available (skipped: %(skipped)s)",
                team=where,
                skipped=skipped,
            )
    elif outcome.skipped:
        text = _(
            "Round robin in %(team)s: least recently assigned of %(count)d available "
            "(skipped: %(skipped)s)",
            team=where,
            count=len(outcome.available),
            skipped=skipped,
        )
    else:
        text = _(
            "Round robin in %(team)s: least recently assigned of %(count)d available",
            team=where,
            count=len(outcome.available),
        )
    return text if len(text) <= REASON_LENGTH else text[: REASON_LENGTH - 1] + "…"


def _assigner_language(reader: User | None = None):
    """The request's language; outside a request (a job, the email sync) the language of
    whoever reads the reason first (the agent chosen), else the default one."""
    if has_request_context():
        return contextlib.nullcontext()
    locale = reader.locale if reader is not None else None
    return force_locale(locale or office_language())


def round_robin(incident: Incident, team: Team | None = None) -> RoundRobin:
    """Pick and assign; the outcome says who, why, and whom it skipped."""
    with _assigner_language():
        outcome = pick(incident, team)
    if outcome.chosen is not None and not has_request_context():
        with _assigner_language(outcome.chosen):
            outcome.reason = _reason(outcome)
    if outcome.chosen is not None:
        # Strictly after every other candidate's turn, even within one clock tick.
        latest = max(
            (a.last_assigned_at for a in outcome.available if a.last_assigned_at), default=None
        )
        moment = datetime.now(UTC)
        if latest is not None and moment <= latest:
            moment = latest + timedelta(microseconds=1)
        outcome.chosen.last_assigned_at = moment
        incident.assignee = outcome.chosen
        incident.assignment_reason = outcome.reason
        db.session.flush()
    return outcome


def assign_round_robin(incident, team=None):
    """Give `incident` to the next available support agent of `team`.

    Returns the agent, or None when nobody is available: the incident is left as
    it was (round_robin() gives the reason, e.g. for a message).
    """
    return round_robin(incident, team).chosen
