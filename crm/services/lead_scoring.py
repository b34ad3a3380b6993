"""Lead scoring: points from the admin's rules, and the reasons that explain them.

A rule's condition is one of three kinds (crm/models/leads.py, ScoringRule):

- field: a contact field, a company field ("company.employees") or a custom field
  ("custom.<key>") compared with a value: eq, ne, gt, lt, contains, or "set" (has a value).
  Numbers compare as numbers, text without case or accents, a multi-choice value
  "contains" (or "eq") one of its choices.
- activity: something the contact did or we did with them within the last N days: an
  activity of the timeline (call, meeting, note, visit, email), an email of ours they
  opened (email_opened; campaign_email_opened for campaign mail only), or a web form sent
  (web_form: a capture whose source is "web_form"). `"count": "once"` (the default) gives
  the points once when it happened at least once; `"each"` gives them per occurrence, at
  most MAX_OCCURRENCES times, so that a chatty contact cannot climb without end.
- inactive: no activity on the timeline for N days (Contact.last_activity_at): usually
  negative points.

Only leads and prospects are scored (SCORED_STAGES); a customer keeps their last score.

Scores change in the worker: a session listener notes the contacts whose scored data
changed (their fields, their company's, a new activity, an email opened) and, once the
transaction commits, enqueues ONE job crm.jobs.lead_scoring.rescore_contacts for them.
recompute() works in batches with a fixed number of queries per batch whatever the
number of contacts: the rules, the contacts with their company, the activity counts and
the email opens grouped by contact, and one UPDATE statement run for the whole batch.
The UPDATE goes around the ORM on purpose: a score is derived data, so it neither moves
the contact's updated_at nor fills the audit log with a row per rescore.
"""

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

from flask import has_app_context
from sqlalchemy import bindparam, case, event, func, inspect, select, update
from sqlalchemy.orm import Session, joinedload

from crm.extensions import db
from crm.models import Activity, Company, Contact, EmailMessage, ScoringRule
from crm.models.search_keys import fold

log = logging.getLogger(__name__)

SCORED_STAGES = ("lead", "prospect")
CONDITION_TYPES = ("field", "activity", "inactive")
FIELD_OPERATORS = ("eq", "ne", "gt", "lt", "contains", "set")
ACTIVITY_KINDS = (
    "email_opened",
    "campaign_email_opened",
    "web_form",
    "call",
    "meeting",
    "visit",
    "note",
    "email",
)
TIMELINE_KINDS = ("call", "meeting", "visit", "note", "email")
CONTACT_FIELDS = (
    "title",
    "email",
    "phone",
    "city",
    "postcode",
    "country",
    "source",
    "stage",
    "linkedin_url",
    "twitter_url",
)
COMPANY_FIELDS = (
    "company.employees",
    "company.industry",
    "company.country",
    "company.city",
    "company.postcode",
    "company.website",
)
MAX_OCCURRENCES = 10
BATCH_SIZE = 500
# Leads whose score is older than this are rescored by the hourly sweep: the rules that
# count days ("within 30 days", "no activity in 30 days") change with time alone.
STALE_AFTER = timedelta(hours=24)


def now() -> datetime:
    return datetime.now(UTC)


def active_rules() -> list[ScoringRule]:
    return list(
        db.session.scalars(
            select(ScoringRule)
            .where(ScoringRule.active.is_(True))
            .order_by(ScoringRule.position, ScoringRule.id)
        )
    )


# ---- conditions --------------------------------------------------------------------


def field_value(contact: Contact, field: str):
    if field.startswith("custom."):
        return (contact.custom_fields or {}).get(field.removeprefix("custom."))
    if field.startswith("company."):
        return getattr(contact.company, field.removeprefix("company."), None)
    if field in CONTACT_FIELDS:
        return getattr(contact, field, None)
    return None


def _number(value) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return Decimal(str(value).strip().replace(",", ".").replace(" ", ""))
    except (InvalidOperation, ValueError):
        return None


def _is_set(value) -> bool:
    return value not in (None, "", [], {})


def compare(value, op: str, expected) -> bool:
    """Whether `value` (the contact's) satisfies `op` against `expected` (the rule's)."""
    if op == "set":
        return _is_set(value)
    if not _is_set(value):
        return op == "ne" and _is_set(expected)
    if isinstance(value, bool):
        value = "yes" if value else "no"
        expected = {"true": "yes", "1": "yes", "oui": "yes", "false": "no", "0": "no"}.get(
            fold(str(expected)), fold(str(expected))
        )
    if isinstance(value, list):
        wanted = fold(str(expected))
        has = any(fold(str(item)) == wanted for item in value)
        return {"eq": has, "contains": has, "ne": not has}.get(op, False)
    left, right = _number(value), _number(expected)
    if left is not None and right is not None and op in ("eq", "ne", "gt", "lt"):
        return {"eq": left == right, "ne": left != right, "gt": left > right, "lt": left < right}[
            op
        ]
    # Text (and ISO dates, which sort as text).
    left, right = fold(str(value)), fold(str(expected))
    return {
        "eq": left == right,
        "ne": left != right,
        "gt": left > right,
        "lt": left < right,
        "contains": right in left,
    }.get(op, False)


