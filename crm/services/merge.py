"""Merging two duplicate contacts or companies into one.

The kept record takes the values chosen field by field; everything that pointed to the
other record (timeline, deals, incidents, tasks, events, emails, a company's contacts...)
is moved to the kept one; then the other record is deleted. All of it in the caller's
transaction: the route commits once at the end, so a failure anywhere leaves both records
as they were.

REFERENCES names every foreign key to contact.id and company.id with what a merge does to
the rows behind it. A key added to the schema later and not listed there makes merging
refuse (rather than let the database cascade or empty it when the other record is deleted),
and tests/services/test_merge.py fails until it is listed.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field

from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from sqlalchemy import and_, delete, exists, func, or_, select, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import selectinload

from crm.extensions import db
from crm.labels import STAGE_LABELS
from crm.models import Company, Contact, ImportRow, Notification, User
from crm.models.audit import AUDITED
from crm.models.search_keys import email_key, fold, phone_key
from crm.permissions import visible_companies, visible_contacts
from crm.services import audit, custom_fields
from crm.services.text_search import search_condition
from crm.services.timeline import record_activity

MODELS = {"contact": Contact, "company": Company}
SCOPES = {"contact": visible_contacts, "company": visible_companies}
DETAIL_ENDPOINTS = {
    "contact": ("contacts.detail", "contact_id"),
    "company": ("companies.detail", "company_id"),
}

# What happens to a row that points to the record going away:
MOVE = "move"  # it points to the kept record instead.
# The column is part of a unique key (an event's attendee, a tag, a campaign's recipient):
# the row moves unless the kept record holds that place already; if it does, the row is
# dropped (it says what the kept record's row says)...
DROP_DUPLICATE = "drop_duplicate"
# ...or kept without its link (what it records, a mail sent, stays; as ON DELETE SET NULL).
DETACH_DUPLICATE = "detach_duplicate"

REFERENCES: dict[str, dict[tuple[str, str], str]] = {
    "contact": {
        ("activity", "contact_id"): MOVE,
        ("campaign_recipient", "contact_id"): DETACH_DUPLICATE,
        # Tags are united: the other record's tags move, those the kept one has already go.
        ("contact_tag", "contact_id"): DROP_DUPLICATE,
        ("deal", "contact_id"): MOVE,
        ("email_message", "contact_id"): MOVE,
        ("email_thread", "contact_id"): MOVE,
        ("event", "contact_id"): MOVE,
        ("event_attendee", "contact_id"): DROP_DUPLICATE,
        ("incident", "contact_id"): MOVE,
        ("intervention", "contact_id"): MOVE,
        ("task", "contact_id"): MOVE,
    },
    "company": {
        ("activity", "company_id"): MOVE,
        ("contact", "company_id"): MOVE,
        ("deal", "company_id"): MOVE,
        ("email_message", "company_id"): MOVE,
        ("event", "company_id"): MOVE,
        ("incident", "company_id"): MOVE,
        ("intervention", "company_id"): MOVE,
        ("task", "company_id"): MOVE,
    },
}


def _count_label(table: str, count: int) -> str:
    """ "12 timeline entries": what moves, in the summary and on the timeline."""
    labels = {
        "activity": lambda n: ngettext("%(num)d timeline entry", "%(num)d timeline entries", n),
        "deal": lambda n: ngettext("%(num)d deal", "%(num)d deals", n),
        "incident": lambda n: ngettext("%(num)d incident", "%(num)d incidents", n),
        "intervention": lambda n: ngettext("%(num)d intervention", "%(num)d interventions", n),
        "task": lambda n: ngettext("%(num)d task", "%(num)d tasks", n),
        "event": lambda n: ngettext("%(num)d agenda event", "%(num)d agenda events", n),
        "event_attendee": lambda n: ngettext("%(num)d invitation", "%(num)d invitations", n),
        "email_message": lambda n: ngettext("%(num)d email", "%(num)d emails", n),
        "email_thread": lambda n: ngettext("%(num)d email thread", "%(num)d email threads", n),
        "contact": lambda n: ngettext("%(num)d contact", "%(num)d contacts", n),
        "contact_tag": lambda n: ngettext("%(num)d tag", "%(num)d tags", n),
        "campaign_recipient": lambda n: ngettext(
            "%(num)d campaign mailing", "%(num)d campaign mailings", n
        ),
    }
    if table in labels:
        return labels[table](count)
    return f"{count} {table}"


class MergeRefused(ValueError):
    """Two records that cannot be merged; the message (translated) is for the user."""


# ---- the references, from the schema ----------------------------------------------------


def foreign_keys(kind: str) -> set[tuple[str, str]]:
    """(table, column) of every foreign key to `kind`'s id in the whole schema."""
    target = MODELS[kind].__table__
    found = set()
    for table in db.metadata.tables.values():
        for key in table.foreign_keys:
            if key.column.table is target and key.column.name == "id":
                found.add((table.name, key.parent.name))
    return found


