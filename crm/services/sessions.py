"""Signed-in sessions: one row per browser, revocable one by one or all at once.

The cookie holds a random token (Flask-Login's user id is that token, not the user's id);
the database keeps its SHA-256 only. A high-entropy token needs no slow hash: nobody can
guess it, and a leaked hash opens nothing. A session ends when revoked, when the user is
deactivated, after SESSION_IDLE_MINUTES without a request (unless "keep me signed in" was
ticked) and SESSION_ABSOLUTE_HOURS after sign-in whatever happens.
"""

import hashlib
import secrets
from datetime import timedelta

from flask import current_app
from sqlalchemy import func, select, update

from crm.extensions import db
from crm.models import Notification, SecuritySetting, User, UserSession
from crm.models.types import utcnow

# last_seen_at is written at most this often: not a database write per request.
SEEN_GRANULARITY = timedelta(minutes=1)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def describe_agent(user_agent: str | None) -> str:
    """A short name of the browser and system, for the list of my sessions."""
    agent = user_agent or ""
    browser = next(
        (name for key, name in _BROWSERS if key in agent),
        agent.split("/")[0][:40] if agent else "",
    )
    system = next((name for key, name in _SYSTEMS if key in agent), "")
    return " · ".join(part for part in (browser, system) if part)[:200]


# Order matters: Edge and Opera say "Chrome" too, Chrome says "Safari".
_BROWSERS = (
    ("Edg/", "Edge"),
    ("OPR/", "Opera"),
    ("Firefox/", "Firefox"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
)
_SYSTEMS = (
    ("Android", "Android"),
    ("iPhone", "iOS"),
    ("iPad", "iPadOS"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("Linux", "Linux"),
)


def start(user: User, ip: str | None = None, user_agent: str | None = None, remember=False) -> str:
    """Open a session for `user` and return its token (for login_user, through get_id())."""
    token = secrets.token_urlsafe(32)
    row = UserSession(
        user=user,
        token_hash=_hash(token),
        remember=bool(remember),
        ip=(ip or "")[:45] or None,
        user_agent=describe_agent(user_agent) or None,
    )
    db.session.add(row)
    user.session_token, user.current_session = token, row
    return token


def _expired(row: UserSession, now) -> bool:
    config = current_app.config
    if now - row.created_at > timedelta(hours=config["SESSION_ABSOLUTE_HOURS"]):
        return True
    idle = timedelta(minutes=config["SESSION_IDLE_MINUTES"])
    return not row.remember and now - row.last_seen_at > idle


def load(token: str) -> User | None:
    """The user of a live session, or None; an expired session is revoked on the way."""
    if not token:
        return None
    from crm.services.two_factor import REQUIRED_ROLES_KEY

    # The roles that must use two factors come in the same query: every request checks them.
    required = (
        select(SecuritySetting.value)
        .where(SecuritySetting.key == REQUIRED_ROLES_KEY)
        .scalar_subquery()
    )
    # So does the bell's count, which every page shows: not a query of its own per page.
    unread = (
        select(func.count())
        .select_from(Notification)
        .where(Notification.user_id == User.id, Notification.read_at.is_(None))
        .scalar_subquery()
    )
    query = (
        select(UserSession, User, required, unread)
        .join(User, User.id == UserSession.user_id)
        .where(UserSession.token_hash == _hash(token), UserSession.revoked_at.is_(None))
    )
    found = db.session.execute(query).first()
    if found is None:
        return None
    row, user, required_roles, unread_count = found
    now = utcnow()
    if not user.active or _expired(row, now):
        row.revoked_at = now
        db.session.commit()
        return None
    if now - row.last_seen_at > SEEN_GRANULARITY:
        # The loader runs before the view, with nothing else pending in the session.
        row.last_seen_at = now
        db.session.commit()
    user.session_token, user.current_session = token, row
    user.roles_needing_two_factor = set(required_roles or [])
    user.unread_notifications = unread_count
    return user


def active_sessions(user: User) -> list[UserSession]:
    query = (
        select(UserSession)
        .where(UserSession.user_id == user.id, UserSession.revoked_at.is_(None))
        .order_by(UserSession.last_seen_at.desc(), UserSession.id.desc())
    )
    now = utcnow()
    return [row for row in db.session.scalars(query) if not _expired(row, now)]


def session_of(user: User, session_id: int) -> UserSession | None:
    """One of `user`'s own sessions: another user's id finds nothing."""
    return db.session.scalars(
        select(UserSession).where(UserSession.id == session_id, UserSession.user_id == user.id)
    ).first()


def revoke(row: UserSession) -> None:
    if row.revoked_at is None:
        row.revoked_at = utcnow()


def revoke_all(user: User, keep: UserSession | None = None) -> int:
    """End every session of `user` (but `keep`, the one in use, when given)."""
    query = update(UserSession).where(
        UserSession.user_id == user.id, UserSession.revoked_at.is_(None)
    )
    if keep is not None and keep.id is not None:
        query = query.where(UserSession.id != keep.id)
    result = db.session.execute(query.values(revoked_at=utcnow()))
    return result.rowcount or 0
