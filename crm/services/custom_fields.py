"""Custom fields: the admin's definitions, and values validated on the server.

Owned by the custom-fields work; forms, imports and exports call it. Messages are
translated: outside a request (a job), call it inside flask_babel.force_locale(...).

Values live in each record's `custom_fields` JSON under the definition's `key` (a slug of
the first label, never changed afterwards, so stored values keep their meaning). Stored
shapes: text and url a str, number an int or a float, date an ISO "YYYY-MM-DD" str,
choice a str among the choices, multichoice a list of them (in the choices' order),
boolean a bool. An empty value is not stored at all (the key is absent).
"""

import json
import re
import unicodedata
from collections.abc import Iterable, Mapping
from datetime import date
from decimal import Decimal, InvalidOperation
from urllib.parse import urlsplit

from babel.numbers import NumberFormatError, get_group_symbol, parse_decimal
from flask import g, has_app_context
from flask_babel import format_date, format_decimal, get_locale
from flask_babel import gettext as _
from sqlalchemy import event, func, select, true
from sqlalchemy.orm import Session

from crm.extensions import db
from crm.i18n import office_language
from crm.models import Company, Contact, CustomFieldDefinition, Deal, Incident
from crm.models.leads import CUSTOM_FIELD_ENTITIES, CUSTOM_FIELD_TYPES

MODELS = {"contact": Contact, "company": Company, "deal": Deal, "incident": Incident}
MAX_TEXT = 1000
MAX_URL = 500
MAX_CHOICE = 100
MAX_CHOICES = 100
# A number beyond this is a typo (or a phone number in the wrong column), not a quantity.
MAX_NUMBER = 10**15

_YES = {"yes", "y", "true", "1", "on", "x", "oui", "o", "vrai"}
_NO = {"no", "n", "false", "0", "off", "non", "faux"}
_ISO_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$")
# Day first, as French (and British) people and Excel's French CSV write dates.
_DAY_FIRST = re.compile(r"^(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})(?:\s+\d{1,2}:\d{2}(?::\d{2})?)?$")
_NUMBER_CHARS = re.compile(r"^[+-]?[0-9][0-9.,]*$")
_SPACES = re.compile(r"[\s\u00a0\u202f\u2009']+")
_LIST_SEPARATORS = re.compile(r"[;|\n]")


class CustomFieldError(ValueError):
    """A value that does not fit its field; the message (translated) is for the user."""


class DefinitionError(ValueError):
    """A definition the admin cannot save: `errors` maps form field names to messages."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(errors.values()))
        self.errors = errors


# ---- definitions, cached per application context ---------------------------------------

_CACHE = "_custom_field_definitions"


def definitions(entity: str, include_inactive: bool = False) -> list[CustomFieldDefinition]:
    """The fields of `entity` ("contact", "company", "deal", "incident") in display order.

    Read once per request (or per job): what is returned are detached copies, so a commit
    later in the request does not expire them into one query per field. Do not add them
    to the session; edit definitions with the functions below.
    """
    if entity not in CUSTOM_FIELD_ENTITIES:
        raise ValueError(f"unknown custom field entity {entity!r}")
    # Every entity's fields in one query: a page showing contacts and companies reads once.
    cached = g.get(_CACHE) if has_app_context() else None
    if cached is None:
        rows = db.session.scalars(
            select(CustomFieldDefinition).order_by(
                CustomFieldDefinition.position, CustomFieldDefinition.id
            )
        ).all()
        cached = {name: [] for name in CUSTOM_FIELD_ENTITIES}
        for row in rows:
            cached[row.entity].append(_snapshot(row))
        if has_app_context():
            g.setdefault(_CACHE, cached)
    fields = cached[entity]
    return list(fields) if include_inactive else [f for f in fields if f.active]


def definition_by_key(entity: str, key: str) -> CustomFieldDefinition | None:
    """The active field `key` of `entity`, from the same cached list."""
    return next((f for f in definitions(entity) if f.key == key), None)


def forget_definitions() -> None:
    """Drop this context's cached definitions (done on every change to one)."""
    if has_app_context():
        g.pop(_CACHE, None)


def _snapshot(row: CustomFieldDefinition) -> CustomFieldDefinition:
    columns = CustomFieldDefinition.__table__.columns.keys()
    copy = CustomFieldDefinition(**{name: getattr(row, name) for name in columns})
    copy.choices = list(row.choices or [])
    return copy


@event.listens_for(Session, "after_flush")
def _forget_on_flush(session, _flush_context):
    changed = (*session.new, *session.dirty, *session.deleted)
    if any(isinstance(obj, CustomFieldDefinition) for obj in changed):
        session.info["custom_fields_flushed"] = True
        forget_definitions()