def unhandled_references(kind: str) -> set[tuple[str, str]]:
    return foreign_keys(kind) - set(REFERENCES[kind])


def _mapped_class(table):
    for mapper in db.Model.registry.mappers:
        if mapper.local_table is table:
            return mapper.class_
    return None


def _unique_partners(table, column: str) -> list[list[str]]:
    """For each unique key of `table` that holds `column`: the key's other columns."""
    keys = [table.primary_key] + [
        c for c in table.constraints if c.__class__.__name__ == "UniqueConstraint"
    ]
    keys += [index for index in table.indexes if index.unique]
    partners = []
    for key in keys:
        names = [c.name for c in key.columns]
        if column in names and len(names) > 1:
            partners.append([name for name in names if name != column])
    return partners


# ---- fields --------------------------------------------------------------------------

CONTACT_FIELDS = (
    ("first_name", _l("First name")),
    ("last_name", _l("Last name")),
    ("title", _l("Job title")),
    ("company_id", _l("Company")),
    ("email", _l("Email")),
    ("phone", _l("Phone")),
    ("stage", _l("Stage")),
    ("owner_id", _l("Owner")),
    ("source", _l("Source")),
    ("linkedin_url", _l("LinkedIn")),
    ("twitter_url", _l("Twitter")),
    ("street", _l("Street")),
    ("postcode", _l("Postcode")),
    ("city", _l("City")),
    ("country", _l("Country")),
    ("consent_status", _l("Consent to marketing")),
)
COMPANY_FIELDS = (
    ("name", _l("Name")),
    ("industry", _l("Industry")),
    ("employees", _l("Employees")),
    ("website", _l("Website")),
    ("linkedin_url", _l("LinkedIn")),
    ("email", _l("Email")),
    ("phone", _l("Phone")),
    ("stage", _l("Stage")),
    ("owner_id", _l("Owner")),
    ("street", _l("Street")),
    ("postcode", _l("Postcode")),
    ("city", _l("City")),
    ("country", _l("Country")),
)
FIELDS = {"contact": CONTACT_FIELDS, "company": COMPANY_FIELDS}
# Chosen with another field: consent comes with the moment it was given or refused.
COMPANIONS = {"consent_status": ("consent_at",)}
CONSENT_LABELS = {"unknown": _l("Not asked"), "granted": _l("Granted"), "refused": _l("Refused")}
CUSTOM = "custom."
KEPT, OTHER = "kept", "other"


@dataclass
class FieldChoice:
    name: str  # a column, or "custom.<key>"
    label: str
    kept_value: object
    other_value: object
    kept_text: str
    other_text: str
    default: str  # KEPT or OTHER

    @property
    def differs(self) -> bool:
        return self.kept_value != self.other_value


@dataclass
class MergePlan:
    kind: str
    kept: Contact | Company
    other: Contact | Company
    fields: list[FieldChoice]
    moves: list[str]  # "12 timeline entries", ...
    tags: list[str] = field(default_factory=list)  # the united tags (contacts)


def _empty(value) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _default(kept, other, kept_value, other_value) -> str:
    """The non-empty value; of two, the one of the record changed last."""
    if _empty(kept_value) or kept_value == other_value:
        return OTHER if not _empty(other_value) else KEPT
    if _empty(other_value):
        return KEPT
    return (
        OTHER
        if (other.updated_at or other.created_at) > (kept.updated_at or kept.created_at)
        else KEPT
    )


