"""Segments: saved filters over the address book, evaluated when used.

A segment's conditions are stored as data ([{"field": "stage", "op": "in", "value": [...]}]),
never as SQL: each condition names one entry of FIELDS, a whitelist that builds its WHERE
clause with bound parameters, so nothing typed by a user reaches the SQL text. Conditions
are ANDed. Every count and list starts from visible_contacts(user); conditions on deals
read only the deals the user may see (visible_deals), so a filter never reveals a deal.

The segment is over contacts; a company's attributes (country, industry, size, its custom
fields are not offered) are conditions on the contact's company.
"""

from dataclasses import dataclass, field
from datetime import timedelta

from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, exists, false, func, or_, select
from sqlalchemy.orm import joinedload

from crm.extensions import db
from crm.models import Activity, Company, Contact, Deal, Segment, Stage, Tag, User
from crm.models.contacts import CONSENT_STATUSES, STAGES, contact_tag
from crm.models.types import utcnow
from crm.permissions import visible_contacts, visible_deals
from crm.services import custom_fields as cf

PREVIEW_SIZE = 20
MAX_CONDITIONS = 20
MAX_DAYS = 3650
MAX_TEXT = 120
ACTIVITY_KINDS = ("any", "call", "meeting", "email", "visit", "note")


class SegmentError(ValueError):
    """A condition that cannot be applied; the message is for the user."""


@dataclass(frozen=True)
class FieldSpec:
    """One kind of condition: its label, operators and the kind of value it takes."""

    label: object
    ops: dict  # op -> label
    value: str  # "choices", "multi", "int", "text", "user", "tag", "pipeline", "stage", "none"


def _ops(**labels) -> dict:
    return labels


FIELDS: dict[str, FieldSpec] = {
    "stage": FieldSpec(_l("Stage"), _ops(**{"in": _l("is one of")}), "multi"),
    "tags": FieldSpec(_l("Tags"), _ops(any=_l("has any of"), none=_l("has none of")), "tag"),
    "score": FieldSpec(_l("Score"), _ops(gte=_l("is at least"), lte=_l("is at most")), "int"),
    "source": FieldSpec(_l("Source"), _ops(eq=_l("is"), ne=_l("is not")), "text"),
    "owner": FieldSpec(_l("Owner"), _ops(eq=_l("is"), none=_l("is nobody")), "user"),
    "country": FieldSpec(_l("Country"), _ops(eq=_l("is"), ne=_l("is not")), "text"),
    "city": FieldSpec(_l("City"), _ops(eq=_l("is"), ne=_l("is not")), "text"),
    "company.country": FieldSpec(
        _l("Company: country"), _ops(eq=_l("is"), ne=_l("is not")), "text"
    ),
    "company.industry": FieldSpec(
        _l("Company: industry"), _ops(eq=_l("is"), ne=_l("is not")), "text"
    ),
    "company.employees": FieldSpec(
        _l("Company: employees"), _ops(gte=_l("at least"), lte=_l("at most")), "int"
    ),
    "consent": FieldSpec(_l("Marketing consent"), _ops(eq=_l("is")), "choices"),
    "unsubscribed": FieldSpec(_l("Unsubscribed"), _ops(no=_l("no"), yes=_l("yes")), "none"),
    "activity": FieldSpec(
        _l("Activity"),
        _ops(within=_l("had one in the last"), none_within=_l("had none in the last")),
        "activity",
    ),
    "deals": FieldSpec(
        _l("Deals"),
        _ops(
            open=_l("has an open deal"),
            won=_l("has a won deal"),
            none=_l("has no deal"),
            pipeline=_l("has an open deal in pipeline"),
            stage=_l("has a deal at stage"),
        ),
        "deal",
    ),
}
CUSTOM_PREFIX = "custom."
CUSTOM_OPS = {"eq": _l("is")}


@dataclass
class Condition:
    field: str
    op: str
    value: object = None
    days: int | None = None

    def as_data(self) -> dict:
        data = {"field": self.field, "op": self.op, "value": self.value}
        if self.days is not None:
            data["days"] = self.days
        return data


@dataclass
class Draft:
    """Conditions as typed in the builder, with an error per condition that has one."""

    conditions: list[Condition] = field(default_factory=list)
    errors: dict[int, str] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return not self.errors

    @property
    def complete(self) -> list[Condition]:
        """The conditions without an error: what the live count applies while building."""
        return [c for i, c in enumerate(self.conditions) if i not in self.errors]

    def as_data(self) -> list[dict]:
        return [c.as_data() for c in self.conditions]