def _days(condition: dict, key: str) -> int:
    try:
        return max(0, int(condition.get(key) or 0))
    except (TypeError, ValueError):
        return 0


# ---- facts: what the activity rules count ----------------------------------------------


@dataclass
class Facts:
    """Per activity rule, how many times it happened for each contact: {rule_id: {contact_id: n}}."""

    counts: dict[int, dict[int, int]]

    def count(self, rule: ScoringRule, contact_id: int) -> int:
        return self.counts.get(rule.id, {}).get(contact_id, 0)


def load_facts(contact_ids: list[int], rules: list[ScoringRule], at: datetime) -> Facts:
    """At most two grouped queries, whatever the number of contacts and rules: one over the
    timeline, one over the emails opened; each rule is a SUM(CASE ...) column of them."""
    counts: dict[int, dict[int, int]] = {}
    activity_rules = [r for r in rules if (r.condition or {}).get("type") == "activity"]
    timeline_rules = [r for r in activity_rules if r.condition.get("kind") not in _EMAIL_OPENS]
    email_rules = [r for r in activity_rules if r.condition.get("kind") in _EMAIL_OPENS]
    if not contact_ids:
        return Facts(counts)
    if timeline_rules:
        columns = [
            func.sum(case((_timeline_condition(r.condition, at), 1), else_=0))
            for r in timeline_rules
        ]
        rows = db.session.execute(
            select(Activity.contact_id, *columns)
            .where(Activity.contact_id.in_(contact_ids))
            .group_by(Activity.contact_id)
        ).all()
        _collect(counts, timeline_rules, rows)
    if email_rules:
        columns = [
            func.sum(case((_email_condition(r.condition, at), 1), else_=0)) for r in email_rules
        ]
        rows = db.session.execute(
            select(EmailMessage.contact_id, *columns)
            .where(
                EmailMessage.contact_id.in_(contact_ids),
                EmailMessage.first_opened_at.is_not(None),
            )
            .group_by(EmailMessage.contact_id)
        ).all()
        _collect(counts, email_rules, rows)
    return Facts(counts)


_EMAIL_OPENS = ("email_opened", "campaign_email_opened")


def _since(condition: dict, at: datetime) -> datetime:
    return at - timedelta(days=_days(condition, "within_days") or 36500)


def _timeline_condition(condition: dict, at: datetime):
    kind = condition.get("kind")
    recent = Activity.occurred_at >= _since(condition, at)
    if kind == "web_form":
        # One entry per capture carries its source (crm/services/leads.py).
        return recent & (Activity.data["lead_source"].as_string() == "web_form")
    return recent & (Activity.kind == kind)


def _email_condition(condition: dict, at: datetime):
    opened = EmailMessage.first_opened_at >= _since(condition, at)
    if condition.get("kind") == "campaign_email_opened":
        return opened & EmailMessage.campaign_id.is_not(None)
    return opened


def _collect(counts: dict, rules: list[ScoringRule], rows) -> None:
    for contact_id, *sums in rows:
        for rule, total in zip(rules, sums, strict=True):
            if total:
                counts.setdefault(rule.id, {})[contact_id] = int(total)


# ---- scoring -----------------------------------------------------------------------------


def points_for(rule: ScoringRule, contact: Contact, facts: Facts, at: datetime) -> int:
    """The points `rule` gives `contact` (0 when it does not apply)."""
    condition = rule.condition or {}
    kind = condition.get("type")
    if kind == "field":
        field = condition.get("field") or ""
        if compare(field_value(contact, field), condition.get("op"), condition.get("value")):
            return rule.points
        return 0
    if kind == "activity":
        times = facts.count(rule, contact.id)
        if condition.get("count") == "each":
            return rule.points * min(times, MAX_OCCURRENCES)
        return rule.points if times else 0
    if kind == "inactive":
        days = _days(condition, "days")
        last = contact.last_activity_at
        if days and last is not None and last < at - timedelta(days=days):
            return rule.points
        return 0
    return 0


def evaluate(
    contact: Contact, rules: list[ScoringRule], facts: Facts, at: datetime
) -> tuple[int, list[dict]]:
    total, reasons = 0, []
    for rule in rules:
        points = points_for(rule, contact, facts, at)
        if points:
            total += points
            reasons.append({"rule_id": rule.id, "name": rule.name, "points": points})
    return total, reasons


def score(contact: Contact, rules: list[ScoringRule] | None = None) -> tuple[int, list[dict]]:
    """(points, reasons [{rule_id, name, points}]) of `contact` now; changes nothing.

    The contact must be flushed (it needs an id to find its activities)."""
    rules = active_rules() if rules is None else rules
    at = now()
    return evaluate(contact, rules, load_facts([contact.id], rules, at), at)


def apply(contact: Contact, points: int, reasons: list[dict]) -> None:
    """Set the score on a contact of the session (a lead being created)."""
    contact.score, contact.score_reasons, contact.score_updated_at = points, reasons, now()