@event.listens_for(Session, "after_commit")
def _settled_on_commit(session):
    session.info.pop("custom_fields_flushed", None)


@event.listens_for(Session, "after_soft_rollback")
def _forget_on_rollback(session, _previous_transaction):
    # A definition flushed and then rolled back must not linger in the cache; other
    # rollbacks (a savepoint of a read) keep it.
    if session.info.pop("custom_fields_flushed", None):
        forget_definitions()


# ---- values -------------------------------------------------------------------------


def _locale(locale: str | None) -> str:
    if locale:
        return str(locale)
    try:
        # A request's language, or the one a job forced (flask_babel.force_locale).
        current = get_locale() if has_app_context() else None
    except RuntimeError:  # outside a request, nothing forced
        current = None
    if current:
        return str(current)
    return office_language() if has_app_context() else "en"


def parse_value(definition: CustomFieldDefinition, raw, *, locale: str | None = None):
    """Text (or a list for multichoice) as typed in a form or a CSV cell -> the stored JSON
    value (str, number, ISO date string, list, bool), None when empty; raises CustomFieldError.
    Accepts French input too: "1 234,5", "31/12/2026", "oui"/"non".

    `locale` decides how an ambiguous number reads ("1,234"); by default the request's,
    else the app's default; the other supported language is tried when that one fails."""
    if raw is None:
        return None
    parser = _PARSERS[definition.field_type]
    if definition.field_type == "multichoice":
        return parser(definition, raw)
    if isinstance(raw, list | tuple):
        raw = raw[0] if raw else None
        if raw is None:
            return None
    if isinstance(raw, str):
        raw = raw.strip()
        if not raw:
            return None
    if definition.field_type == "number":
        return parser(raw, _locale(locale))
    if definition.field_type == "choice":
        return parser(definition, raw)
    return parser(raw)


def _parse_text(raw) -> str:
    text = str(raw)
    if len(text) > MAX_TEXT:
        raise CustomFieldError(_("At most %(count)d characters.", count=MAX_TEXT))
    return text


def _parse_number(raw, locale: str) -> int | float:
    if isinstance(raw, bool):
        raise CustomFieldError(_("Enter a number."))
    if isinstance(raw, int | float | Decimal):
        value = Decimal(str(raw))
    else:
        value = _read_decimal(str(raw), locale)
    if not value.is_finite():
        raise CustomFieldError(_("Enter a number."))
    if abs(value) >= MAX_NUMBER:
        raise CustomFieldError(_("This number is too large."))
    return int(value) if value == value.to_integral_value() else float(value)


def _read_decimal(text: str, locale: str) -> Decimal:
    """ "1 234,5" or "1,234.5": the user's locale first, then the other supported one."""
    compact = _SPACES.sub("", text)
    if not _NUMBER_CHARS.match(compact):
        raise CustomFieldError(_("Enter a number."))
    for candidate in dict.fromkeys((locale, "en", "fr")):
        group = get_group_symbol(candidate)
        spaced = _SPACES.sub(group if not group.strip() else "", text.strip()).lstrip("+")
        try:
            return parse_decimal(spaced, locale=candidate, strict=True)
        except (NumberFormatError, InvalidOperation):
            continue
    raise CustomFieldError(_("Enter a number."))


def _parse_date(raw) -> str:
    if isinstance(raw, date):
        return raw.isoformat()[:10]
    text = str(raw)
    match = _ISO_DATE.match(text)
    if match:
        year, month, day = (int(part) for part in match.groups())
    else:
        match = _DAY_FIRST.match(text)
        if not match:
            raise CustomFieldError(_("Enter a date such as 2026-12-31 or 31/12/2026."))
        day, month, year = (int(part) for part in match.groups())
    try:
        return date(year, month, day).isoformat()
    except ValueError:
        raise CustomFieldError(_("This date does not exist.")) from None


def _match_choice(definition: CustomFieldDefinition, text: str) -> str | None:
    choices = definition.choices or []
    if text in choices:
        return text
    folded = text.strip().casefold()
    return next((choice for choice in choices if choice.casefold() == folded), None)


def _parse_choice(definition: CustomFieldDefinition, raw) -> str:
    choice = _match_choice(definition, str(raw))
    if choice is None:
        raise CustomFieldError(_("Choose one of the proposed values."))
    return choice


