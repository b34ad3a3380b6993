"""People who use the CRM, and the teams they work in."""

import secrets
from datetime import date, datetime

from flask_login import UserMixin
from sqlalchemy import JSON, CheckConstraint, Date, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm.extensions import db
from crm.models.audit import audited
from crm.models.types import UTCDateTime, utcnow

ROLES = ("admin", "manager", "sales", "support", "technician")


def new_security_stamp() -> str:
    return secrets.token_urlsafe(32)


class Team(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)

    members: Mapped[list["User"]] = relationship(back_populates="team", order_by="User.name")


@audited(
    exclude=("password_hash", "security_stamp", "totp_secret", "totp_last_step", "last_login_at"),
    actions={"role": "role_change", "totp_enabled_at": "two_factor"},
)
class User(UserMixin, db.Model):
    __table_args__ = (CheckConstraint(f"role IN {ROLES!r}", name="role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    # None until an invited user chooses a password.
    password_hash: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(20), default="sales")
    team_id: Mapped[int | None] = mapped_column(ForeignKey("team.id"), index=True)
    locale: Mapped[str | None] = mapped_column(String(5))
    timezone: Mapped[str | None] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(default=True)
    # Support and field work: what a technician can do, when someone is away, how
    # many open incidents an agent takes at most, and when round-robin last chose them.
    skills: Mapped[list | None] = mapped_column(JSON)
    away_until: Mapped[date | None] = mapped_column(Date)
    max_open_incidents: Mapped[int | None]
    last_assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Lead routing takes turns on its own clock, apart from incidents.
    last_lead_assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Open tracking of the mail this user sends: on by default, a user may refuse it.
    track_email_opens: Mapped[bool] = mapped_column(default=True)
    # Reminders always reach the bell; by email too unless the user turns it off.
    email_reminders: Mapped[bool] = mapped_column(default=True)
    # Replaced whenever the credentials change: voids the invitation links issued before.
    security_stamp: Mapped[str] = mapped_column(String(64), default=new_security_stamp)
    # The authenticator app's shared secret, encrypted (crm.services.two_factor). Set but
    # without totp_enabled_at while the user is still enrolling.
    totp_secret: Mapped[str | None] = mapped_column(String(255))
    totp_enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The time step of the last code accepted: a code is never accepted twice.
    totp_last_step: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    team: Mapped[Team | None] = relationship(back_populates="members")

    @property
    def is_active(self) -> bool:  # Flask-Login refuses inactive users
        return self.active

    # The token of the session this request runs in (crm.services.sessions sets it): what
    # Flask-Login keeps in the cookie, so that every browser signs out on its own.
    session_token = None
    current_session = None
    # Read in the same query as the session: the roles an admin requires two factors for.
    roles_needing_two_factor = None

    # Compared as rows (the session holds one object per row), not through Flask-Login's
    # get_id(), which is the token of a signed-in session only.
    __eq__ = object.__eq__
    __ne__ = object.__ne__
    __hash__ = object.__hash__

    def get_id(self) -> str:
        if not self.session_token:
            raise RuntimeError("sign in through crm.services.sessions.start()")
        return self.session_token

    @property
    def two_factor_enabled(self) -> bool:
        return self.totp_enabled_at is not None

    def end_all_sessions(self) -> None:
        """Sign out every browser of this user at once (log out everywhere, deactivation)."""
        from crm.services.sessions import revoke_all

        self.security_stamp = new_security_stamp()
        revoke_all(self)

    @property
    def first_name(self) -> str:
        return self.name.split(" ")[0]

    @property
    def initials(self) -> str:
        return initials_of(self.name)

    def __repr__(self) -> str:
        return f"<User {self.email} {self.role}>"


def initials_of(name: str) -> str:
    """ "Sophie Laurent" is "SL": the avatar of a user."""
    parts = [p for p in name.split() if p]
    return "".join(p[0] for p in parts[:2]).upper() or "?"