# ---- what the builder offers ---------------------------------------------------------------


def custom_definitions() -> list:
    try:
        return cf.definitions("contact")
    except NotImplementedError:  # custom fields switched off
        return []


def field_choices() -> list[tuple[str, str]]:
    """(value, label) of every kind of condition the builder offers."""
    pairs = [(key, str(spec.label)) for key, spec in FIELDS.items()]
    pairs += [(CUSTOM_PREFIX + d.key, d.label) for d in custom_definitions()]
    return pairs


def spec_for(name: str) -> FieldSpec | None:
    if name in FIELDS:
        return FIELDS[name]
    if name.startswith(CUSTOM_PREFIX):
        definition = cf.definition_by_key("contact", name[len(CUSTOM_PREFIX) :])
        if definition is not None:
            kind = "custom_choice" if definition.choices else "text"
            if definition.field_type == "boolean":
                kind = "custom_bool"
            return FieldSpec(definition.label, CUSTOM_OPS, kind)
    return None


def default_condition(name: str) -> Condition | None:
    spec = spec_for(name)
    if spec is None:
        return None
    value = {"multi": ["lead"], "int": 0, "activity": "any", "choices": "granted"}.get(
        spec.value, ""
    )
    days = 30 if spec.value == "activity" else None
    return Condition(name, next(iter(spec.ops)), value, days)


# ---- reading conditions (form or stored) ---------------------------------------------------


def _int(raw, low: int, high: int) -> int | None:
    try:
        value = int(str(raw).strip())
    except (TypeError, ValueError):
        return None
    return value if low <= value <= high else None


def check(data: dict) -> Condition:
    """One condition from untrusted data, checked against the whitelist; SegmentError."""
    name = str(data.get("field") or "")
    spec = spec_for(name)
    if spec is None:
        raise SegmentError(_l("Choose what to filter on."))
    op = str(data.get("op") or "")
    if op not in spec.ops:
        raise SegmentError(_l("Choose how to compare."))
    raw = data.get("value")
    kind = spec.value
    if kind == "multi":
        values = raw if isinstance(raw, list) else [raw] if raw else []
        values = [v for v in values if v in STAGES]
        if not values:
            raise SegmentError(_l("Pick at least one stage."))
        return Condition(name, op, values)
    if kind == "tag":
        values = raw if isinstance(raw, list) else [raw] if raw not in (None, "") else []
        ids = [i for i in (_int(v, 1, 2**31 - 1) for v in values) if i is not None]
        if not ids:
            raise SegmentError(_l("Pick at least one tag."))
        return Condition(name, op, ids)
    if kind == "int":
        value = _int(raw, -1_000_000_000, 1_000_000_000)
        if value is None:
            raise SegmentError(_l("Enter a whole number."))
        return Condition(name, op, value)
    if kind == "text":
        value = str(raw or "").strip()
        if not value:
            raise SegmentError(_l("Enter a value."))
        if len(value) > MAX_TEXT:
            raise SegmentError(_l("At most %(count)d characters.", count=MAX_TEXT))
        if name.startswith(CUSTOM_PREFIX):
            _custom_clause(name, value)  # raises on a value the field cannot hold
        return Condition(name, op, value)
    if kind in ("custom_choice", "custom_bool"):
        value = str(raw or "").strip()
        if not value:
            raise SegmentError(_l("Pick a value."))
        _custom_clause(name, value)
        return Condition(name, op, value)
    if kind == "choices":
        if raw not in CONSENT_STATUSES:
            raise SegmentError(_l("Pick a value."))
        return Condition(name, op, raw)
    if kind == "user":
        if op == "none":
            return Condition(name, op, None)
        value = _int(raw, 1, 2**31 - 1)
        if value is None or db.session.get(User, value) is None:
            raise SegmentError(_l("Pick a person."))
        return Condition(name, op, value)
    if kind == "activity":
        activity = raw if raw in ACTIVITY_KINDS else None
        days = _int(data.get("days"), 1, MAX_DAYS)
        if activity is None:
            raise SegmentError(_l("Pick a kind of activity."))
        if days is None:
            raise SegmentError(_l("Enter a number of days between 1 and %(max)d.", max=MAX_DAYS))
        return Condition(name, op, activity, days)
    if kind == "deal":
        if op in ("pipeline", "stage"):
            value = _int(raw, 1, 2**31 - 1)
            if value is None:
                raise SegmentError(_l("Pick a pipeline or a stage."))
            return Condition(name, op, value)
        return Condition(name, op, None)
    return Condition(name, op, None)  # "none": the operator says it all


