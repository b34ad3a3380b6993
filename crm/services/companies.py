"""Companies: listing and creating; contacts point at them."""

from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from crm.extensions import db
from crm.models import Company, Contact, User
from crm.models.search_keys import fold
from crm.permissions import visible_companies
from crm.services import custom_fields, keyset
from crm.services.text_search import search_condition


@dataclass
class CompanyFilters:
    q: str = ""
    cursor: str | None = None
    # Custom fields' filters: {key: value}, "cf_<key>=value" in the address.
    custom: dict = field(default_factory=dict)

    @classmethod
    def from_args(cls, args) -> "CompanyFilters":
        return cls(
            q=args.get("q", "").strip()[:100],
            cursor=args.get("cursor") or None,
            custom=custom_fields.custom_filter_args("company", args),
        )

    def as_args(self, **changes) -> dict:
        """Query-string arguments for a link that keeps these filters."""
        values = {"q": self.q, **{f"cf_{key}": value for key, value in self.custom.items()}}
        values.update(changes)
        return {k: v for k, v in values.items() if v}

    @property
    def active(self) -> bool:
        return bool(self.q or self.custom)


def find_or_create_company(actor: User, name: str) -> Company:
    """Reuse a company whose name matches once folded ("ACME" is "Acme"), else create it."""
    name = name.strip()
    existing = db.session.scalars(select(Company).where(Company.name_key == fold(name))).first()
    if existing:
        return existing
    company = Company(name=name, owner=actor)
    db.session.add(company)
    return company


def list_companies(user: User, filters: CompanyFilters, size: int = 50):
    contact_count = (
        select(func.count(Contact.id)).where(Contact.company_id == Company.id).scalar_subquery()
    )
    query = (
        visible_companies(user)
        .add_columns(contact_count.label("contact_count"))
        .options(selectinload(Company.owner))
        .where(*search_condition(Company.name_key, filters.q))
        .where(*custom_fields.filter_conditions("company", filters.custom))
    )
    query = keyset.paginate(
        query, keyset.SortKey(Company.name_key), Company.id, False, filters.cursor, size
    )
    rows = db.session.execute(query).all()
    page, next_cursor = keyset.split_page(
        [_CompanyRow(row[0], row[1]) for row in rows], size, lambda r: r.company.name_key
    )
    return page, next_cursor


@dataclass
class _CompanyRow:
    company: Company
    contact_count: int

    @property
    def id(self) -> int:
        return self.company.id
