"""Contacts: listing, creating, editing, moving along the lifecycle."""

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import String, case, false, func, literal, null, or_, select, tuple_, union_all
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import contains_eager, joinedload, selectinload

from crm.extensions import db
from crm.models import Company, Contact, Tag, User
from crm.models.contacts import STAGES, contact_tag, display_name
from crm.models.search_keys import email_key, phone_key
from crm.models.users import initials_of
from crm.permissions import visible_contacts
from crm.services import custom_fields, keyset
from crm.services.companies import find_or_create_company
from crm.services.text_search import estimated_rows, search_condition, search_terms
from crm.services.timeline import record_activity

_STAGE_ORDER = case({stage: index for index, stage in enumerate(STAGES)}, value=Contact.stage)

SORTS = {
    "name": (keyset.SortKey(Contact.sort_name), lambda c: c.sort_name),
    "company": (
        keyset.SortKey(func.coalesce(Company.name_key, "")),
        lambda c: c.company.name_key if c.company else "",
    ),
    "stage": (keyset.SortKey(_STAGE_ORDER, "int"), lambda c: STAGES.index(c.stage)),
    "activity": (
        keyset.SortKey(Contact.last_activity_at, "datetime"),
        lambda c: c.last_activity_at,
    ),
    "created": (keyset.SortKey(Contact.created_at, "datetime"), lambda c: c.created_at),
}
DEFAULT_SORT = "name"

# A search's matches cluster in name order: "dur" finds the Durands, who sort together,
# and "tay" the Taylors near the end. Walking the name index until a page of matches
# turns up then reads every contact filed before them (100 ms for "tay" among 100,000).
# When the planner expects at most this many matches, they are fetched through the
# trigram index and sorted instead, a cost that follows their number, not their place
# in the alphabet; a term matching more is common enough to be found early in any order.
FEW_MATCHES = 10_000


@dataclass
class ContactFilters:
    q: str = ""
    stage: str = ""
    owner: str = ""  # "", "me", "none" or a user id
    tag: str = ""
    company: int | None = None
    sort: str = DEFAULT_SORT  # a key of SORTS, "-" in front for descending
    cursor: str | None = None
    # Custom fields' filters: {key: value}, "cf_<key>=value" in the address.
    custom: dict = field(default_factory=dict)

    @classmethod
    def from_args(cls, args) -> "ContactFilters":
        sort = args.get("sort", DEFAULT_SORT)
        if sort.lstrip("-") not in SORTS:
            sort = DEFAULT_SORT
        stage = args.get("stage", "")
        return cls(
            q=args.get("q", "").strip()[:100],
            stage=stage if stage in STAGES else "",
            owner=args.get("owner", ""),
            tag=args.get("tag", "").strip()[:60],
            company=args.get("company", type=int),
            sort=sort,
            cursor=args.get("cursor") or None,
            custom=custom_fields.custom_filter_args("contact", args),
        )

    def as_args(self, **changes) -> dict:
        """Query-string arguments for a link that keeps these filters."""
        values = {
            "q": self.q,
            "stage": self.stage,
            "owner": self.owner,
            "tag": self.tag,
            "company": self.company,
            **{f"cf_{key}": value for key, value in self.custom.items()},
        }
        values["sort"] = self.sort if self.sort != DEFAULT_SORT else ""
        values.update(changes)
        return {k: v for k, v in values.items() if v}

    @property
    def active(self) -> bool:
        return bool(self.q or self.stage or self.owner or self.tag or self.company or self.custom)


@dataclass
class ContactPage:
    contacts: list  # Contact objects, or ContactRow for the list page
    next_cursor: str | None
    filters: ContactFilters = field(default_factory=ContactFilters)


class CompanyRef(NamedTuple):
    id: int
    name: str
    name_key: str


class OwnerRef(NamedTuple):
    name: str
    initials: str


class TagRef(NamedTuple):
    name: str


