"""Lead routing: which owner a new lead goes to, and why.

Owned by the leads work; email (sales mailbox) and imports call route_lead().

The first active RoutingRule (by position, then id) whose conditions all hold wins. Its
conditions (all optional; an empty rule takes every lead):
  countries: ISO codes ("FR"); the contact's country is typed freely ("France", "fr",
      "Allemagne"), so it is read through the English and French names of countries.
  regions: French regions by code (REGIONS: "ARA", "IDF", ...), from the custom field
      "region" when the contact has one, else from a French postcode's department.
  postcode_prefixes: "69", "38"...   min_employees / max_employees: the company's size.
  min_score: the lead's score (scored before it is routed).
Where the contact has no country or postcode, its company's is used.

A rule names an owner, or a team whose members take turns. An owner who is inactive or
away makes the rule fall to its team when it has one, else the rule is passed over.

Round-robin: among the team's active members with role sales or manager who are not away
(User.away_until today or later), the one given a lead longest ago
(User.last_lead_assigned_at; never first, then the lowest id) gets it, and their clock
moves to now, strictly after everyone else's: over time each gets the same share. Every
lead given counts as a turn, including those a rule gives a named owner.

No rule matches -> the default team's round-robin: the team named (or numbered) by the
LEADS_DEFAULT_TEAM setting, else the first team (lowest id) with an active sales member,
else all active sales reps and managers.

Concurrency: on PostgreSQL the candidates' rows are locked (SELECT ... FOR UPDATE, in id
order) until the transaction commits, so a second routing waits and then sees the first
one's turn; SQLite serialises writers, and a write here takes its lock before reading.
"""

import contextlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache

from flask import current_app, has_request_context, url_for
from flask_babel import force_locale, format_date
from flask_babel import gettext as _
from sqlalchemy import exists, func, select, update
from sqlalchemy.orm import joinedload

from crm.extensions import db
from crm.i18n import office_language, writing_for
from crm.models import Contact, RoutingRule, Team, User
from crm.models.search_keys import fold
from crm.services.reminders import user_zone

ROUND_ROBIN_ROLES = ("sales", "manager")
REASON_LENGTH = 300
# A lead routed after this hour (the owner's clock) or on a weekend is called the next
# working day.
LAST_CALL_HOUR = 16

# French regions (ISO 3166-2:FR) and the departments (postcode's first two or three
# digits) in each.
REGIONS = {
    "ARA": ("Auvergne-Rhône-Alpes", "01 03 07 15 26 38 42 43 63 69 73 74"),
    "BFC": ("Bourgogne-Franche-Comté", "21 25 39 58 70 71 89 90"),
    "BRE": ("Bretagne", "22 29 35 56"),
    "CVL": ("Centre-Val de Loire", "18 28 36 37 41 45"),
    "COR": ("Corse", "20"),
    "GES": ("Grand Est", "08 10 51 52 54 55 57 67 68 88"),
    "HDF": ("Hauts-de-France", "02 59 60 62 80"),
    "IDF": ("Île-de-France", "75 77 78 91 92 93 94 95"),
    "NOR": ("Normandie", "14 27 50 61 76"),
    "NAQ": ("Nouvelle-Aquitaine", "16 17 19 23 24 33 40 47 64 79 86 87"),
    "OCC": ("Occitanie", "09 11 12 30 31 32 34 46 48 65 66 81 82"),
    "PDL": ("Pays de la Loire", "44 49 53 72 85"),
    "PAC": ("Provence-Alpes-Côte d'Azur", "04 05 06 13 83 84"),
    "GUA": ("Guadeloupe", "971"),
    "MTQ": ("Martinique", "972"),
    "GUF": ("Guyane", "973"),
    "LRE": ("La Réunion", "974"),
    "MAY": ("Mayotte", "976"),
}
_DEPARTMENT_REGION = {dep: code for code, (_name, deps) in REGIONS.items() for dep in deps.split()}


@dataclass
class RoutingDecision:
    owner: User | None
    rule: RoutingRule | None
    reason: str  # shown to the user (in the language of the request or of the owner)
    team: Team | None = None
    round_robin: bool = False
    skipped: list[str] = field(default_factory=list)