def _parse_multichoice(definition: CustomFieldDefinition, raw) -> list[str] | None:
    """A list from a form's checkboxes, or one CSV cell: "a; b", "a|b" or "a, b"."""
    if isinstance(raw, str):
        parts = []
        for piece in _LIST_SEPARATORS.split(raw):
            piece = piece.strip()
            # A choice may itself hold a comma: split on commas only when it is not one.
            if piece and _match_choice(definition, piece) is None and "," in piece:
                parts.extend(part.strip() for part in piece.split(","))
            else:
                parts.append(piece)
    else:
        parts = [str(part).strip() for part in raw if part is not None]
    chosen = set()
    for part in parts:
        if not part:
            continue
        choice = _match_choice(definition, part)
        if choice is None:
            raise CustomFieldError(_("“%(value)s” is not one of the proposed values.", value=part))
        chosen.add(choice)
    if not chosen:
        return None
    return [choice for choice in definition.choices if choice in chosen]


def _parse_boolean(raw) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().casefold()
    if text in _YES or text == _("Yes").casefold():
        return True
    if text in _NO or text == _("No").casefold():
        return False
    raise CustomFieldError(_("Answer yes or no."))


def _parse_url(raw) -> str:
    text = str(raw)
    if "://" not in text and ":" not in text.split("/")[0] and "." in text.split("/")[0]:
        text = "https://" + text  # "www.example.fr", as people type it
    if len(text) > MAX_URL:
        raise CustomFieldError(_("At most %(count)d characters.", count=MAX_URL))
    parts = urlsplit(text)
    # http(s) only: a "javascript:" address would run as a link.
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc or " " in text:
        raise CustomFieldError(_("Enter a web address starting with http:// or https://."))
    return text


_PARSERS = {
    "text": _parse_text,
    "number": _parse_number,
    "date": _parse_date,
    "choice": _parse_choice,
    "multichoice": _parse_multichoice,
    "boolean": _parse_boolean,
    "url": _parse_url,
}


def _raw_for(raw: Mapping, definition: CustomFieldDefinition):
    """The raw input of one field; a form's MultiDict gives every ticked box of a list."""
    if definition.field_type == "multichoice" and hasattr(raw, "getlist"):
        return raw.getlist(definition.key)
    return raw[definition.key]


def validate(
    entity: str,
    raw: Mapping,
    current: dict | None = None,
    *,
    only: Iterable[str] | None = None,
    locale: str | None = None,
) -> tuple[dict, dict]:
    """All fields of `entity` from `raw` (form data or a mapped CSV row keyed by field key).
    Returns (values, errors by key): values merged over `current`; a required field empty
    is an error. Nothing is saved here.

    A key absent from `raw` keeps its current value (an import that maps some columns, an
    edit of one field), and is still an error when required and empty. `only` limits the
    check to those keys (the inline edit of one field). Values of inactive or unknown
    fields already in `current` are kept untouched."""
    values = dict(current or {})
    errors: dict[str, str] = {}
    keys = set(only) if only is not None else None
    for definition in definitions(entity):
        key = definition.key
        if keys is not None and key not in keys:
            continue
        if key in raw:
            try:
                value = parse_value(definition, _raw_for(raw, definition), locale=locale)
            except CustomFieldError as error:
                errors[key] = str(error)
                continue
            if value is None:
                values.pop(key, None)
            else:
                values[key] = value
        if definition.required and values.get(key) in (None, "", []):
            errors[key] = _("This field is required.")
    return values, errors


def form_input(definition: CustomFieldDefinition, value):
    """A stored value as a form shows it: the ISO date for <input type=date>, "yes"/"no"
    for a yes/no select, the list for checkboxes, the number in the user's locale."""
    if value is None:
        return [] if definition.field_type == "multichoice" else ""
    if definition.field_type == "boolean":
        return "yes" if value else "no"
    if definition.field_type == "number":
        return format_decimal(value, "#,##0.##########")
    return value


def display(definition: CustomFieldDefinition, value) -> str:
    """The value as shown to the user, in their locale ("" when empty)."""
    if value is None or value == "" or value == []:
        return ""
    kind = definition.field_type
    if kind == "number":
        return format_decimal(value, "#,##0.##########") if not isinstance(value, str) else value
    if kind == "date":
        try:
            return format_date(date.fromisoformat(value), "medium")
        except (TypeError, ValueError):
            return str(value)
    if kind == "boolean":
        return _("Yes") if value else _("No")
    if kind == "multichoice":
        return ", ".join(str(v) for v in value) if isinstance(value, list) else str(value)
    return str(value)


# ---- list filters ---------------------------------------------------------------------