@dataclass(frozen=True, slots=True)
class ContactRow:
    """A line of the contact list: the attributes its template reads from a Contact, read
    as plain values. Building ORM objects (contact, company, owner, tags) for a page cost
    more than the rest of the request once the queries were fast."""

    id: int
    name: str
    title: str | None
    email: str | None
    phone: str | None
    stage: str
    last_activity_at: datetime | None
    created_at: datetime
    sort_name: str
    company: CompanyRef | None
    owner: OwnerRef | None
    tags: list[TagRef]


def _page_of_ids(user: User, filters: ContactFilters, size: int):
    """The ids of one page (and one more, to know if another follows), filtered and
    sorted, from the cursor on: with how to order and continue from the rows read.

    Narrow rows first, which an index can often answer alone; the shown columns are read
    for those ids only. Sorting the matches of a search whole, with every column, was
    most of its time.
    """
    query = visible_contacts(user).outerjoin(Contact.company)
    query = query.where(*search_condition(Contact.search_text, filters.q))
    if filters.stage:
        query = query.where(Contact.stage == filters.stage)
    if filters.owner == "me":
        query = query.where(Contact.owner_id == user.id)
    elif filters.owner == "none":
        query = query.where(Contact.owner_id.is_(None))
    elif filters.owner.isdigit():
        query = query.where(Contact.owner_id == int(filters.owner))
    if filters.tag:
        query = query.where(Contact.tags.any(Tag.name == filters.tag))
    if filters.company:
        query = query.where(Contact.company_id == filters.company)
    query = query.where(*custom_fields.filter_conditions("contact", filters.custom))

    key, sort_value = SORTS[filters.sort.lstrip("-")]
    if filters.sort.lstrip("-") == "name":
        key = keyset.SortKey(name_order(filters.q), key.kind)
    descending = filters.sort.startswith("-")
    if filters.sort.lstrip("-") == "company":
        ids = _ids_by_company(query, filters.cursor, size, descending)
    else:
        ids = keyset.paginate(
            query.with_only_columns(Contact.id), key, Contact.id, descending, filters.cursor, size
        )
    return ids.scalar_subquery(), keyset.ordering(key, Contact.id, descending), sort_value


def _ids_by_company(query, cursor: str | None, size: int, descending: bool):
    """A page of ids in company-name order, as two index walks merged: the contacts without
    a company (their key is "", so they come first) by id, and the others by following the
    company name index to each company's people. One ORDER BY over the outer join read and
    sorted every contact instead (50 to 100 ms at 100,000)."""
    key = Company.name_key
    alone = query.where(Contact.company_id.is_(None))
    # A condition on the company itself: the outer join becomes an inner one, which the
    # planner can drive from the company side, in name order.
    employed = query.where(Company.id.is_not(None))
    position = keyset.decode_cursor(cursor, "str") if cursor else None
    if position is not None:
        value, last_id = position
        if descending:  # companies from Z to A, then the contacts without one
            employed = employed.where(key <= value, tuple_(key, Contact.id) < (value, last_id))
            if value == "":
                alone = alone.where(Contact.id < last_id)
        else:  # the contacts without a company, then companies from A to Z
            alone = alone.where(Contact.id > last_id) if value == "" else alone.where(false())
            employed = employed.where(key >= value, tuple_(key, Contact.id) > (value, last_id))
    direction = (lambda column: column.desc()) if descending else (lambda column: column)
    branches = [
        branch.order_by(*order).limit(size + 1).subquery()
        for branch, order in (
            (
                alone.with_only_columns(Contact.id, literal("", String).label("key")),
                (direction(Contact.id),),
            ),
            (
                employed.with_only_columns(Contact.id, key.label("key")),
                (direction(key), direction(Contact.id)),
            ),
        )
    ]
    merged = union_all(*(select(b.c.id, b.c.key) for b in branches)).subquery()
    return (
        select(merged.c.id)
        .order_by(direction(merged.c.key), direction(merged.c.id))
        .limit(size + 1)
    )


