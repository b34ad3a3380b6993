"""Matching typed words against a folded search column."""

from crm.models.search_keys import fold


def search_condition(column, text: str) -> list:
    """Every word of `text` must appear somewhere in `column` (already folded)."""
    terms = [t for t in fold(text).split(" ") if t]
    return [column.like(f"%{_escape_like(term)}%", escape="\\") for term in terms]


def _escape_like(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
