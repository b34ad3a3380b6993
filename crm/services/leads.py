"""Lead capture: one way in for the quick-add, the web forms, the sales mailbox and imports.

A lead is a Contact at the "lead" stage with its source (LEAD_SOURCES, or free text from
an import), kept for acquisition reports. Capturing the same email address twice never
makes a second contact: the existing one gets a timeline entry and stays as it was, so a
form sent twice, or a mail from a known customer, adds to the history it already has.

Exactly one timeline entry of each capture carries `data["lead_source"]`: the "created"
entry of a new lead, or the entry added to an existing contact. Scoring counts web form
submissions by it (crm/services/lead_scoring.py, activity "web_form").
"""

import secrets
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import joinedload

from crm.extensions import db
from crm.models import Contact, LeadForm, User
from crm.models.leads import LEAD_SOURCES
from crm.models.search_keys import email_key
from crm.permissions import ADMIN, MANAGER, visible_contacts
from crm.services import keyset, lead_routing, lead_scoring
from crm.services.companies import find_or_create_company
from crm.services.timeline import record_activity


def _text(value: str | None, length: int) -> str:
    return (value or "").strip()[:length]


def find_by_email(email: str | None) -> Contact | None:
    key = email_key(email)
    if not key:
        return None
    return db.session.scalars(
        select(Contact).where(Contact.email_key == key).order_by(Contact.id).limit(1)
    ).first()


def capture_lead(
    *,
    source: str,
    first_name: str = "",
    last_name: str = "",
    email: str | None = None,
    phone: str | None = None,
    company_name: str | None = None,
    message: str | None = None,
    custom_fields: dict | None = None,
    actor: User | None = None,
    route: bool = True,
) -> Contact:
    """A new contact at the "lead" stage with its source (or the existing contact with that
    email, untouched but for a timeline entry), its company found or created by name, the
    message as a note on its timeline, scored, and routed when `route`. The caller commits."""
    source = _text(source, 60) or "manual"
    message = (message or "").strip() or None
    existing = find_by_email(email)
    if existing is not None:
        if message:
            record_activity(
                actor, "note", contact=existing, body=message, data={"lead_source": source}
            )
        else:
            record_activity(
                actor,
                "system",
                contact=existing,
                data={"event": "lead_captured", "lead_source": source},
            )
        return existing

    contact = Contact(
        first_name=_text(first_name, 100),
        last_name=_text(last_name, 100),
        email=_text(email, 254) or None,
        phone=_text(phone, 40) or None,
        stage="lead",
        source=source,
        custom_fields=dict(custom_fields or {}),
    )
    if company_name and company_name.strip():
        contact.company = find_or_create_company(actor, _text(company_name, 200))
    db.session.add(contact)
    record_activity(
        actor, "system", contact=contact, data={"event": "created", "lead_source": source}
    )
    if message:
        record_activity(actor, "note", contact=contact, body=message)
    db.session.flush()  # the scoring reads its activities by id
    lead_scoring.apply(contact, *lead_scoring.score(contact))
    if route:
        lead_routing.route_lead(contact, actor)
    return contact


# ---- the hot list -------------------------------------------------------------------------

HOT_SCOPES = ("mine", "team", "all")
MANUAL_SOURCES = ("manual", "quick_add")


@dataclass
class HotFilters:
    scope: str = "mine"
    source: str = ""
    min_score: int | None = None
    cursor: str | None = None

    @classmethod
    def from_args(cls, args, user: User) -> "HotFilters":
        scopes = scopes_for(user)
        scope = args.get("scope") or scopes[0]
        source = (args.get("source") or "").strip()
        min_score = args.get("min_score", type=int)
        if min_score is not None and not -100_000 <= min_score <= 100_000:
            min_score = None
        return cls(
            scope=scope if scope in scopes else scopes[0],
            source=source if source in LEAD_SOURCES else "",
            min_score=min_score,
            cursor=args.get("cursor") or None,
        )

    def as_args(self, **changes) -> dict:
        values = {"scope": self.scope, "source": self.source, "min_score": self.min_score}
        values.update(changes)
        return {key: value for key, value in values.items() if value not in (None, "")}