def list_contacts(user: User, filters: ContactFilters, size: int = 50) -> ContactPage:
    """One page of the contacts `user` may see, as Contact objects with their company,
    owner and tags (exports read every column)."""
    page_ids, order, sort_value = _page_of_ids(user, filters, size)
    rows = db.session.scalars(
        select(Contact)
        .outerjoin(Contact.company)
        .where(Contact.id.in_(page_ids))
        # The owner joined in (a few dozen users): one query and round trip fewer than a
        # second SELECT; tags, many per contact, come in one more.
        .options(
            contains_eager(Contact.company), joinedload(Contact.owner), selectinload(Contact.tags)
        )
        .order_by(*order)
    )
    contacts, next_cursor = keyset.split_page(list(rows.unique()), size, sort_value)
    return ContactPage(contacts, next_cursor, filters)


def list_contact_rows(user: User, filters: ContactFilters, size: int = 50) -> ContactPage:
    """The same page as list_contacts, as ContactRow values for the list: one query on
    PostgreSQL, where each row brings its tag names along, two elsewhere."""
    page_ids, order, sort_value = _page_of_ids(user, filters, size)
    tags_inline = db.session.get_bind().dialect.name == "postgresql"
    query = (
        select(
            Contact.id,
            Contact.first_name,
            Contact.last_name,
            Contact.title,
            Contact.email,
            Contact.phone,
            Contact.stage,
            Contact.last_activity_at,
            Contact.created_at,
            Contact.sort_name,
            Company.id,
            Company.name,
            Company.name_key,
            User.name,
            _tag_array() if tags_inline else null(),
        )
        .outerjoin(Company, Company.id == Contact.company_id)
        .outerjoin(User, User.id == Contact.owner_id)
        .where(Contact.id.in_(page_ids))
        .order_by(*order)
    )
    found = db.session.execute(query).all()
    tags = {} if tags_inline else _tag_names([row[0] for row in found])
    rows = [
        ContactRow(
            id=contact_id,
            name=display_name(first, last, email, phone),
            title=title,
            email=email,
            phone=phone,
            stage=stage,
            last_activity_at=last_activity_at,
            created_at=created_at,
            sort_name=sort_name,
            company=CompanyRef(company_id, company, company_key) if company_id else None,
            owner=OwnerRef(owner, initials_of(owner)) if owner else None,
            tags=[TagRef(name) for name in tag_names] if tag_names else tags.get(contact_id, []),
        )
        for (
            contact_id,
            first,
            last,
            title,
            email,
            phone,
            stage,
            last_activity_at,
            created_at,
            sort_name,
            company_id,
            company,
            company_key,
            owner,
            tag_names,
        ) in found
    ]
    rows, next_cursor = keyset.split_page(rows, size, sort_value)
    return ContactPage(rows, next_cursor, filters)


def _tag_array():
    """A contact's tag names by name, as a PostgreSQL array read with its row: a second
    query for the page's tags was a round trip and a fifth of the list's Python time."""
    return (
        select(func.array_agg(aggregate_order_by(Tag.name, Tag.name)))
        .select_from(contact_tag.join(Tag, Tag.id == contact_tag.c.tag_id))
        .where(contact_tag.c.contact_id == Contact.id)
        .scalar_subquery()
    )


def _tag_names(contact_ids: list[int]) -> dict[int, list[TagRef]]:
    if not contact_ids:
        return {}
    query = (
        select(contact_tag.c.contact_id, Tag.name)
        .join(Tag, Tag.id == contact_tag.c.tag_id)
        .where(contact_tag.c.contact_id.in_(contact_ids))
        .order_by(Tag.name)
    )
    tags: dict[int, list[TagRef]] = {}
    for contact_id, name in db.session.execute(query):
        tags.setdefault(contact_id, []).append(TagRef(name))
    return tags


def name_order(q: str):
    """What to sort contacts by name with: the column, or for a search with few matches
    (FEW_MATCHES) the same values as an expression, which no index walk can serve."""
    terms = search_terms(q)
    # Under three characters the trigram index cannot help: walking the names is the best left.
    if not terms or any(len(term) < 3 for term in terms):
        return Contact.sort_name
    expected = _expected_matches(tuple(sorted(terms)), q)
    if expected is None or expected > FEW_MATCHES:
        return Contact.sort_name
    return Contact.sort_name.concat("")