def filter_condition(model, definition: CustomFieldDefinition, value):
    """A WHERE clause: records of `model` whose field `definition` matches `value` (as a
    filter form sends it). Works the same on PostgreSQL and SQLite through SQLAlchemy's
    JSON index operators (`->`/`->>` and json_extract). Raises CustomFieldError on a value
    the field cannot hold, so a hand-edited URL gets a message rather than a 500."""
    field = model.custom_fields[definition.key]
    kind = definition.field_type
    if kind == "boolean":
        # Compared as text: PostgreSQL gives 'true'/'false' for ->>, SQLite's json_extract
        # gives 1/0, so each side is matched in the form its database writes it.
        wanted = _parse_boolean(value)
        return field.as_boolean() == wanted
    if kind == "multichoice":
        choice = _parse_choice(definition, value)
        # "The list contains this value", one way on both databases: the JSON text of the
        # list holds the value quoted as JSON writes it ("a" never matches "ab"). Both
        # store the list as the text SQLAlchemy's json.dumps wrote (ASCII, escapes kept),
        # PostgreSQL's `json` type verbatim and SQLite as TEXT, so the same quoted form is
        # searched for. jsonb's @> or json_each() would need two code paths.
        needle = json.dumps(choice)
        pattern = "%" + _escape_like(needle) + "%"
        return field.as_string().like(pattern, escape="\\")
    if kind == "number":
        return field.as_float() == float(_parse_number(value, _locale(None)))
    if kind == "choice":
        return field.as_string() == _parse_choice(definition, value)
    if kind == "date":
        return field.as_string() == _parse_date(value)
    # text, url: contains, case-insensitive.
    return field.as_string().ilike("%" + _escape_like(str(value)) + "%", escape="\\")


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def filterable(entity: str) -> list[CustomFieldDefinition]:
    """The fields a list offers a filter for: choices and yes/no."""
    return [f for f in definitions(entity) if f.field_type in ("choice", "multichoice", "boolean")]


def custom_filter_args(entity: str, args: Mapping) -> dict[str, str]:
    """{key: value} of the list's custom filters from the query string ("cf_<key>=..."),
    values checked against their field; an unknown or unfit one is dropped."""
    if not any(str(name).startswith("cf_") for name in args):
        return {}  # no custom filter asked for: no need to read the fields
    wanted = {}
    for definition in filterable(entity):
        value = (args.get("cf_" + definition.key) or "").strip()
        if not value:
            continue
        try:
            if definition.field_type == "boolean":
                value = "yes" if _parse_boolean(value) else "no"
            else:
                value = _parse_choice(definition, value)
        except CustomFieldError:
            continue
        wanted[definition.key] = value
    return wanted


def filter_conditions(entity: str, custom: Mapping[str, str]) -> list:
    """The WHERE clauses of a list's `custom` filters ({key: value})."""
    model = MODELS[entity]
    conditions = []
    for key, value in custom.items():
        definition = definition_by_key(entity, key)
        if definition is None:
            continue
        try:
            conditions.append(filter_condition(model, definition, value))
        except CustomFieldError:
            conditions.append(~true())  # a value no record can hold
    return conditions


# ---- editing definitions (the admin page) ---------------------------------------------


def slugify(label: str) -> str:
    """ "Numéro de contrat" -> "numero_de_contrat"."""
    ascii_text = unicodedata.normalize("NFKD", label).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "_", ascii_text.lower()).strip("_")
    return slug[:50].rstrip("_") or "field"


def parse_choices(text_or_list) -> list[str]:
    """One choice per line (or a list), trimmed, without blanks or repeats."""
    items = text_or_list.splitlines() if isinstance(text_or_list, str) else text_or_list or []
    seen: dict[str, str] = {}
    for item in items:
        item = str(item).strip()
        if item and item.casefold() not in seen:
            seen[item.casefold()] = item
    return list(seen.values())


def _check(entity, label, field_type, choices, *, exclude_id=None) -> dict[str, str]:
    errors = {}
    label = (label or "").strip()
    if not label:
        errors["label"] = _("Enter a label.")
    elif len(label) > 120:
        errors["label"] = _("At most %(count)d characters.", count=120)
    else:
        clash = db.session.scalar(
            select(CustomFieldDefinition.id).where(
                CustomFieldDefinition.entity == entity,
                CustomFieldDefinition.active.is_(True),
                func.lower(CustomFieldDefinition.label) == label.lower(),
                CustomFieldDefinition.id != (exclude_id or 0),
            )
        )
        if clash:
            errors["label"] = _("Another field already has this label.")
    if field_type not in CUSTOM_FIELD_TYPES:
        errors["field_type"] = _("Choose a type.")
    elif field_type in ("choice", "multichoice"):
        if not choices:
            errors["choices"] = _("Enter the choices, one per line.")
        elif len(choices) > MAX_CHOICES:
            errors["choices"] = _("At most %(count)d choices.", count=MAX_CHOICES)
        elif any(len(choice) > MAX_CHOICE for choice in choices):
            errors["choices"] = _("Each choice has at most %(count)d characters.", count=MAX_CHOICE)
    return errors