def _text(name: str, value, names: dict) -> str:
    if _empty(value):
        return ""
    if name in ("company_id", "owner_id"):
        return names.get((name, value), f"#{value}")
    if name == "stage":
        return str(STAGE_LABELS.get(value, value))
    if name == "consent_status":
        return str(CONSENT_LABELS.get(value, value))
    return str(value)


def _names(kept, other) -> dict:
    """Names of the companies and owners the two records point to, in one query each."""
    names = {}
    owners = {r.owner_id for r in (kept, other) if r.owner_id}
    if owners:
        for user_id, name in db.session.execute(
            select(User.id, User.name).where(User.id.in_(owners))
        ):
            names[("owner_id", user_id)] = name
    companies = {getattr(r, "company_id", None) for r in (kept, other)} - {None}
    if companies:
        rows = db.session.execute(select(Company.id, Company.name).where(Company.id.in_(companies)))
        for company_id, name in rows:
            names[("company_id", company_id)] = name
    return names


def field_choices(kind: str, kept, other, readable: bool = True) -> list[FieldChoice]:
    """Each field of both records and the default pick; `readable` adds the labels and the
    values as shown (in the reader's language), which only the screen needs."""
    names = _names(kept, other) if readable else {}

    def text(name, value):
        return _text(name, value, names) if readable else ""

    choices = []
    for name, label in FIELDS[kind]:
        a, b = getattr(kept, name), getattr(other, name)
        if name == "consent_status":
            # A refusal is never overwritten by default: the person said no.
            known = [v if v != "unknown" else None for v in (a, b)]
            refused = b == "refused" and a != "refused"
            default = OTHER if refused else _default(kept, other, *known)
        else:
            default = _default(kept, other, a, b)
        label = str(label) if readable else name
        choices.append(FieldChoice(name, label, a, b, text(name, a), text(name, b), default))
    kept_custom, other_custom = kept.custom_fields or {}, other.custom_fields or {}
    for definition in custom_fields.definitions(kind):
        a, b = kept_custom.get(definition.key), other_custom.get(definition.key)
        shown = [custom_fields.display(definition, v) if readable else "" for v in (a, b)]
        choices.append(
            FieldChoice(
                CUSTOM + definition.key, definition.label, a, b, *shown, _default(kept, other, a, b)
            )
        )
    return choices


# ---- what moves ----------------------------------------------------------------------


def moved_counts(kind: str, other) -> dict[str, int]:
    """How many rows point to `other`, per table (one column each), in one query."""
    references = sorted(REFERENCES[kind])
    counts = [
        select(func.count())
        .select_from(db.metadata.tables[table])
        .where(db.metadata.tables[table].c[column] == other.id)
        .scalar_subquery()
        for table, column in references
    ]
    row = db.session.execute(select(*counts)).one()
    return {table: count for (table, _column), count in zip(references, row, strict=True) if count}


def describe_moves(counts: dict[str, int]) -> list[str]:
    order = [
        "activity",
        "deal",
        "incident",
        "intervention",
        "task",
        "event",
        "event_attendee",
        "email_message",
        "email_thread",
        "contact",
        "contact_tag",
        "campaign_recipient",
    ]
    ranked = sorted(counts, key=lambda t: (order.index(t) if t in order else len(order), t))
    return [_count_label(table, counts[table]) for table in ranked]


def plan(kind: str, kept, other) -> MergePlan:
    """What the side-by-side screen shows: each field of both, and what would move."""
    _check(kind, kept, other)
    tags = []
    if kind == "contact":
        tags = sorted({t.name for t in kept.tags} | {t.name for t in other.tags})
    return MergePlan(
        kind,
        kept,
        other,
        field_choices(kind, kept, other),
        describe_moves(moved_counts(kind, other)),
        tags,
    )