@dataclass
class LeadFacts:
    """What the rules look at, from a contact or typed in the dry run."""

    country: str | None = None  # ISO code
    postcode: str = ""
    region: str | None = None  # REGIONS code
    employees: int | None = None
    score: int = 0


# ---- facts --------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _country_codes() -> dict[str, str]:
    from babel import Locale

    names = {}
    for language in ("en", "fr"):
        for code, name in Locale(language).territories.items():
            if len(code) == 2 and code.isalpha():
                names[fold(name)] = code
    return names


def country_code(text: str | None) -> str | None:
    """ "France", "france", "FR", "Allemagne" -> "FR", "DE"; None when unknown or empty."""
    if not text or not text.strip():
        return None
    value = text.strip()
    if len(value) == 2 and value.isalpha():
        return value.upper()
    return _country_codes().get(fold(value))


def region_of(country: str | None, postcode: str | None) -> str | None:
    postcode = (postcode or "").replace(" ", "")
    if country not in (None, "FR") or len(postcode) < 2 or not postcode[:2].isdigit():
        return None
    if postcode.startswith("97"):
        return _DEPARTMENT_REGION.get(postcode[:3])
    return _DEPARTMENT_REGION.get(postcode[:2])


def facts_of(contact: Contact) -> LeadFacts:
    company = contact.company
    country = country_code(contact.country) or (company and country_code(company.country))
    postcode = (contact.postcode or (company.postcode if company else "") or "").strip()
    region = (contact.custom_fields or {}).get("region")
    region = str(region).upper() if region else region_of(country, postcode)
    return LeadFacts(
        country=country or None,
        postcode=postcode,
        region=region,
        employees=company.employees if company else None,
        score=contact.score or 0,
    )


def sample_facts(country: str, postcode: str, employees: int | None, score: int) -> LeadFacts:
    """The dry run's typed lead."""
    code = country_code(country)
    postcode = (postcode or "").strip()
    return LeadFacts(code, postcode, region_of(code, postcode), employees, score or 0)


# ---- rules --------------------------------------------------------------------------------


def active_rules() -> list[RoutingRule]:
    return list(
        db.session.scalars(
            select(RoutingRule)
            .where(RoutingRule.active.is_(True))
            .options(joinedload(RoutingRule.owner), joinedload(RoutingRule.team))
            .order_by(RoutingRule.position, RoutingRule.id)
        )
    )


def matches(conditions: dict | None, facts: LeadFacts) -> bool:
    c = conditions or {}
    countries = [code.upper() for code in c.get("countries") or []]
    if countries and facts.country not in countries:
        return False
    regions = [code.upper() for code in c.get("regions") or []]
    if regions and facts.region not in regions:
        return False
    prefixes = [p.replace(" ", "") for p in c.get("postcode_prefixes") or [] if p]
    postcode = facts.postcode.replace(" ", "")
    if prefixes and not any(postcode.startswith(p) for p in prefixes):
        return False
    if c.get("min_employees") is not None and (facts.employees or 0) < c["min_employees"]:
        return False
    if c.get("max_employees") is not None and (
        facts.employees is None or facts.employees > c["max_employees"]
    ):
        return False
    return not (c.get("min_score") is not None and facts.score < c["min_score"])


def describe(conditions: dict | None) -> str:
    """The conditions in a few words, for the rule list and the reasons."""
    c = conditions or {}
    parts = []
    if c.get("countries"):
        parts.append(_("country %(list)s", list=", ".join(c["countries"])))
    if c.get("regions"):
        names = [REGIONS.get(code, (code,))[0] for code in c["regions"]]
        parts.append(_("region %(list)s", list=", ".join(names)))
    if c.get("postcode_prefixes"):
        parts.append(_("postcode %(list)s…", list="…, ".join(c["postcode_prefixes"])))
    if c.get("min_employees") is not None and c.get("max_employees") is not None:
        parts.append(
            _("%(min)d to %(max)d employees", min=c["min_employees"], max=c["max_employees"])
        )
    elif c.get("min_employees") is not None:
        parts.append(_("at least %(min)d employees", min=c["min_employees"]))
    elif c.get("max_employees") is not None:
        parts.append(_("at most %(max)d employees", max=c["max_employees"]))
    if c.get("min_score") is not None:
        parts.append(_("score %(min)d or more", min=c["min_score"]))
    return "; ".join(parts) if parts else _("every lead")


