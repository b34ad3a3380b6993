"""Incidents: the queue, creating and changing one, its conversation, and the commercial
follow-up of a complaint.

Every change calls the service-level interface (crm/services/sla.py) inside the same
transaction, so that due times always follow status and priority; the routes commit.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime, time

from flask import has_request_context, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import DateTime, case, func, literal, or_, select, union_all
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import joinedload, selectinload

from crm.extensions import db
from crm.i18n import writing_for
from crm.models import (
    Company,
    Contact,
    Deal,
    EmailMessage,
    EmailTemplate,
    Incident,
    IncidentMessage,
    Intervention,
    Task,
    Team,
    User,
)
from crm.models.search_keys import fold
from crm.models.support import INCIDENT_KINDS, INCIDENT_STATUSES, PRIORITIES
from crm.permissions import (
    SUPPORT,
    has_permission,
    visible_deals,
    visible_incidents,
    visible_interventions,
)
from crm.services import assignment, custom_fields, keyset, sla
from crm.services.recurrence import from_local_naive
from crm.services.reminders import now, user_zone
from crm.services.tasks import add_working_days, create_task
from crm.services.text_search import search_condition, search_terms
from crm.services.timeline import record_activity

OPEN_STATUSES = ("new", "open", "waiting")
VIEWS = ("mine", "unassigned", "open", "all")
# A clock that is not running sorts after every running one (resolved, closed, no policy).
_NEVER = datetime(9999, 12, 31)
_PRIORITY_RANK = case(
    {p: rank for rank, p in enumerate(reversed(PRIORITIES))}, value=Incident.priority
)


def next_due_expression():
    """The nearest due time of an incident: its first response while unanswered, then its
    resolution; the queue sorts on it, most urgent first."""
    due = case(
        (
            Incident.first_responded_at.is_(None) & Incident.first_response_due_at.isnot(None),
            Incident.first_response_due_at,
        ),
        else_=Incident.resolution_due_at,
    )
    return func.coalesce(due, literal(_NEVER, DateTime()), type_=DateTime())


def next_due(incident: Incident) -> datetime | None:
    if incident.first_responded_at is None and incident.first_response_due_at is not None:
        return incident.first_response_due_at
    return incident.resolution_due_at


def _naive(value: datetime | None) -> datetime:
    """The sort value as the database compares it: naive UTC (see UTCDateTime)."""
    if value is None:
        return _NEVER
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


SORTS = {
    "due": (keyset.SortKey(next_due_expression(), "datetime"), lambda i: _naive(next_due(i))),
    # A column of aware UTC: the cursor keeps the zone (UTCDateTime refuses naive values).
    "created": (keyset.SortKey(Incident.created_at, "datetime"), lambda i: i.created_at),
    "priority": (
        keyset.SortKey(_PRIORITY_RANK, "int"),
        lambda i: PRIORITIES[::-1].index(i.priority),
    ),
}
DEFAULT_SORT = "due"


@dataclass
class IncidentFilters:
    view: str = "open"  # mine, unassigned, open (every open one) or all
    q: str = ""
    status: str = ""
    priority: str = ""
    kind: str = ""
    team: int | None = None
    sort: str = DEFAULT_SORT
    cursor: str | None = None
    # Custom fields' filters: {key: value}, "cf_<key>=value" in the address.
    custom: dict = field(default_factory=dict)

    @classmethod
    def from_args(cls, args, user: User) -> "IncidentFilters":
        view = args.get("view") or default_view(user)
        sort = args.get("sort", DEFAULT_SORT)
        return cls(
            view=view if view in VIEWS else default_view(user),
            q=args.get("q", "").strip()[:100],
            status=_one_of(args.get("status", ""), INCIDENT_STATUSES),
            priority=_one_of(args.get("priority", ""), PRIORITIES),
            kind=_one_of(args.get("kind", ""), INCIDENT_KINDS),
            team=args.get("team", type=int),
            sort=sort if sort.lstrip("-") in SORTS else DEFAULT_SORT,
            cursor=args.get("cursor") or None,
            custom=custom_fields.custom_filter_args("incident", args),
        )

    def as_args(self, **changes) -> dict:
        values = {
            "view": self.view,
            "q": self.q,
            "status": self.status,
            "priority": self.priority,
            "kind": self.kind,
            "team": self.team,
            "sort": self.sort if self.sort != DEFAULT_SORT else "",
            **{f"cf_{key}": value for key, value in self.custom.items()},
        }
        values.update(changes)
        return {k: v for k, v in values.items() if v}

    @property
    def active(self) -> bool:
        return bool(self.q or self.status or self.priority or self.kind or self.team or self.custom)


def _one_of(value: str, allowed) -> str:
    return value if value in allowed else ""


def default_view(user: User) -> str:
    """Support agents start from their own incidents; everybody else from every open one."""
    return "mine" if user.role == SUPPORT else "open"


@dataclass
class IncidentPage:
    incidents: list[Incident]
    next_cursor: str | None
    filters: IncidentFilters = field(default_factory=IncidentFilters)


def _search(query, q: str):
    """Every typed word in the subject, the contact or the company; "#12" finds incident 12."""
    reference = q.lstrip("#")
    if q.startswith("#") and reference.isdigit():
        return query.where(Incident.id == int(reference))
    for term in search_terms(q):
        columns = (Incident.subject_key, Contact.search_text, Company.name_key)
        query = query.where(or_(*(c for col in columns for c in search_condition(col, term))))
    return query


def _filtered(user: User, filters: IncidentFilters):
    query = visible_incidents(user)
    if filters.q:
        query = query.outerjoin(Incident.contact).outerjoin(Incident.company)
        query = _search(query, filters.q)
    if filters.view == "mine":
        query = query.where(Incident.assignee_id == user.id)
    elif filters.view == "unassigned":
        query = query.where(Incident.assignee_id.is_(None))
    if filters.status:
        query = query.where(Incident.status == filters.status)
    elif filters.view != "all":
        query = query.where(Incident.status.in_(OPEN_STATUSES))
    if filters.priority:
        query = query.where(Incident.priority == filters.priority)
    if filters.kind:
        query = query.where(Incident.kind == filters.kind)
    if filters.team:
        query = query.where(Incident.team_id == filters.team)
    query = query.where(*custom_fields.filter_conditions("incident", filters.custom))
    return query


def _loaded(query):
    # All many-to-one: joined into the queue's own query rather than one query apiece.
    return query.options(
        joinedload(Incident.contact),
        joinedload(Incident.company),
        joinedload(Incident.assignee),
    )


def list_incidents(user: User, filters: IncidentFilters, size: int = 50) -> IncidentPage:
    """One page of the queue, in the asked order, from the cursor on (keyset)."""
    key, sort_value = SORTS[filters.sort.lstrip("-")]
    descending = filters.sort.startswith("-")
    query = keyset.paginate(
        _filtered(user, filters), key, Incident.id, descending, filters.cursor, size
    )
    rows = list(db.session.scalars(_loaded(query)).unique())
    incidents, next_cursor = keyset.split_page(rows, size, sort_value)
    return IncidentPage(incidents, next_cursor, filters)


def view_counts(user: User) -> dict[str, int]:
    """How many open incidents each tab holds, in one query: a count per tab, each found
    by an index on its own conditions (status first, or the assignee and status), never
    by reading the incidents closed long ago."""
    open_ = visible_incidents(user).where(Incident.status.in_(OPEN_STATUSES))

    def count(query):
        return query.with_only_columns(func.count()).scalar_subquery()

    mine, unassigned, all_open = db.session.execute(
        select(
            count(open_.where(Incident.assignee_id == user.id)),
            count(open_.where(Incident.assignee_id.is_(None))),
            count(open_),
        )
    ).one()
    return {"mine": mine, "unassigned": unassigned, "open": all_open}


def customer_incidents(user: User, *, contact=None, company=None, limit: int = 20):
    """The incidents of a customer that `user` may see: open ones first, newest first."""
    query = visible_incidents(user)
    if contact is not None:
        query = query.where(Incident.contact_id == contact.id)
    else:
        query = query.where(Incident.company_id == company.id)
    # The panel names the assignee: joined in, rather than a query of its own.
    query = query.options(joinedload(Incident.assignee))
    query = query.order_by(
        Incident.status.notin_(OPEN_STATUSES), Incident.created_at.desc(), Incident.id.desc()
    )
    return list(db.session.scalars(query.limit(limit)))


def page_options() -> tuple:
    """What an incident's page shows around it: one row each, joined into the incident's own
    query rather than one query apiece; the conversation in a second one, each message
    with its author and the mail it went out or came in as (its delivery state)."""
    return (
        joinedload(Incident.contact).joinedload(Contact.owner),
        joinedload(Incident.contact).joinedload(Contact.company),
        joinedload(Incident.company).joinedload(Company.owner),
        joinedload(Incident.assignee),
        joinedload(Incident.created_by),
        joinedload(Incident.product),
        joinedload(Incident.team),
        selectinload(Incident.messages).options(
            joinedload(IncidentMessage.author).load_only(User.name),
            # What a message shows of its mail: not its headers and addresses.
            joinedload(IncidentMessage.email).load_only(
                EmailMessage.status,
                EmailMessage.from_name,
                EmailMessage.from_address,
                EmailMessage.last_error,
            ),
        ),
    )


_PAGE_RELATIONS = frozenset(
    {"contact", "company", "assignee", "created_by", "product", "team", "messages"}
)


def load_for_page(incident: Incident) -> Incident:
    """The incident with what its page shows, in a fixed number of queries: read again
    (after a commit, or when it came without them), else as it is."""
    state = sa_inspect(incident)
    if not state.expired and not (state.unloaded & _PAGE_RELATIONS):
        return incident
    # The id from the identity key: after a commit `incident.id` would reload the row first.
    (incident_id,) = state.identity
    return db.session.scalars(
        select(Incident)
        .where(Incident.id == incident_id)
        .options(*page_options())
        .execution_options(populate_existing=True)
    ).one()


# ---- who works on incidents ------------------------------------------------


def _agent_condition():
    """Who an incident can be given to: active support agents, managers and admins."""
    return User.active.is_(True) & User.role.in_(("support", "manager", "admin"))


def agents() -> list[User]:
    return list(db.session.scalars(select(User).where(_agent_condition()).order_by(User.name)))


@dataclass(frozen=True)
class Choice:
    id: int
    name: str


def page_choices() -> tuple[list[Choice], list[Choice]]:
    """The two lists an incident's page offers, read in one query: the agents to give it
    to (the header) and the canned responses (the composer), each as ids and names."""
    from crm.services.canned_responses import SUPPORT_USAGES

    lists = union_all(
        select(literal("agent").label("list"), User.id, User.name).where(_agent_condition()),
        select(literal("response"), EmailTemplate.id, EmailTemplate.name).where(
            EmailTemplate.usage.in_(SUPPORT_USAGES)
        ),
    )
    found = {"agent": [], "response": []}
    for kind, choice_id, name in db.session.execute(
        lists.order_by(lists.selected_columns.list, lists.selected_columns.name)
    ):
        found[kind].append(Choice(choice_id, name))
    return found["agent"], found["response"]


def teams() -> list[Team]:
    return list(db.session.scalars(select(Team).order_by(Team.name)))


def account_owner(incident: Incident) -> User | None:
    """The sales owner of the customer: the contact's owner, else the company's."""
    if incident.contact is not None and incident.contact.owner is not None:
        return incident.contact.owner
    if incident.company is not None:
        return incident.company.owner
    return None


def incident_path(incident: Incident) -> str:
    if has_request_context():
        return url_for("incidents.detail", incident_id=incident.id)
    return f"/incidents/{incident.id}"


# ---- changes ---------------------------------------------------------------


class IncidentRefused(ValueError):
    """A change the rules forbid; the message (lazy: read in the user's language) is for the user."""


def create_incident(
    actor: User,
    *,
    subject: str,
    kind: str = "technical",
    description: str | None = None,
    priority: str = "normal",
    status: str = "new",
    channel: str = "phone",
    contact: Contact | None = None,
    company: Company | None = None,
    product=None,
    assignee: User | None = None,
    team: Team | None = None,
    round_robin: bool = False,
) -> Incident:
    if company is None and contact is not None:
        company = contact.company
    incident = Incident(
        subject=subject.strip(),
        subject_key=fold(subject),
        kind=kind,
        description=(description or "").strip() or None,
        priority=priority,
        status=status,
        channel=channel,
        contact=contact,
        company=company,
        product=product,
        assignee=assignee,
        team=team,
        created_by=actor,
        created_at=now(),
    )
    db.session.add(incident)
    db.session.flush()
    sla.start_clock(incident)
    if round_robin:
        assignment.assign_round_robin(incident, team)
    if contact is not None or company is not None:
        record_activity(
            actor,
            "system",
            contact=contact,
            company=company,
            incident_id=incident.id,
            data={
                "event": "incident_created",
                "ref": incident.reference,
                "subject": incident.subject,
            },
        )
    return incident


def _opened_by_agent(incident: Incident) -> None:
    """The first thing an agent does to a new incident opens it."""
    if incident.status == "new":
        change_status(incident, "open")


def change_status(incident: Incident, status: str) -> bool:
    """Move to `status`, keeping resolved_at/closed_at and the clock in step."""
    if status not in INCIDENT_STATUSES:
        raise IncidentRefused(_l("Unknown status."))
    old = incident.status
    if status == old:
        return False
    at = now()
    incident.status = status
    if status == "resolved":
        incident.resolved_at = at
    elif status == "closed":
        incident.closed_at = at
        incident.resolved_at = incident.resolved_at or at
    else:  # reopened, or back to work
        incident.resolved_at = None
        incident.closed_at = None
    sla.status_changed(incident, old, at=at)
    return True


def change_priority(incident: Incident, priority: str) -> bool:
    if priority not in PRIORITIES:
        raise IncidentRefused(_l("Unknown priority."))
    if priority == incident.priority:
        return False
    incident.priority = priority
    sla.priority_changed(incident)
    return True


def change_kind(incident: Incident, kind: str) -> bool:
    if kind not in INCIDENT_KINDS:
        raise IncidentRefused(_l("Unknown kind."))
    changed = kind != incident.kind
    incident.kind = kind
    return changed


def assign(incident: Incident, assignee: User | None) -> bool:
    """Give the incident to someone by hand (no automatic reason then)."""
    if assignee is incident.assignee:
        return False
    incident.assignee = assignee
    incident.assignment_reason = None
    if assignee is not None:
        _opened_by_agent(incident)
    return True


def assign_round_robin(incident: Incident) -> User | None:
    chosen = assignment.assign_round_robin(incident, incident.team)
    if chosen is not None:
        _opened_by_agent(incident)
    return chosen


def add_message(actor: User, incident: Incident, kind: str, body: str) -> IncidentMessage:
    """A reply to the customer (queued as an email to the incident's contact, in the
    incident's thread: crm/services/incident_mail.py) or an internal note. A note goes on
    the customer's timeline; a reply gets there as the email it is, or, when the contact
    has no address, as a reply marked not sent."""
    from crm.services import incident_mail

    if kind not in ("reply", "note"):
        raise IncidentRefused(_l("Unknown message kind."))
    body = body.strip()
    first_reply = kind == "reply" and not any(m.kind == "reply" for m in incident.messages)
    message = IncidentMessage(kind=kind, body=body, author=actor, created_at=now())
    # The lookups below (calendar, thread, mailbox) need nothing written first: without
    # autoflush, the incident is updated once (status and first response together), and a
    # new thread is written with its last message's time.
    with db.session.no_autoflush:
        _opened_by_agent(incident)
        if first_reply:
            sla.first_response(incident, at=message.created_at)
        # The mail goes first: the message then joins the incident, written once, with it.
        emailed = kind == "reply" and incident_mail.send_reply(actor, incident, message) is not None
    message.incident = incident
    db.session.add(message)
    if emailed:
        return message
    if incident.contact is not None or incident.company is not None:
        record_activity(
            actor,
            "email" if kind == "reply" else "note",
            contact=incident.contact,
            company=incident.company,
            # "Re:" as every mail client writes it, whatever the language.
            subject=f"Re: {incident.subject}" if kind == "reply" else None,
            body=body,
            occurred_at=message.created_at,
            incident_id=incident.id,
        )
    return message


# ---- complaint -> commercial action ----------------------------------------


@dataclass
class FollowUps:
    tasks: list[Task]
    deals: list[Deal]
    # The deals the viewer may open (the others are named, not linked).
    openable_deal_ids: frozenset[int] = frozenset()


def visible_interventions_of(incident: Incident, user: User) -> list[Intervention]:
    """The incident's interventions that `user` may open (a technician: their own), in one query."""
    if not has_permission(user, "interventions.view"):
        return []
    query = (
        visible_interventions(user)
        .where(Intervention.incident_id == incident.id)
        .order_by(Intervention.starts_at.is_(None), Intervention.starts_at, Intervention.id)
    )
    return list(db.session.scalars(query))


def follow_ups(incident: Incident, viewer: User | None = None) -> FollowUps:
    """The tasks and deals made from this incident, two queries whatever their number (deals
    shown without amount to those who may not see it: the template decides)."""
    tasks = db.session.scalars(
        select(Task)
        .where(Task.incident_id == incident.id)
        .options(joinedload(Task.assignee))
        .order_by(Task.id)
    )
    # Whether the viewer may open each deal comes with it, rather than a query per deal.
    openable = (
        Deal.id.in_(visible_deals(viewer).with_only_columns(Deal.id).correlate(None))
        if viewer is not None
        else literal(False)
    )
    rows = db.session.execute(
        select(Deal, openable)
        .where(Deal.incident_id == incident.id)
        .options(joinedload(Deal.stage), joinedload(Deal.owner))
        .order_by(Deal.id)
    ).all()
    return FollowUps(
        list(tasks),
        [deal for deal, _ in rows],
        frozenset(deal.id for deal, may_open in rows if may_open),
    )


def _require_complaint_owner(incident: Incident) -> User:
    if incident.kind != "complaint":
        raise IncidentRefused(_l("Only a complaint has a commercial follow-up."))
    owner = account_owner(incident)
    if owner is None:
        raise IncidentRefused(_l("This customer has no sales owner to follow up."))
    return owner


def _language_of(user: User):
    """Text stored for someone else (a task title, a notification) is in their language."""
    return writing_for(user)


def _customer_name(incident: Incident) -> str:
    if incident.contact is not None:
        return incident.contact.name
    if incident.company is not None:
        return incident.company.name
    return incident.subject


def complaint_task(actor: User, incident: Incident) -> Task:
    """A follow-up task for the account's sales owner, due next working day at 09:00 in
    their zone; they are notified. A second click gives back the open one."""
    owner = _require_complaint_owner(incident)
    existing = db.session.scalars(
        select(Task).where(Task.incident_id == incident.id, Task.status == "open")
    ).first()
    if existing is not None:
        return existing
    zone = user_zone(owner)
    day = add_working_days(now().astimezone(zone).date(), 1)
    customer = _customer_name(incident)
    with _language_of(owner):
        title = _("Complaint follow-up: %(customer)s", customer=customer)
        notice = _("Complaint to follow up: %(customer)s", customer=customer)
    task = create_task(
        actor,
        title,
        due_at=from_local_naive(datetime.combine(day, time(9, 0)), zone),
        assignee=owner,
        notes=f"{incident.reference} {incident.subject}",
        contact=incident.contact,
        company=incident.company,
    )
    task.incident_id = incident.id
    from crm.services.notifications import notify

    notify(
        owner,
        notice,
        kind="complaint",
        body=f"{incident.reference} {incident.subject}",
        url=incident_path(incident),
    )
    _record_follow_up(actor, incident, "complaint_task", owner)
    return task


def complaint_deal(actor: User, incident: Incident) -> Deal:
    """A deal in the default pipeline's first stage for the account's sales owner."""
    from crm.services.deals import create_deal, default_pipeline

    owner = _require_complaint_owner(incident)
    existing = db.session.scalars(select(Deal).where(Deal.incident_id == incident.id)).first()
    if existing is not None:
        return existing
    pipeline = default_pipeline()
    if pipeline is None or not pipeline.stages:
        raise IncidentRefused(_l("There is no pipeline to put the deal in."))
    with _language_of(owner):
        title = _("After complaint: %(subject)s", subject=incident.subject)
    deal = create_deal(
        actor,
        title=title,
        pipeline=pipeline,
        contact=incident.contact,
        company=incident.company,
        owner=owner,
        source="complaint",
    )
    deal.incident_id = incident.id
    _record_follow_up(actor, incident, "complaint_deal", owner)
    return deal


def _record_follow_up(actor: User, incident: Incident, event: str, owner: User) -> None:
    record_activity(
        actor,
        "system",
        contact=incident.contact,
        company=incident.company,
        incident_id=incident.id,
        data={"event": event, "ref": incident.reference, "owner": owner.name},
    )
