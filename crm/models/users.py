"""People who use the CRM, and the teams they work in."""

import secrets
from datetime import date, datetime

from flask_login import UserMixin
from sqlalchemy import JSON, CheckConstraint, Date, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm.extensions import db
from crm.models.types import UTCDateTime, utcnow

ROLES = ("admin", "manager", "sales", "support", "technician")


def new_session_token() -> str:
    return secrets.token_urlsafe(32)


class Team(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)

    members: Mapped[list["User"]] = relationship(back_populates="team", order_by="User.name")


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
    # Reminders always reach the bell; by email too unless the user turns it off.
    email_reminders: Mapped[bool] = mapped_column(default=True)
    # The session cookie carries this token, not the id: replacing it ends every
    # open session of the user at once (log out everywhere, deactivation).
    session_token: Mapped[str] = mapped_column(String(64), unique=True, default=new_session_token)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    team: Mapped[Team | None] = relationship(back_populates="members")

    @property
    def is_active(self) -> bool:  # Flask-Login refuses inactive users
        return self.active

    def get_id(self) -> str:
        return self.session_token

    def end_all_sessions(self) -> None:
        self.session_token = new_session_token()

    @property
    def first_name(self) -> str:
        return self.name.split(" ")[0]

    @property
    def initials(self) -> str:
        parts = [p for p in self.name.split() if p]
        return "".join(p[0] for p in parts[:2]).upper() or "?"

    def __repr__(self) -> str:
        return f"<User {self.email} {self.role}>"
