"""Contacts: listing, creating, editing, moving along the lifecycle."""

from dataclasses import dataclass, field

from sqlalchemy import case, func, or_, select
from sqlalchemy.orm import contains_eager, joinedload, selectinload

from crm.extensions import db
from crm.models import Company, Contact, Tag, User
from crm.models.contacts import STAGES
from crm.models.search_keys import email_key, phone_key
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
    contacts: list[Contact]
    next_cursor: str | None
    filters: ContactFilters = field(default_factory=ContactFilters)


def list_contacts(user: User, filters: ContactFilters, size: int = 50) -> ContactPage:
    """One page of the contacts `user` may see, in the asked order, from the cursor on.

    Two steps: the filtered, sorted and limited ids first, on narrow rows that an index
    can often answer alone; then those contacts with their company, owner and tags.
    Sorting the matches of a search whole, with every column, was most of its time.
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
    page_ids = keyset.paginate(
        query.with_only_columns(Contact.id), key, Contact.id, descending, filters.cursor, size
    )
    rows = db.session.scalars(
        select(Contact)
        .outerjoin(Contact.company)
        .where(Contact.id.in_(page_ids.scalar_subquery()))
        # The owner joined in (a few dozen users): one query and round trip fewer than a
        # second SELECT; tags, many per contact, come in one more.
        .options(
            contains_eager(Contact.company), joinedload(Contact.owner), selectinload(Contact.tags)
        )
        .order_by(*keyset.ordering(key, Contact.id, descending))
    )
    contacts, next_cursor = keyset.split_page(list(rows.unique()), size, sort_value)
    return ContactPage(contacts, next_cursor, filters)


def name_order(q: str):
    """What to sort contacts by name with: the column, or for a search with few matches
    (FEW_MATCHES) the same values as an expression, which no index walk can serve."""
    terms = search_terms(q)
    # Under three characters the trigram index cannot help: walking the names is the best left.
    if not terms or any(len(term) < 3 for term in terms):
        return Contact.sort_name
    expected = estimated_rows(select(Contact.id).where(*search_condition(Contact.search_text, q)))
    if expected is None or expected > FEW_MATCHES:
        return Contact.sort_name
    return Contact.sort_name.concat("")


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
    query = select(Contact).where(or_(*conditions)).options(selectinload(Contact.company))
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


def all_tags() -> list[str]:
    return list(db.session.scalars(select(Tag.name).order_by(Tag.name)))