def _check(kind: str, kept, other) -> None:
    if kept.id == other.id:
        raise MergeRefused(_("A record cannot be merged with itself: pick another one."))
    unhandled = unhandled_references(kind)
    if unhandled:
        # Deleting the other record would let the database delete or empty these rows.
        raise MergeRefused(
            _(
                "Merging is not available: %(refs)s would not follow the merge.",
                refs=", ".join(f"{t}.{c}" for t, c in sorted(unhandled)),
            )
        )


# ---- the merge -------------------------------------------------------------------------


def merge(actor: User, kind: str, kept, other, picks: Mapping[str, str]) -> dict[str, int]:
    """Merge `other` into `kept`; `picks` maps a field name to KEPT or OTHER (defaults
    for the rest). Returns the rows moved per table. The caller commits."""
    _check(kind, kept, other)
    choices = field_choices(kind, kept, other, readable=False)
    counts = moved_counts(kind, other)
    other_label = str(other)
    _apply_fields(kind, kept, other, choices, picks)
    db.session.flush()
    for (table_name, column), policy in sorted(REFERENCES[kind].items()):
        _move(db.metadata.tables[table_name], column, policy, kept, other)
    _move_loose_references(kind, kept, other)
    db.session.flush()
    data = {"event": "merged", "name": other_label, "id": other.id, "moved": counts}
    if kind == "contact":
        record_activity(actor, "system", contact=kept, data=data)
    else:
        record_activity(actor, "system", company=kept, data=data)
    audit.record(
        "update",
        kept,
        summary=f"Merged with {other_label} (#{other.id})"[: audit.SUMMARY_MAX],
        changes={
            "merged": [f"{other_label} (#{other.id})", f"{kept} (#{kept.id})"],
            "moved": [None, counts],
        },
        actor=actor,
    )
    # Read again from the database: collections (tags, a company's contacts) loaded before
    # the moves would otherwise be "deleted" along with the record.
    db.session.expire(other)
    db.session.delete(other)
    db.session.flush()
    db.session.expire(kept)
    return counts


def _apply_fields(kind, kept, other, choices: list[FieldChoice], picks: Mapping[str, str]) -> None:
    custom = dict(other.custom_fields or {})
    custom.update(kept.custom_fields or {})  # keys without a field today: the kept record's first
    mapper = sa_inspect(MODELS[kind])
    for choice in choices:
        side = picks.get(choice.name)
        side = side if side in (KEPT, OTHER) else choice.default
        value = choice.other_value if side == OTHER else choice.kept_value
        if choice.name.startswith(CUSTOM):
            key = choice.name[len(CUSTOM) :]
            if _empty(value):
                custom.pop(key, None)
            else:
                custom[key] = value
            continue
        if side == OTHER:
            relation = _relationship_of(mapper, choice.name)
            if relation is not None:
                setattr(kept, relation, getattr(other, relation))
            else:
                setattr(kept, choice.name, value)
            for companion in COMPANIONS.get(choice.name, ()):
                setattr(kept, companion, getattr(other, companion))
    kept.custom_fields = custom
    kept.created_at = min(kept.created_at, other.created_at)
    if kind == "contact":
        kept.last_activity_at = max(kept.last_activity_at, other.last_activity_at)
        # An opt-out wins over everything: the earliest one stays.
        opt_outs = [r.unsubscribed_at for r in (kept, other) if r.unsubscribed_at]
        kept.unsubscribed_at = min(opt_outs) if opt_outs else None
        # The campaign that brought the person in first (first-touch attribution).
        first = min((kept, other), key=lambda r: (r.created_at, r.id))
        kept.campaign_id = first.campaign_id or kept.campaign_id or other.campaign_id
        # Scored again by the worker (lead scoring reads activities that just moved).
        kept.score_updated_at = None


def _relationship_of(mapper, column: str) -> str | None:
    """The many-to-one relationship that `column` holds (company_id -> company), if any."""
    for relation in mapper.relationships:
        local = [c.key for c in relation.local_columns]
        if relation.direction.name == "MANYTOONE" and local == [column]:
            return relation.key
    return None


