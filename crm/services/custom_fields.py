"""Custom fields: the admin's definitions, and values validated on the server.

Owned by the custom-fields work; forms, imports and exports call it.
"""

from collections.abc import Mapping

from crm.models import CustomFieldDefinition


class CustomFieldError(ValueError):
    """A value that does not fit its field; the message (translated) is for the user."""


def definitions(entity: str, include_inactive: bool = False) -> list[CustomFieldDefinition]:
    """The fields of `entity` ("contact", "company", "deal", "incident") in display order."""
    raise NotImplementedError


def parse_value(definition: CustomFieldDefinition, raw):
    """Text (or a list for multichoice) as typed in a form or a CSV cell -> the stored JSON
    value (str, number, ISO date string, list, bool), None when empty; raises CustomFieldError.
    Accepts French input too: "1 234,5", "31/12/2026", "oui"/"non"."""
    raise NotImplementedError


def validate(entity: str, raw: Mapping, current: dict | None = None) -> tuple[dict, dict]:
    """All fields of `entity` from `raw` (form data or a mapped CSV row keyed by field key).
    Returns (values, errors by key): values merged over `current`; a required field empty
    is an error. Nothing is saved here."""
    raise NotImplementedError


def display(definition: CustomFieldDefinition, value) -> str:
    """The value as shown to the user, in their locale ("" when empty)."""
    raise NotImplementedError
