"""The audit log: an append-only record of who did what to which record.

Models opt in with one line, `@audited()` (see crm.services.audit for how changes are
collected). The table is guarded by database triggers (migration 0005): no UPDATE or DELETE,
except the one-time redaction that erasing a person's data needs (personal values replaced,
`redacted_at` set; who, when, what and which record stay).
"""

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import JSON, Index, String, event
from sqlalchemy.orm import Mapped, mapped_column

from crm.extensions import db
from crm.models.types import UTCDateTime, utcnow

ACTIONS = (
    "create",
    "update",
    "delete",
    "export",
    "erase",
    "login",
    "login_failed",
    "logout",
    "role_change",
    "two_factor",
    "sessions_revoked",
    "password_change",
    "settings",
)

# Never worth keeping, on any model: bookkeeping that changes on every save.
ALWAYS_EXCLUDED = frozenset({"created_at", "updated_at", "version_id"})


@dataclass(frozen=True)
class AuditSpec:
    entity_type: str
    exclude: frozenset[str]
    # A change of one of these fields is logged under this action rather than "update".
    actions: dict[str, str] = field(default_factory=dict)


AUDITED: dict[type, AuditSpec] = {}


def audited(exclude: tuple[str, ...] = (), actions: dict[str, str] | None = None):
    """Class decorator: log creations, changes (before/after) and deletions of this model.

    `exclude` names columns never to write to the log: secrets, tokens, derived keys.
    """

    def register(model):
        spec = AuditSpec(
            entity_type=model.__tablename__,
            exclude=ALWAYS_EXCLUDED | frozenset(exclude),
            actions=dict(actions or {}),
        )
        AUDITED[model] = spec
        # The value a change replaces is the "before" of the log: have SQLAlchemy load it
        # when the attribute was expired (after a commit) instead of forgetting it.
        for column in model.__table__.columns:
            attribute = getattr(model, column.key, None)
            if column.key not in spec.exclude and attribute is not None:
                event.listen(attribute, "set", _keep_old_value, active_history=True)
        return model

    return register


def _keep_old_value(target, value, oldvalue, initiator):
    return value


class AuditLog(db.Model):
    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_entity", "entity_type", "entity_id"),
        Index("ix_audit_log_actor", "actor_id", "id"),
        Index("ix_audit_log_at", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # No foreign key: the entry outlives the account, and the label keeps who it was.
    actor_id: Mapped[int | None]
    actor_label: Mapped[str] = mapped_column(String(254), default="")
    action: Mapped[str] = mapped_column(String(30))
    entity_type: Mapped[str] = mapped_column(String(40), default="")
    entity_id: Mapped[int | None]
    summary: Mapped[str] = mapped_column(String(300), default="")
    # {field: [before, after]}; None for events that change no record (login, export).
    changes: Mapped[dict | None] = mapped_column(JSON)
    ip: Mapped[str | None] = mapped_column(String(45))
    redacted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