def _unique_key(entity: str, label: str) -> str:
    base = slugify(label)
    taken = set(
        db.session.scalars(
            select(CustomFieldDefinition.key).where(CustomFieldDefinition.entity == entity)
        )
    )
    key, n = base, 2
    while key in taken:
        key, n = f"{base}_{n}", n + 1
    return key


def create_definition(
    entity: str,
    label: str,
    field_type: str,
    choices=None,
    required: bool = False,
) -> CustomFieldDefinition:
    """A new field at the end of `entity`'s list. DefinitionError when it cannot be saved.
    Added to the session; the caller commits."""
    if entity not in CUSTOM_FIELD_ENTITIES:
        raise DefinitionError({"entity": _("Choose a record type.")})
    choices = parse_choices(choices) if field_type in ("choice", "multichoice") else None
    errors = _check(entity, label, field_type, choices)
    if errors:
        raise DefinitionError(errors)
    last = db.session.scalar(
        select(func.max(CustomFieldDefinition.position)).where(
            CustomFieldDefinition.entity == entity
        )
    )
    definition = CustomFieldDefinition(
        entity=entity,
        key=_unique_key(entity, label.strip()),
        label=label.strip(),
        field_type=field_type,
        choices=choices,
        required=bool(required),
        position=(last or 0) + 1,
        active=True,
    )
    db.session.add(definition)
    db.session.flush()
    return definition


def stored_count(definition: CustomFieldDefinition) -> int:
    """How many records hold a value for this field."""
    model = MODELS[definition.entity]
    return db.session.scalar(
        select(func.count())
        .select_from(model)
        .where(model.custom_fields[definition.key].as_string().is_not(None))
    )


def update_definition(
    definition: CustomFieldDefinition,
    label: str,
    field_type: str | None = None,
    choices=None,
    required: bool = False,
) -> CustomFieldDefinition:
    """Change label, type, choices, required. The key never changes. A new type is refused
    while records hold values of the old one (their values would no longer fit)."""
    field_type = field_type or definition.field_type
    choices = parse_choices(choices) if field_type in ("choice", "multichoice") else None
    errors = _check(definition.entity, label, field_type, choices, exclude_id=definition.id)
    if not errors and field_type != definition.field_type:
        count = stored_count(definition)
        if count:
            errors["field_type"] = _(
                "%(count)d records hold a value for this field: its type cannot change. "
                "Add a new field instead.",
                count=count,
            )
    if errors:
        raise DefinitionError(errors)
    definition.label = label.strip()
    definition.field_type = field_type
    definition.choices = choices
    definition.required = bool(required)
    db.session.flush()
    return definition


def reorder(entity: str, ids: Iterable[int]) -> None:
    """Positions follow `ids` (the order the admin dropped them in); the fields missing
    from it keep their relative order after them."""
    rows = db.session.scalars(
        select(CustomFieldDefinition)
        .where(CustomFieldDefinition.entity == entity)
        .order_by(CustomFieldDefinition.position, CustomFieldDefinition.id)
    ).all()
    by_id = {row.id: row for row in rows}
    ordered = [by_id[i] for i in dict.fromkeys(ids) if i in by_id]
    ordered += [row for row in rows if row not in ordered]
    for position, row in enumerate(ordered, start=1):
        if row.position != position:
            row.position = position
    db.session.flush()


def move(definition: CustomFieldDefinition, step: int) -> None:
    """One place up (step -1) or down (+1) among the active fields: the buttons' way."""
    ids = [f.id for f in definitions(definition.entity)]
    if definition.id not in ids:
        return
    index = ids.index(definition.id)
    target = max(0, min(len(ids) - 1, index + step))
    ids.insert(target, ids.pop(index))
    reorder(definition.entity, ids)


def set_active(definition: CustomFieldDefinition, active: bool) -> None:
    """Deactivate (hidden from forms, pages, filters; values kept) or bring back."""
    if active and definition.active is False:
        errors = _check(
            definition.entity,
            definition.label,
            definition.field_type,
            definition.choices,
            exclude_id=definition.id,
        )
        if "label" in errors:
            raise DefinitionError(errors)
    definition.active = active
    db.session.flush()