# The planner's estimate of a search's matches, per process: asking for it is a round trip
# and a planning per search, and it only moves when the statistics are refreshed. A stale
# one picks the slower of two plans for the same rows, never other rows, so it is kept a
# few minutes, for the terms searched most (the cache is emptied when full).
_ESTIMATE_SECONDS = 300
_ESTIMATES_KEPT = 1000
_estimates: dict[tuple[str, ...], tuple[float, int | None]] = {}


def _expected_matches(terms: tuple[str, ...], q: str) -> int | None:
    now = time.monotonic()
    known = _estimates.get(terms)
    if known and now - known[0] < _ESTIMATE_SECONDS:
        return known[1]
    expected = estimated_rows(select(Contact.id).where(*search_condition(Contact.search_text, q)))
    if len(_estimates) >= _ESTIMATES_KEPT:
        _estimates.clear()
    _estimates[terms] = (now, expected)
    return expected


def find_duplicates(
    email: str | None, phone: str | None, exclude_id: int | None = None
) -> list[Contact]:
    """Contacts that already have this email address or phone number."""
    conditions = []
    if email_key(email):
        conditions.append(Contact.email_key == email_key(email))
    if len(phone_key(phone)) >= 6:
        conditions.append(Contact.phone_key == phone_key(phone))
    if not conditions:
        return []
    query = select(Contact).where(or_(*conditions)).options(joinedload(Contact.company))
    if exclude_id:
        query = query.where(Contact.id != exclude_id)
    return list(db.session.scalars(query.limit(5)))


def create_contact(
    actor: User,
    *,
    first_name: str = "",
    last_name: str = "",
    email: str | None = None,
    phone: str | None = None,
    company_name: str | None = None,
    title: str | None = None,
    stage: str = "lead",
    source: str | None = "manual",
    owner: User | None = None,
) -> Contact:
    contact = Contact(
        first_name=first_name.strip(),
        last_name=last_name.strip(),
        email=(email or "").strip() or None,
        phone=(phone or "").strip() or None,
        title=(title or "").strip() or None,
        stage=stage,
        source=source or "manual",
        owner=owner or actor,
        tags=[],  # known to be none: shown without a query
    )
    if company_name and company_name.strip():
        contact.company = find_or_create_company(actor, company_name)
    db.session.add(contact)
    record_activity(actor, "system", contact=contact, data={"event": "created"})
    return contact


def change_stage(actor: User, contact: Contact, stage: str) -> bool:
    """Move the contact to `stage`; the same row, so all its history stays."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}")
    if stage == contact.stage:
        return False
    record_activity(
        actor,
        "system",
        contact=contact,
        data={"event": "stage", "from": contact.stage, "to": stage},
    )
    contact.stage = stage
    return True


def set_tags(contact: Contact, names: list[str]) -> None:
    wanted = {n.strip()[:60] for n in names if n.strip()}
    existing = {t.name: t for t in db.session.scalars(select(Tag).where(Tag.name.in_(wanted)))}
    contact.tags = [existing.get(name) or Tag(name=name) for name in sorted(wanted)]


def set_owner(actor: User, contact: Contact, owner: User | None) -> None:
    if owner == contact.owner:
        return
    record_activity(
        actor,
        "system",
        contact=contact,
        data={
            "event": "owner",
            "from": contact.owner.name if contact.owner else None,
            "to": owner.name if owner else None,
        },
    )
    contact.owner = owner


class OwnerChoice(NamedTuple):
    id: int
    name: str


def filter_choices(owner_roles: tuple[str, ...]) -> tuple[list[OwnerChoice], list[str]]:
    """The list's owner choices (active users of `owner_roles`, by name) and every tag
    name, in one query: two small tables read on every list page, one round trip."""
    owners = select(literal(0).label("kind"), User.id, User.name).where(
        User.active.is_(True), User.role.in_(owner_roles)
    )
    tags = select(literal(1), null(), Tag.name)
    query = union_all(owners, tags).order_by("kind", "name")
    found_owners, found_tags = [], []
    for kind, user_id, name in db.session.execute(query):
        if kind == 0:
            found_owners.append(OwnerChoice(user_id, name))
        else:
            found_tags.append(name)
    return found_owners, found_tags