def _move(table, column: str, policy: str, kept, other) -> None:
    col = table.c[column]
    if policy in (DROP_DUPLICATE, DETACH_DUPLICATE):
        for partners in _unique_partners(table, column):
            twin = table.alias()
            taken = exists().where(
                twin.c[column] == kept.id, *(twin.c[p] == table.c[p] for p in partners)
            )
            where = and_(col == other.id, taken)
            if policy == DROP_DUPLICATE:
                db.session.execute(delete(table).where(where))
            else:
                db.session.execute(update(table).where(where).values({column: None}))
    model = _mapped_class(table)
    if model is not None and model in AUDITED:
        # Through the ORM, so that each moved record gets its audit entry and its own
        # listeners (a contact's search text follows its new company's name).
        relation = _relationship_of(sa_inspect(model), column)
        target = db.session.get(type(kept), kept.id)
        for row in db.session.scalars(select(model).where(getattr(model, column) == other.id)):
            if relation is not None:
                setattr(row, relation, target)
            else:
                setattr(row, column, kept.id)
        db.session.flush()
    else:
        db.session.execute(
            update(table).where(col == other.id).values({column: kept.id}),
            execution_options={"synchronize_session": False},
        )


def _move_loose_references(kind: str, kept, other) -> None:
    """References that are not foreign keys: import rows and notification links."""
    types = {kind, f"{kind}s", "companies"} if kind == "company" else {kind, f"{kind}s"}
    db.session.execute(
        update(ImportRow)
        .where(ImportRow.record_type.in_(types), ImportRow.record_id == other.id)
        .values(record_id=kept.id),
        execution_options={"synchronize_session": False},
    )
    endpoint, argument = DETAIL_ENDPOINTS[kind]
    urls = current_app.url_map.bind("")
    old = urls.build(endpoint, {argument: other.id})
    new = urls.build(endpoint, {argument: kept.id})
    rows = db.session.execute(
        select(Notification.id, Notification.url).where(
            or_(
                Notification.url == old,
                Notification.url.like(
                    old.replace("%", r"\%").replace("_", r"\_") + "%", escape="\\"
                ),
            )
        )
    ).all()
    for notification_id, url in rows:
        rest = url[len(old) :]
        if rest == "" or rest[0] in "/?#":
            db.session.execute(
                update(Notification)
                .where(Notification.id == notification_id)
                .values(url=new + rest),
                execution_options={"synchronize_session": False},
            )


# ---- finding the duplicate ------------------------------------------------------------


def duplicates(user: User, kind: str, record, limit: int = 5) -> list:
    """Records that look like `record`: the same email, phone number or name."""
    model = MODELS[kind]
    query = SCOPES[kind](user).where(model.id != record.id)
    if kind == "contact":
        conditions = []
        if record.email_key:
            conditions.append(Contact.email_key == record.email_key)
        if len(record.phone_key or "") >= 6:
            conditions.append(Contact.phone_key == record.phone_key)
        if record.sort_name:
            conditions.append(Contact.sort_name == record.sort_name)
        query = query.options(selectinload(Contact.company))
    else:
        conditions = [Company.name_key == record.name_key]
        if email_key(record.email):
            conditions.append(func.lower(Company.email) == email_key(record.email))
        if len(phone_key(record.phone)) >= 6:
            conditions.append(Company.phone == record.phone)
    if not conditions:
        return []
    order = Contact.sort_name if kind == "contact" else Company.name_key
    return list(
        db.session.scalars(query.where(or_(*conditions)).order_by(order, model.id).limit(limit))
    )


def search(user: User, kind: str, record, text: str, limit: int = 10) -> list:
    """Records of the same kind matching typed words, for the picker."""
    text = (text or "").strip()[:100]
    if len(fold(text)) < 2:
        return []
    model = MODELS[kind]
    column = Contact.search_text if kind == "contact" else Company.name_key
    query = SCOPES[kind](user).where(model.id != record.id, *search_condition(column, text))
    if kind == "contact":
        query = query.options(selectinload(Contact.company)).order_by(Contact.sort_name, Contact.id)
    else:
        query = query.order_by(Company.name_key, Company.id)
    return list(db.session.scalars(query.limit(limit)))
