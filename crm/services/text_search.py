"""Matching typed words against a folded search column."""

import re

from crm.models.search_keys import fold

_PHONE_LIKE = re.compile(r"^[0-9+().\s/-]+$")


def search_terms(text: str) -> list[str]:
    """The words to look for; a typed phone number becomes one run of digits.

    Stored contacts carry their digits with the country code ("33612345678") and
    without it ("612345678"), so the national trunk 0 of "06 12 34" is dropped.
    """
    if _PHONE_LIKE.match(text) and sum(ch.isdigit() for ch in text) >= 4:
        digits = "".join(ch for ch in text if ch.isdigit())
        return [digits[1:] if digits.startswith("0") else digits]
    return [t for t in fold(text).split(" ") if t]


def search_condition(column, text: str) -> list:
    """Every word of `text` must appear somewhere in `column` (already folded)."""
    terms = search_terms(text)
    return [column.like(f"%{_escape_like(term)}%", escape="\\") for term in terms]


def _escape_like(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
