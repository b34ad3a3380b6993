"""Matching typed words against a folded search column."""

import re

from sqlalchemy import Select

from crm.extensions import db
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


def estimated_rows(query: Select) -> int | None:
    """How many rows PostgreSQL's planner expects `query` to return, without running it.

    None on other databases. One EXPLAIN: planning only, no rows read.
    """
    connection = db.session.connection()
    if connection.dialect.name != "postgresql":
        return None
    compiled = query.compile(dialect=connection.dialect)
    plan = connection.exec_driver_sql(
        "EXPLAIN (FORMAT JSON) " + str(compiled),  # noqa: S608  (compiled by SQLAlchemy, bound parameters)
        compiled.params,
    ).scalar()
    return int(plan[0]["Plan"]["Plan Rows"])