# ---- round-robin ----------------------------------------------------------------------------


def _today() -> date:
    from crm.i18n import DEFAULT_TIMEZONE

    zone = current_app.config.get("LEADS_TIMEZONE") or DEFAULT_TIMEZONE
    from zoneinfo import ZoneInfo

    return datetime.now(UTC).astimezone(ZoneInfo(zone)).date()


def _members(team: Team | None, lock: bool) -> list[User]:
    """The team's active sales reps and managers (everyone's when `team` is None), in id order."""
    query = (
        select(User)
        .where(User.active.is_(True), User.role.in_(ROUND_ROBIN_ROLES))
        .order_by(User.id)
    )
    if team is not None:
        query = query.where(User.team_id == team.id)
    if lock:
        if db.session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(of=User)
        else:
            # SQLite: take the write lock before reading, so no other routing reads between
            # our reading the turns and our writing one.
            db.session.execute(
                update(User)
                .where(User.id == -1)
                .values(last_lead_assigned_at=None)
                .execution_options(synchronize_session=False)
            )
        query = query.execution_options(populate_existing=True)
    return list(db.session.scalars(query))


def _away(user: User, today: date) -> bool:
    return user.away_until is not None and user.away_until >= today


def _next_in_turn(available: list[User]) -> User | None:
    never = datetime.min.replace(tzinfo=UTC)
    if not available:
        return None
    return min(
        available,
        key=lambda u: (u.last_lead_assigned_at is not None, u.last_lead_assigned_at or never, u.id),
    )


def default_team() -> Team | None:
    """LEADS_DEFAULT_TEAM (a name or an id), else the first team with an active sales rep."""
    setting = current_app.config.get("LEADS_DEFAULT_TEAM")
    if setting:
        text = str(setting).strip()
        query = select(Team).where(Team.id == int(text)) if text.isdigit() else None
        team = db.session.scalars(query).first() if query is not None else None
        team = team or db.session.scalars(select(Team).where(Team.name == text)).first()
        if team is not None:
            return team
    has_sales = exists().where(User.team_id == Team.id, User.role == "sales", User.active.is_(True))
    return db.session.scalars(select(Team).where(has_sales).order_by(Team.id).limit(1)).first()


def _round_robin(
    decision: RoutingDecision, team: Team | None, lock: bool, today: date
) -> RoutingDecision:
    members = _members(team, lock)
    available = [m for m in members if not _away(m, today)]
    for member in members:
        if _away(member, today):
            decision.skipped.append(
                _(
                    "%(name)s away until %(day)s",
                    name=member.name,
                    day=format_date(member.away_until, "d MMM"),
                )
            )
    decision.owner = _next_in_turn(available)
    decision.team = team
    decision.round_robin = True
    return decision


# ---- deciding -----------------------------------------------------------------------------


def _decide(facts: LeadFacts, lock: bool) -> RoutingDecision:
    today = _today()
    decision = RoutingDecision(None, None, "")
    for rule in active_rules():
        if not matches(rule.conditions, facts):
            continue
        owner = rule.owner
        if owner is not None and owner.active and not _away(owner, today):
            decision.owner, decision.rule = owner, rule
            if lock:
                _members_lock(owner)
            break
        if owner is not None:
            decision.skipped.append(
                _("%(rule)s: %(name)s is not available", rule=rule.name, name=owner.name)
            )
        if rule.team is not None:
            decision.rule = rule
            _round_robin(decision, rule.team, lock, today)
            break
    else:
        _round_robin(decision, default_team(), lock, today)
    decision.reason = _reason(decision)
    return decision