def recompute(contact_ids, batch_size: int = BATCH_SIZE) -> int:
    """Rescore these contacts (leads and prospects among them); returns how many."""
    ids = sorted({int(i) for i in contact_ids})
    if not ids:
        return 0
    rules = active_rules()
    done = 0
    for start in range(0, len(ids), batch_size):
        done += _recompute_batch(ids[start : start + batch_size], rules)
    return done


_WRITE = (
    update(Contact.__table__)
    .where(Contact.__table__.c.id == bindparam("contact_id"))
    .values(
        score=bindparam("new_score"),
        score_reasons=bindparam("new_reasons"),
        score_updated_at=bindparam("scored_at"),
        # Named so that the column's onupdate does not fire: a score is not an edit.
        updated_at=Contact.__table__.c.updated_at,
    )
)


def _recompute_batch(ids: list[int], rules: list[ScoringRule]) -> int:
    at = now()
    contacts = list(
        db.session.scalars(
            select(Contact)
            .where(Contact.id.in_(ids), Contact.stage.in_(SCORED_STAGES))
            .options(joinedload(Contact.company))
        )
    )
    if not contacts:
        return 0
    facts = load_facts([c.id for c in contacts], rules, at)
    rows = []
    for contact in contacts:
        points, reasons = evaluate(contact, rules, facts, at)
        rows.append(
            {"contact_id": contact.id, "new_score": points, "new_reasons": reasons, "scored_at": at}
        )
    db.session.execute(_WRITE, rows)
    # The objects read above hold the old score: let the next read see the new one.
    for contact in contacts:
        db.session.expire(contact, ["score", "score_reasons", "score_updated_at"])
    return len(rows)


def lead_ids(batch_size: int = BATCH_SIZE, stale_before: datetime | None = None):
    """Ids of the leads and prospects (scored before `stale_before` when given), in batches."""
    last = 0
    while True:
        query = select(Contact.id).where(Contact.stage.in_(SCORED_STAGES), Contact.id > last)
        if stale_before is not None:
            query = query.where(
                Contact.score_updated_at.is_(None) | (Contact.score_updated_at < stale_before)
            )
        batch = list(db.session.scalars(query.order_by(Contact.id).limit(batch_size)))
        if not batch:
            return
        yield batch
        last = batch[-1]


# ---- what changed: the session listener --------------------------------------------------

CONTACT_WATCHED = (*CONTACT_FIELDS, "company_id", "custom_fields", "stage")
COMPANY_WATCHED = tuple(f.removeprefix("company.") for f in COMPANY_FIELDS) + ("custom_fields",)
_PENDING = "lead_rescore"


def _changed(obj, names) -> bool:
    state = inspect(obj)
    return any(state.attrs[name].history.has_changes() for name in names)


def _relevant_new(obj) -> bool:
    if isinstance(obj, EmailMessage):
        return bool(obj.contact_id and obj.first_opened_at)
    return bool(obj.contact_id)


@event.listens_for(Session, "after_flush")
def _note_changes(session: Session, flush_context) -> None:
    contacts, companies = set(), set()
    for obj in session.new:
        if isinstance(obj, Activity | EmailMessage) and _relevant_new(obj):
            contacts.add(obj.contact_id)
    for obj in session.dirty:
        if isinstance(obj, Contact) and _changed(obj, CONTACT_WATCHED):
            contacts.add(obj.id)
        elif isinstance(obj, Company) and _changed(obj, COMPANY_WATCHED):
            companies.add(obj.id)
        elif isinstance(obj, EmailMessage | Activity) and obj.contact_id:
            watched = ("first_opened_at", "contact_id")
            if isinstance(obj, Activity):
                watched = ("occurred_at", "kind", "contact_id")
            if _changed(obj, watched):
                contacts.add(obj.contact_id)
    if contacts or companies:
        pending = session.info.setdefault(_PENDING, {"contacts": set(), "companies": set()})
        pending["contacts"] |= contacts
        pending["companies"] |= companies


@event.listens_for(Session, "after_commit")
def _enqueue_after_commit(session: Session) -> None:
    pending = session.info.pop(_PENDING, None)
    if not pending or not has_app_context():
        return
    try:
        enqueue_rescore(sorted(pending["contacts"]), sorted(pending["companies"]))
    except Exception:  # Redis away: the commit stands; the hourly sweep catches up.
        log.warning("could not enqueue a lead rescore", exc_info=True)


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)


def enqueue_rescore(contact_ids: list[int], company_ids: list[int] = ()):
    from crm.jobs.lead_scoring import rescore_contacts
    from crm.queues import queue

    return queue("default").enqueue(
        rescore_contacts, list(contact_ids), list(company_ids), result_ttl=60, failure_ttl=86400
    )


def enqueue_rescore_all():
    """Rules changed: every lead's score (one job, batched inside)."""
    from crm.jobs.lead_scoring import rescore_all_leads
    from crm.queues import queue

    return queue("default").enqueue(rescore_all_leads, result_ttl=60, failure_ttl=86400)


def contacts_of_companies(company_ids) -> list[int]:
    if not company_ids:
        return []
    return list(
        db.session.scalars(select(Contact.id).where(Contact.company_id.in_(list(company_ids))))
    )
