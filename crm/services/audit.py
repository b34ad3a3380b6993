"""Writing the audit log: changes to audited models by themselves, other events by record().

After every flush, the creations, changes and deletions of models marked @audited
(crm.models.audit) become log rows in the same transaction: a rolled-back change leaves
no entry, and a committed one always has its entry. Changes are read from SQLAlchemy's
attribute history, so bulk UPDATE statements are not seen: audited data is changed
through the ORM.
"""

from datetime import date, datetime
from decimal import Decimal

from flask import g, has_request_context, request
from sqlalchemy import event, insert, inspect
from sqlalchemy.orm import Session

from crm.models.audit import AUDITED, AuditLog
from crm.models.types import utcnow

SUMMARY_MAX = 300


def set_actor(user) -> None:
    """Name who acts in this request before Flask-Login knows (signing in)."""
    g.audit_actor = user


def _actor():
    if not has_request_context():
        return None
    user = g.get("audit_actor") or g.get("_login_user")
    return user if getattr(user, "is_authenticated", False) else None


def _context(actor=None) -> dict:
    actor = actor or _actor()
    address = request.remote_addr if has_request_context() else None
    return {
        "at": utcnow(),
        "actor_id": actor.id if actor else None,
        "actor_label": (f"{actor.name} <{actor.email}>" if actor else "system")[:254],
        "ip": address[:45] if address else None,
    }


def plain(value):
    """A value as JSON can hold it."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if value is None or isinstance(value, bool | int | float | str | list | dict):
        return value
    return str(value)


def label(record) -> str:
    if type(record).__str__ is not object.__str__:
        text = str(record)
    else:
        text = getattr(record, "name", None) or ""
    return text[:SUMMARY_MAX]


def record(
    action: str,
    record=None,
    *,
    entity_type: str = "",
    summary: str = "",
    changes=None,
    actor=None,
    entity_id: int | None = None,
):
    """Add an entry for an event that is not a plain change of a record (login, export...)."""
    from crm.extensions import db

    if record is not None:
        spec = AUDITED.get(type(record))
        entity_type = entity_type or (spec.entity_type if spec else type(record).__tablename__)
        entity_id = entity_id if entity_id is not None else record.id
        summary = summary or label(record)
    entry = AuditLog(
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        summary=summary[:SUMMARY_MAX],
        changes=changes,
        **_context(actor),
    )
    db.session.add(entry)
    return entry


def quiet(record) -> None:
    """Write no automatic entry for `record` at the next flush (the caller logs the event)."""
    from crm.extensions import db

    db.session.info.setdefault("audit_quiet", set()).add(id(record))


def _columns(record, spec):
    mapper = inspect(type(record))
    return [attr.key for attr in mapper.column_attrs if attr.key not in spec.exclude | {"id"}]


def _snapshot(record, spec, side: int) -> dict:
    """The loaded values of a new (side=1: [None, value]) or deleted (side=0) record."""
    loaded = inspect(record).dict
    changes = {}
    for key in _columns(record, spec):
        if key in loaded and loaded[key] is not None:
            pair = [None, plain(loaded[key])]
            changes[key] = pair if side else pair[::-1]
    return changes


def _changes(record, spec) -> dict:
    state = inspect(record)
    changes = {}
    for key in _columns(record, spec):
        history = state.attrs[key].history
        if not history.has_changes():
            continue
        before = history.deleted[0] if history.deleted else None
        after = history.added[0] if history.added else None
        if before != after:
            changes[key] = [plain(before), plain(after)]
    return changes


def _row(action, record, spec, changes, context) -> dict:
    if action == "update":
        action = next((spec.actions[key] for key in changes if key in spec.actions), action)
    return {
        **context,
        "action": action,
        "entity_type": spec.entity_type,
        "entity_id": inspect(record).dict.get("id"),
        "summary": label(record),
        "changes": changes,
        "redacted_at": None,
    }


@event.listens_for(Session, "after_flush")
def _log_changes(session, flush_context) -> None:
    # After the flush new rows have their ids, while new/dirty/deleted and the attribute
    # history still describe what the flush did.
    rows = []
    context = None
    quiet = session.info.pop("audit_quiet", set())
    for action, records in (
        ("create", session.new),
        ("update", session.dirty),
        ("delete", session.deleted),
    ):
        for obj in records:
            spec = AUDITED.get(type(obj))
            if spec is None or id(obj) in quiet:
                continue
            if action == "update":
                changes = _changes(obj, spec)
                if not changes:
                    continue
            else:
                changes = _snapshot(obj, spec, side=1 if action == "create" else 0)
            context = context or _context()
            rows.append(_row(action, obj, spec, changes, context))
    if rows:
        session.connection().execute(insert(AuditLog.__table__), rows)
