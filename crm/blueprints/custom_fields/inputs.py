"""Custom fields in the records' forms: what the contacts, companies, deals and incidents
routes share to show, keep (on a 422) and validate the admin's fields.

Inputs are named "cf-<key>" so they never collide with a record's own fields; list
filters travel in the address as "cf_<key>=value".
"""

from collections.abc import Iterable, Iterator, Mapping

from crm.models import CustomFieldDefinition
from crm.services import custom_fields as cf

PREFIX = "cf-"


class CustomInputs:
    """The custom fields one form shows, their inputs as typed, and their errors."""

    def __init__(self, entity: str, fields: list[CustomFieldDefinition], inputs: dict):
        self.entity = entity
        self.fields = fields
        self.inputs = inputs
        self.errors: dict[str, str] = {}

    @classmethod
    def for_create(cls, entity: str, formdata=None) -> "CustomInputs":
        """A create form: the required fields only (the others wait for the record's page)."""
        fields = [f for f in cf.definitions(entity) if f.required]
        return cls._build(entity, fields, formdata, {})

    @classmethod
    def for_record(
        cls, entity: str, values: dict | None, formdata=None, keys: Iterable[str] | None = None
    ) -> "CustomInputs":
        """An edit form: every active field (or those of `keys`), from the record's values
        or from what was posted."""
        fields = cf.definitions(entity)
        if keys is not None:
            wanted = set(keys)
            fields = [f for f in fields if f.key in wanted]
        return cls._build(entity, fields, formdata, values or {})

    @classmethod
    def _build(cls, entity, fields, formdata, values) -> "CustomInputs":
        if formdata is None:
            inputs = {f.key: cf.form_input(f, values.get(f.key)) for f in fields}
        else:
            inputs = {f.key: _posted(formdata, f) for f in fields}
        return cls(entity, fields, inputs)

    def validate(self, current: dict | None = None) -> dict | None:
        """The record's new custom_fields (merged over `current`), or None with `errors` set."""
        if not self.fields:
            return dict(current or {})
        values, self.errors = cf.validate(
            self.entity, self.inputs, current, only=[f.key for f in self.fields]
        )
        return None if self.errors else values

    def __iter__(self) -> Iterator[tuple[CustomFieldDefinition, object, str | None]]:
        for f in self.fields:
            yield f, self.inputs.get(f.key), self.errors.get(f.key)

    def __bool__(self) -> bool:
        return bool(self.fields)


def _posted(formdata: Mapping, definition: CustomFieldDefinition):
    name = PREFIX + definition.key
    if definition.field_type == "multichoice":
        return formdata.getlist(name) if hasattr(formdata, "getlist") else formdata.get(name, [])
    return formdata.get(name, "")


def shown_values(entity: str, values: dict | None) -> list[tuple[CustomFieldDefinition, str]]:
    """Every active field of `entity` with its value as the reader sees it ("" when empty)."""
    values = values or {}
    return [(f, cf.display(f, values.get(f.key))) for f in cf.definitions(entity)]


def filter_args(custom: Mapping[str, str]) -> dict[str, str]:
    """A list's custom filters as query-string arguments."""
    return {f"cf_{key}": value for key, value in custom.items() if value}


def definition_or_404(entity: str, key: str) -> CustomFieldDefinition:
    """The field `key` of `entity`, for a route that names it; 404 when there is none."""
    from flask import abort

    definition = cf.definition_by_key(entity, key)
    if definition is None:
        abort(404)
    return definition


def save_inline(record, entity: str, field_key: str, formdata: Mapping, render, page_url: str):
    """The POST of a custom field edited in place on a record page (contacts, incidents):
    validate that one field, 422 with the input kept, else save and show it again.

    `render(definition, ci=None, status=200)` draws the field (or the page without htmx).
    """
    from crm import htmx as hx
    from crm.extensions import db

    definition = definition_or_404(entity, field_key)
    ci = CustomInputs.for_record(entity, record.custom_fields, formdata, keys=[field_key])
    values = ci.validate(record.custom_fields)
    if values is None:
        return render(definition, ci, status=422)
    record.custom_fields = values
    db.session.commit()
    if not hx.is_htmx():
        return hx.location(page_url)
    return render(definition)