def from_form(form) -> Draft:
    """The builder's conditions: c<i>_field, c<i>_op, c<i>_value (repeatable), c<i>_days,
    in the order of <i>; "add" appends a new condition, "remove" drops the one named."""
    indexes = sorted(
        int(key[1:-6])
        for key in form
        if key.startswith("c") and key.endswith("_field") and key[1:-6].isdigit()
    )
    remove = form.get("remove")
    draft = Draft()
    for index in indexes[:MAX_CONDITIONS]:
        if remove is not None and str(index) == str(remove):
            continue
        name = form.get(f"c{index}_field", "")
        was = form.get(f"c{index}_was")
        if was is not None and was != name:
            # Another field picked: start from its defaults, not from the old field's value.
            condition = default_condition(name)
            if condition is not None:
                _append_default(draft, condition)
                continue
        values = form.getlist(f"c{index}_value")
        spec = spec_for(name)
        multiple = spec is not None and spec.value in ("multi", "tag")
        data = {
            "field": name,
            "op": form.get(f"c{index}_op", ""),
            "value": values if multiple else (values[0] if values else ""),
            "days": form.get(f"c{index}_days"),
        }
        try:
            draft.conditions.append(check(data))
        except SegmentError as error:
            draft.errors[len(draft.conditions)] = error.args[0]
            # Kept as typed, so that the builder shows it again beside its error.
            days = _int(data["days"], 1, MAX_DAYS) if data["days"] else None
            if spec is not None and data["op"] not in spec.ops:
                data["op"] = next(iter(spec.ops))
            draft.conditions.append(Condition(name, data["op"], data["value"], days))
    added = form.get("add")
    if added and len(draft.conditions) < MAX_CONDITIONS:
        condition = default_condition(added)
        if condition is not None:
            _append_default(draft, condition)
    return draft


def _append_default(draft: Draft, condition: Condition) -> None:
    """A condition just picked, with its defaults: counted only once it is complete."""
    try:
        draft.conditions.append(check(condition.as_data()))
    except SegmentError as error:
        draft.errors[len(draft.conditions)] = error.args[0]
        draft.conditions.append(condition)


def from_segment(segment: Segment) -> Draft:
    draft = Draft()
    for index, data in enumerate(segment.filters or []):
        try:
            draft.conditions.append(check(data))
        except SegmentError as error:
            # A field deleted since, a stage renamed: the segment says so rather than widening.
            draft.errors[index] = error.args[0]
            draft.conditions.append(
                Condition(str(data.get("field")), str(data.get("op")), data.get("value"))
            )
    return draft


# ---- SQL --------------------------------------------------------------------------------------


def _custom_clause(name: str, value):
    definition = cf.definition_by_key("contact", name[len(CUSTOM_PREFIX) :])
    if definition is None:
        raise SegmentError(_l("This custom field no longer exists."))
    try:
        return cf.filter_condition(Contact, definition, value)
    except cf.CustomFieldError as error:
        raise SegmentError(str(error)) from None


def _text_equal(column, value: str, negate: bool):
    matches = func.lower(column) == value.lower()
    return or_(column.is_(None), ~matches) if negate else matches


def _company_column(column, condition: Condition):
    company = select(Company.id)
    if condition.op in ("eq", "ne"):
        company = company.where(func.lower(column) == str(condition.value).lower())
        clause = Contact.company_id.in_(company)
        return or_(Contact.company_id.is_(None), ~clause) if condition.op == "ne" else clause
    comparison = column >= condition.value if condition.op == "gte" else column <= condition.value
    return Contact.company_id.in_(company.where(comparison))


def _activity_clause(condition: Condition):
    since = utcnow() - timedelta(days=condition.days or 30)
    query = select(Activity.id).where(
        Activity.contact_id == Contact.id, Activity.occurred_at >= since
    )
    if condition.value != "any":
        query = query.where(Activity.kind == condition.value)
    else:
        query = query.where(Activity.kind != "system")
    found = exists(query)
    return found if condition.op == "within" else ~found


def _deal_clause(user: User, condition: Condition):
    deals = (
        visible_deals(user)
        .with_only_columns(Deal.contact_id)
        .join(Stage, Deal.stage_id == Stage.id)
    )
    deals = deals.where(Deal.contact_id.is_not(None))
    if condition.op == "open":
        return Contact.id.in_(deals.where(Stage.kind == "open"))
    if condition.op == "won":
        return Contact.id.in_(deals.where(Stage.kind == "won"))
    if condition.op == "pipeline":
        return Contact.id.in_(
            deals.where(Stage.kind == "open", Deal.pipeline_id == condition.value)
        )
    if condition.op == "stage":
        return Contact.id.in_(deals.where(Deal.stage_id == condition.value))
    return ~Contact.id.in_(deals)  # none


