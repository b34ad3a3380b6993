"""Small pieces shared by the WTForms forms."""

from collections.abc import Iterable

from wtforms.fields.choices import SelectChoice


def choices(pairs: Iterable[tuple[str, object]]) -> list[SelectChoice]:
    """[(value, label), ...] as WTForms 3.3 wants them."""
    return [SelectChoice(value, label) for value, label in pairs]


def strip(value):
    """Field filter: people paste addresses with spaces around them."""
    return value.strip() if isinstance(value, str) else value


STRIP = [strip]
