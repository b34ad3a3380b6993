"""Keyset pagination: the next page starts after the last (sort value, id) seen.

Unlike OFFSET, the cost of a page does not grow with its depth, and rows added
while someone scrolls do not shift what they see.
"""

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from sqlalchemy import Select, tuple_


@dataclass(frozen=True)
class SortKey:
    expression: object  # a column or SQL expression
    kind: str = "str"  # how the cursor value is (de)serialized: str, int, decimal, date or datetime


def encode_cursor(value, row_id: int) -> str:
    if isinstance(value, date | datetime):
        value = value.isoformat()
    elif isinstance(value, Decimal):
        value = str(value)
    raw = json.dumps([value, row_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, kind: str):
    """(value, id), or None for a cursor that was tampered with or is stale."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value, row_id = json.loads(base64.urlsafe_b64decode(padded))
        if kind == "datetime":
            value = datetime.fromisoformat(value)
        elif kind == "date":
            value = date.fromisoformat(value)
        elif kind == "decimal":
            value = Decimal(value)
        elif kind == "int":
            value = int(value)
        elif not isinstance(value, str):
            return None
        return value, int(row_id)
    except (ValueError, TypeError, InvalidOperation, binascii.Error, json.JSONDecodeError):
        return None


def paginate(
    query: Select, key: SortKey, id_column, descending: bool, cursor: str | None, size: int
):
    """Apply order, cursor and limit; returns (rows, next_cursor or None).

    `query` must select the entity first; `key.expression` must be non-null.
    """
    query = after(query, key, id_column, descending, cursor)
    return query.order_by(*ordering(key, id_column, descending)).limit(size + 1)


def after(query: Select, key: SortKey, id_column, descending: bool, cursor: str | None):
    """The rows that come after the cursor (all of them without one, or with a stale one)."""
    position = decode_cursor(cursor, key.kind) if cursor else None
    if position is None:
        return query
    pair = tuple_(key.expression, id_column)
    return query.where(pair < position) if descending else query.where(pair > position)


def ordering(key: SortKey, id_column, descending: bool) -> tuple:
    """The ORDER BY of a keyset page: the sort value, then the id to break ties."""
    if descending:
        return key.expression.desc(), id_column.desc()
    return key.expression, id_column


def split_page(rows: list, size: int, sort_value) -> tuple[list, str | None]:
    """Cut the extra row fetched by paginate() off, and make the cursor for the next page."""
    if len(rows) <= size:
        return rows, None
    rows = rows[:size]
    last = rows[-1]
    return rows, encode_cursor(sort_value(last), last.id)