def clause(user: User, condition: Condition):
    """The WHERE clause of one checked condition (values bound, never interpolated)."""
    name, op, value = condition.field, condition.op, condition.value
    if name == "stage":
        return Contact.stage.in_(value)
    if name == "tags":
        tagged = select(contact_tag.c.contact_id).where(contact_tag.c.tag_id.in_(value))
        return Contact.id.in_(tagged) if op == "any" else ~Contact.id.in_(tagged)
    if name == "score":
        return Contact.score >= value if op == "gte" else Contact.score <= value
    if name == "source":
        return _text_equal(Contact.source, value, op == "ne")
    if name == "owner":
        return Contact.owner_id.is_(None) if op == "none" else Contact.owner_id == value
    if name == "country":
        return _text_equal(Contact.country, value, op == "ne")
    if name == "city":
        return _text_equal(Contact.city, value, op == "ne")
    if name == "company.country":
        return _company_column(Company.country, condition)
    if name == "company.industry":
        return _company_column(Company.industry, condition)
    if name == "company.employees":
        return _company_column(Company.employees, condition)
    if name == "consent":
        return Contact.consent_status == value
    if name == "unsubscribed":
        return (
            Contact.unsubscribed_at.is_not(None)
            if op == "yes"
            else Contact.unsubscribed_at.is_(None)
        )
    if name == "activity":
        return _activity_clause(condition)
    if name == "deals":
        return _deal_clause(user, condition)
    if name.startswith(CUSTOM_PREFIX):
        return _custom_clause(name, value)
    return false()


def contacts_query(user: User, conditions: list[Condition]):
    """select(Contact) of the segment, within what `user` may see; erased people are nobody."""
    query = visible_contacts(user).where(Contact.erased_at.is_(None))
    clauses = [clause(user, condition) for condition in conditions]
    return query.where(and_(*clauses)) if clauses else query


def count(user: User, conditions: list[Condition]) -> int:
    """How many contacts match: one COUNT query."""
    query = contacts_query(user, conditions).with_only_columns(func.count(Contact.id))
    return db.session.scalar(query.order_by(None)) or 0


def preview(user: User, conditions: list[Condition], limit: int = PREVIEW_SIZE) -> list[Contact]:
    """The first contacts by name, with their company and owner (one query)."""
    query = (
        contacts_query(user, conditions)
        .options(joinedload(Contact.company), joinedload(Contact.owner))
        .order_by(Contact.sort_name, Contact.id)
        .limit(limit)
    )
    return list(db.session.scalars(query))


# ---- saved segments -------------------------------------------------------------------------


def visible_segments(user: User):
    """Shared segments, and the user's own."""
    return select(Segment).where(or_(Segment.shared.is_(True), Segment.owner_id == user.id))


def segments_for(user: User) -> list[Segment]:
    return list(db.session.scalars(visible_segments(user).order_by(Segment.name, Segment.id)))


def get_for(user: User, segment_id: int) -> Segment | None:
    return db.session.scalars(visible_segments(user).where(Segment.id == segment_id)).first()


def save(user: User, segment: Segment | None, *, name: str, shared: bool, draft: Draft) -> Segment:
    """Store the checked conditions (the caller has refused a draft with errors)."""
    if segment is None:
        segment = Segment(owner_id=user.id, entity="contact")
        db.session.add(segment)
    segment.name = name.strip()[:120]
    segment.shared = bool(shared)
    segment.filters = draft.as_data()
    return segment


def may_change(user: User, segment: Segment) -> bool:
    """The owner changes their segment; admins and managers any shared one."""
    return segment.owner_id == user.id or user.role in ("admin", "manager")


# ---- for the builder's selects ----------------------------------------------------------------


def tags() -> list[Tag]:
    return list(db.session.scalars(select(Tag).order_by(Tag.name)))


def pipelines() -> list:
    """Pipelines with their stages (two queries), for the deal conditions."""
    from sqlalchemy.orm import selectinload

    from crm.models import Pipeline

    query = select(Pipeline).options(selectinload(Pipeline.stages))
    return list(db.session.scalars(query.order_by(Pipeline.position, Pipeline.id)))