@dataclass
class HotPage:
    contacts: list[Contact]
    next_cursor: str | None
    filters: HotFilters = field(default_factory=HotFilters)


def scopes_for(user: User) -> tuple[str, ...]:
    """Reps see theirs first, managers their team's; everybody may see all leads."""
    if user.role == MANAGER and user.team_id is not None:
        return ("team", "mine", "all")
    if user.role in (ADMIN, MANAGER):
        return ("all", "mine")
    return ("mine", "all")


_HOT_KEY = keyset.SortKey(Contact.score, "int")


def hot_leads(user: User, filters: HotFilters, size: int = 50) -> HotPage:
    """Leads and prospects by score, highest first: the page's ids from a narrow query
    (an index on (stage, score, id) serves it), then those contacts with their company and
    owner joined: two queries whatever the page."""
    query = visible_contacts(user).where(Contact.stage.in_(lead_scoring.SCORED_STAGES))
    if filters.scope == "mine":
        query = query.where(Contact.owner_id == user.id)
    elif filters.scope == "team" and user.team_id is not None:
        team = select(User.id).where(User.team_id == user.team_id)
        query = query.where(Contact.owner_id.in_(team))
    if filters.source == "manual":
        # The contacts quick-add says "quick_add": typed by hand all the same.
        query = query.where(Contact.source.in_(MANUAL_SOURCES))
    elif filters.source:
        query = query.where(Contact.source == filters.source)
    if filters.min_score is not None:
        query = query.where(Contact.score >= filters.min_score)
    page_ids = keyset.paginate(
        query.with_only_columns(Contact.id), _HOT_KEY, Contact.id, True, filters.cursor, size
    )
    rows = db.session.scalars(
        select(Contact)
        .where(Contact.id.in_(page_ids.scalar_subquery()))
        .options(joinedload(Contact.company), joinedload(Contact.owner))
        .order_by(*keyset.ordering(_HOT_KEY, Contact.id, True))
    )
    contacts, next_cursor = keyset.split_page(list(rows.unique()), size, lambda c: c.score)
    return HotPage(contacts, next_cursor, filters)


# ---- web forms and rule order ---------------------------------------------------------------


def create_lead_form(name: str, source: str, redirect_url: str | None, active: bool) -> LeadForm:
    form = LeadForm(
        name=name,
        source=source,
        redirect_url=redirect_url or None,
        active=active,
        token=secrets.token_urlsafe(18),
    )
    db.session.add(form)
    db.session.flush()
    return form


def live_form(token: str) -> LeadForm | None:
    """The active web form with this token, else None."""
    if not token or len(token) > 64:
        return None
    return db.session.scalars(
        select(LeadForm).where(LeadForm.token == token, LeadForm.active.is_(True))
    ).first()


def ordered(model) -> list:
    return list(db.session.scalars(select(model).order_by(model.position, model.id)))


def add_last(model, rule) -> None:
    """A new rule goes after the others."""
    highest = db.session.scalar(select(func.max(model.position)))
    rule.position = (highest if highest is not None else -1) + 1


def move(model, rule, direction: str) -> bool:
    """Swap `rule` with its neighbour ("up" or "down"); positions are renumbered 0..n-1 so
    that rules created with equal positions get a stable order. False at either end."""
    rules = ordered(model)
    index = rules.index(rule)
    other = index - 1 if direction == "up" else index + 1
    if direction not in ("up", "down") or not 0 <= other < len(rules):
        return False
    rules[index], rules[other] = rules[other], rules[index]
    for position, item in enumerate(rules):
        if item.position != position:
            item.position = position
    return True