def _members_lock(owner: User) -> None:
    """A named owner's turn is written too: lock their row as the round-robin does."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(select(User.id).where(User.id == owner.id).with_for_update())


def _reason(decision: RoutingDecision) -> str:
    rule, owner = decision.rule, decision.owner
    team_name = decision.team.name if decision.team is not None else _("all sales reps")
    if rule is not None and not decision.round_robin:
        text = _(
            "Rule “%(rule)s” (%(conditions)s): %(owner)s.",
            rule=rule.name,
            conditions=describe(rule.conditions),
            owner=owner.name,
        )
    elif owner is None:
        text = _("Nobody available in %(team)s: the lead has no owner yet.", team=team_name)
    elif rule is not None:
        text = _(
            "Rule “%(rule)s” (%(conditions)s): round-robin in %(team)s, %(owner)s's turn.",
            rule=rule.name,
            conditions=describe(rule.conditions),
            team=team_name,
            owner=owner.name,
        )
    else:
        text = _(
            "No rule matched: round-robin in %(team)s, %(owner)s's turn.",
            team=team_name,
            owner=owner.name,
        )
    if decision.skipped:
        text += " " + _("Skipped: %(list)s.", list="; ".join(decision.skipped))
    return text if len(text) <= REASON_LENGTH else text[: REASON_LENGTH - 1] + "…"


def _request_language():
    """The request's language; outside a request (a job, the CLI) the default one."""
    if has_request_context():
        return contextlib.nullcontext()
    return force_locale(office_language())


def _owner_language(owner: User):
    return writing_for(owner)


def decide(contact: Contact) -> RoutingDecision:
    """Where `contact` would go, and why, without changing anything (the dry run)."""
    with _request_language():
        return _decide(facts_of(contact), lock=False)


def decide_sample(facts: LeadFacts) -> RoutingDecision:
    """The dry run of the admin page: a typed sample lead; nothing changes."""
    with _request_language():
        return _decide(facts, lock=False)


def route_lead(contact: Contact, actor: User | None = None) -> RoutingDecision:
    """Give the lead its owner (rules, else round-robin), record the reason on the contact,
    give the owner a task and a notification. The caller commits."""
    from crm.services.contacts import set_owner

    with _request_language():
        decision = _decide(facts_of(contact), lock=True)
    owner = decision.owner
    if owner is not None:
        # The reason is read by the owner: written in their language.
        with _owner_language(owner):
            decision.reason = _reason(decision)
            _take_turn(owner)
            set_owner(actor, contact, owner)
            contact.routing_reason = decision.reason
            db.session.flush()
            _hand_over(contact, owner, actor)
    else:
        contact.routing_reason = decision.reason
    return decision


def _take_turn(owner: User) -> None:
    """Move the owner's turn to now, strictly after every other turn (even within one
    clock tick). A bulk UPDATE: bookkeeping, not an edit for the audit log."""
    latest = db.session.scalar(select(func.max(User.last_lead_assigned_at)))
    moment = datetime.now(UTC)
    if latest is not None and moment <= latest:
        moment = latest + timedelta(microseconds=1)
    db.session.execute(update(User).where(User.id == owner.id).values(last_lead_assigned_at=moment))


def call_due_day(owner: User, at: datetime | None = None) -> date:
    """Today on the owner's clock when it is a working day before LAST_CALL_HOUR, else the
    next working day."""
    local = (at or datetime.now(UTC)).astimezone(user_zone(owner))
    day = local.date()
    if day.weekday() < 5 and local.time() < time(LAST_CALL_HOUR):
        return day
    day += timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def _contact_path(contact: Contact) -> str:
    if has_request_context():
        return url_for("contacts.detail", contact_id=contact.id)
    with current_app.test_request_context("/", base_url=current_app.config["BASE_URL"]):
        return url_for("contacts.detail", contact_id=contact.id)


def _hand_over(contact: Contact, owner: User, actor: User | None) -> None:
    from crm.services.notifications import notify
    from crm.services.tasks import create_task, due_from_local

    due_at, all_day = due_from_local(call_due_day(owner), None, user_zone(owner))
    create_task(
        actor,
        _("Call new lead %(name)s", name=contact.name),
        due_at=due_at,
        all_day=all_day,
        assignee=owner,
        contact=contact,
    )
    notify(
        owner,
        _("New lead for you: %(name)s", name=contact.name),
        kind="lead",
        body=contact.routing_reason,
        url=_contact_path(contact),
    )
