"""Reading the audit log: filters, newest first, keyset pages on the id (append-only,
so ids grow with time)."""

from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from crm.extensions import db
from crm.models.audit import ACTIONS, AUDITED, AuditLog


def entity_types() -> list[str]:
    return sorted({spec.entity_type for spec in AUDITED.values()} | {"user"})


@dataclass(frozen=True)
class AuditFilters:
    actor: int | None = None
    entity_type: str = ""
    action: str = ""
    entity_id: int | None = None
    date_from: date | None = None
    date_to: date | None = None
    before: int | None = None  # the cursor: entries older than this id

    @classmethod
    def from_args(cls, args) -> "AuditFilters":
        def day(name):
            try:
                return date.fromisoformat(args.get(name, ""))
            except ValueError:
                return None

        entity_type = args.get("entity_type", "")
        action = args.get("action", "")
        return cls(
            actor=args.get("actor", type=int),
            entity_type=entity_type if entity_type in entity_types() else "",
            action=action if action in ACTIONS else "",
            entity_id=args.get("entity_id", type=int),
            date_from=day("date_from"),
            date_to=day("date_to"),
            before=args.get("before", type=int),
        )

    def as_args(self, **changes) -> dict:
        values = {**asdict(self), "before": None, **changes}
        return {key: value for key, value in values.items() if value not in (None, "")}


def _start_of(day: date, zone: str) -> datetime:
    return datetime.combine(day, time.min, tzinfo=ZoneInfo(zone)).astimezone(UTC)


def list_entries(filters: AuditFilters, size: int, zone: str = "UTC"):
    """(entries, the cursor of the next page or None). Days are the reader's days."""
    query = select(AuditLog)
    if filters.actor is not None:
        query = query.where(AuditLog.actor_id == filters.actor)
    if filters.entity_type:
        query = query.where(AuditLog.entity_type == filters.entity_type)
    if filters.action:
        query = query.where(AuditLog.action == filters.action)
    if filters.entity_id is not None:
        query = query.where(AuditLog.entity_id == filters.entity_id)
    if filters.date_from:
        query = query.where(AuditLog.at >= _start_of(filters.date_from, zone))
    if filters.date_to:
        query = query.where(AuditLog.at < _start_of(filters.date_to + timedelta(days=1), zone))
    if filters.before is not None:
        query = query.where(AuditLog.id < filters.before)
    rows = list(db.session.scalars(query.order_by(AuditLog.id.desc()).limit(size + 1)))
    if len(rows) > size:
        rows = rows[:size]
        return rows, rows[-1].id
    return rows, None
