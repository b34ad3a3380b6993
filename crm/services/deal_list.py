"""The deal list: the board's deals as sortable, searchable rows."""

from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, literal
from sqlalchemy.orm import contains_eager, selectinload

from crm.extensions import db
from crm.models import Deal, User
from crm.permissions import visible_deals
from crm.services import keyset
from crm.services.deal_filters import DealFilters

# Deals without an expected close date sort after all the others.
_FAR = date(2999, 12, 31)

SORTS = {
    "title": (keyset.SortKey(Deal.title_key), lambda d: d.title_key),
    "amount": (keyset.SortKey(Deal.amount, "decimal"), lambda d: d.amount),
    "close": (
        keyset.SortKey(func.coalesce(Deal.expected_close, literal(_FAR)), "date"),
        lambda d: d.expected_close or _FAR,
    ),
    "updated": (keyset.SortKey(Deal.updated_at, "datetime"), lambda d: d.updated_at),
}
DEFAULT_SORT = "-updated"


def parse_sort(value: str | None) -> str:
    value = value or DEFAULT_SORT
    return value if value.lstrip("-") in SORTS else DEFAULT_SORT


@dataclass
class DealPage:
    deals: list[Deal]
    next_cursor: str | None


def list_deals(
    user: User, filters: DealFilters, sort: str, cursor: str | None, size: int = 50
) -> DealPage:
    query = (
        visible_deals(user)
        .join(Deal.stage)
        .outerjoin(Deal.company)
        .options(
            contains_eager(Deal.stage),
            contains_eager(Deal.company),
            selectinload(Deal.owner),
            selectinload(Deal.contact),
        )
    )
    query = filters.apply(query, user)
    key, sort_value = SORTS[sort.lstrip("-")]
    query = keyset.paginate(query, key, Deal.id, sort.startswith("-"), cursor, size)
    rows = list(db.session.scalars(query).unique())
    found, next_cursor = keyset.split_page(rows, size, sort_value)
    return DealPage(found, next_cursor)
