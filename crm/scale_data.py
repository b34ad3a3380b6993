"""A database at scale for `make bench`: `flask seed-scale`.

100,000 contacts, 10,000 companies, 20,000 deals and 200,000 activities by
default, the same names as the demo, spread over 50 users in teams. Rows are
written in batches of 5,000, never one ORM object at a time: PostgreSQL's COPY
(through each column's own type, as an INSERT would bind it), a SQLAlchemy Core
INSERT per batch on other databases. On PostgreSQL the big tables' secondary
indexes and foreign keys are dropped for the load and built again after it, as
pg_restore does, then VACUUM ANALYZE gives the planner the sizes.

Derived columns are what the app itself would store: a contact's keys are those
of `Contact.refresh_keys` (computed here with the folding cached, and compared
with refresh_keys itself every thousandth contact); companies, deals and
products get their folded keys; a deal's stage, stage_entered_at and closed_at
agree with its last stage-history row, its amount with its lines; a contact's
last_activity_at is its latest non-system activity (or its creation).

Ids are given here rather than by the database, so that rows can point at each
other without reading anything back; this is why the database must be empty.
The id sequences are moved past them at the end.
"""

import json
import random
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from sqlalchemy import JSON, func, select, text

from crm.demo_data import (
    CALL_NOTES,
    CALL_TOPICS,
    CITIES,
    COMPANY_NAMES,
    COMPANY_WORDS,
    DEAL_WORDS,
    DEMO_PASSWORD,
    FIRST_NAMES,
    INDUSTRIES,
    LAST_NAMES,
    LOST_REASONS,
    MEETING_TOPICS,
    NOTES,
    PRODUCTS,
    TAGS,
    TASK_TOPICS,
    TITLES,
    VISIT_TOPICS,
)
from crm.extensions import db
from crm.models import (
    Activity,
    CalendarFeed,
    Company,
    Contact,
    Deal,
    DealLine,
    DealStageHistory,
    Event,
    EventAttendee,
    Incident,
    IncidentMessage,
    Intervention,
    Product,
    Quota,
    Tag,
    Task,
    Team,
    TechnicianBooking,
    User,
    contact_tag,
)
from crm.models.search_keys import email_key, fold, phone_key
from crm.models.support import BOOKED_STATUSES, INCIDENT_KINDS, PRIORITIES
from crm.models.types import utcnow
from crm.services.deals import create_default_pipelines
from crm.services.passwords import hash_password

BATCH = 5_000
# Their secondary indexes are dropped during the load and built again after it (PostgreSQL).
BULK_TABLES = (
    "company",
    "contact",
    "contact_tag",
    "deal",
    "deal_line",
    "deal_stage_history",
    "activity",
    "event",
    "event_attendee",
    "task",
    "incident",
    "incident_message",
    "intervention",
    "technician_booking",
)
SALES_TEAMS = ("Sales North", "Sales South", "Sales East", "Sales West")
TECHNICIAN_SKILLS = ["Boilers", "Heat pumps", "Electricity", "Plumbing", "Air conditioning"]
INCIDENT_SUBJECTS = {
    "information": (
        "Price of the maintenance contract",
        "Opening hours during the holidays",
        "Copy of the last invoice",
        "How to change the filter",
        "Delivery date of the order",
        "Warranty of the new model",
        "Manual in French",
    ),
    "technical": (
        "Machine stops after ten minutes",
        "Error E42 on the display",
        "Leak under the unit",
        "Cannot log in to the customer portal",
        "No heating since this morning",
        "Noise when the pump starts",
        "Sensor reads the wrong temperature",
        "Update failed halfway",
        "Screen stays black",
        "Water pressure too low",
        "Breaker trips when the unit starts",
        "Remote control does not answer",
    ),
    "complaint": (
        "Delivery two weeks late",
        "Invoice charged twice",
        "Technician did not come",
        "Damaged parcel",
        "Repair did not last",
        "Nobody called back",
    ),
}
INCIDENT_DESCRIPTIONS = (
    "The customer called twice about it.",
    "Happens every morning since the last visit.",
    "Photos sent by email.",
    "Urgent for them: the shop opens on Monday.",
    "Second time this year.",
)
SUPPORT_MESSAGES = {
    "inbound": (
        "Any news about this?",
        "It happened again this morning.",
        "Here are the photos you asked for.",
        "Thank you, it works again.",
    ),
    "reply": (
        "Thank you for your message: we are looking into it.",
        "Could you send us a photo of the display?",
        "A technician will call you to book a visit.",
        "The part is ordered; it arrives on Thursday.",
        "The new invoice is attached.",
    ),
    "note": (
        "Checked with logistics.",
        "Same fault as last month: see the previous incident.",
        "Waiting for the supplier's answer.",
        "Customer prefers calls in the afternoon.",
    ),
}
VISIT_TITLES = ("Repair", "Yearly maintenance", "Installation", "Diagnosis", "Commissioning")
WORK_DONE = (
    "Seal replaced, tested for an hour.",
    "Filter cleaned, pressure set again.",
    "Board replaced; the error is gone.",
    "Yearly maintenance done, nothing to report.",
    "Installed and commissioned; the customer was shown how to use it.",
)
EMAIL_DOMAIN = "scale.example"
# What the benchmark signs in as; every user has the password given to seed_scale().
REP_EMAIL = f"rep1@{EMAIL_DOMAIN}"
MANAGER_EMAIL = f"manager1@{EMAIL_DOMAIN}"
SUPPORT_EMAIL = f"support1@{EMAIL_DOMAIN}"
ADMIN_EMAIL = f"admin@{EMAIL_DOMAIN}"


class DatabaseNotEmpty(RuntimeError):
    """seed-scale numbers its own rows: it fills an empty database only."""


@dataclass
class ScaleSizes:
    contacts: int = 100_000
    companies: int = 10_000
    deals: int = 20_000
    # Every row of the timeline: the deals' own events first, calls, notes and mails for the rest.
    activities: int = 200_000
    users: int = 50
    # Contacts with hundreds of activities, for the contact page with a long timeline.
    long_timelines: int = 10
    long_timeline_length: int = 500
    # Events and tasks together (three events for two tasks), over six months back and ahead.
    agenda: int = 50_000
    # Support: incidents over the last year (about two messages each), and on-site
    # interventions of the technicians over six months back and ahead.
    incidents: int = 20_000
    interventions: int = 5_000


@dataclass
class SeedReport:
    counts: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds.values())


def seed_scale(
    sizes: ScaleSizes | None = None,
    *,
    seed: int = 7,
    password: str = DEMO_PASSWORD,
    progress: Callable[[str], None] = lambda message: None,
) -> SeedReport:
    sizes = sizes or ScaleSizes()
    if db.session.scalar(select(func.count(User.id))):
        raise DatabaseNotEmpty("the database already has users: seed-scale needs an empty one")
    seeder = _Seeder(sizes, random.Random(seed), progress)
    seeder.step("users", lambda: seeder.users(hash_password(password)))
    seeder.step("catalogue", seeder.catalogue)
    deferred = seeder.drop_indexes_and_foreign_keys() if seeder.postgres else []
    try:
        seeder.step("companies", seeder.companies)
        seeder.step("contacts", seeder.contacts)
        seeder.step("deals", seeder.deals)
        seeder.step("activities", seeder.activities)
        seeder.step("quotas", seeder.quotas)
        seeder.step("agenda", seeder.agenda)
        seeder.step("incidents", seeder.incidents)
        seeder.step("interventions", seeder.interventions)
    finally:
        db.session.rollback()  # nothing pending after a success; a failed batch otherwise
        seeder.step("indexes", lambda: seeder.restore(deferred))
    seeder.step("analyze", seeder.finish)
    return seeder.report


class _Seeder:
    def __init__(self, sizes: ScaleSizes, rng: random.Random, progress):
        self.sizes = sizes
        self.rng = rng
        self.progress = progress
        self.report = SeedReport()
        self.now = utcnow().replace(microsecond=0)
        self.postgres = db.engine.dialect.name == "postgresql"
        # Support rows draw from a stream of their own: the rest stays as it was without them.
        self.support_rng = random.Random(hash(rng.getstate()))  # ints hash the same every run

    def step(self, name: str, work: Callable[[], None]) -> None:
        started = time.perf_counter()
        work()
        db.session.commit()
        self.report.seconds[name] = round(time.perf_counter() - started, 2)
        self.progress(f"  {name:<11} {self.report.seconds[name]:6.1f} s")

    def insert(self, model_or_table, rows: Iterable[dict]) -> int:
        """Write the rows in batches: COPY on PostgreSQL, a Core INSERT per batch elsewhere."""
        table = getattr(model_or_table, "__table__", model_or_table)
        count = 0
        for batch in _batches(rows, BATCH):
            if self.postgres:
                _copy(table, batch)
            else:
                db.session.execute(table.insert(), batch)
            count += len(batch)
        self.report.counts[table.name] = self.report.counts.get(table.name, 0) + count
        return count

    # ---- users and teams -------------------------------------------------

    def users(self, password_hash: str) -> None:
        teams = list(SALES_TEAMS) + ["Support", "Field"]
        self.insert(Team, [{"id": i + 1, "name": name} for i, name in enumerate(teams)])
        team_id = {name: i + 1 for i, name in enumerate(teams)}
        roles = _roles(self.sizes.users)
        names = self._unique_people(len(roles))
        counters: dict[str, int] = {}
        rows = []
        for index, role in enumerate(roles):
            counters[role] = counters.get(role, 0) + 1
            n = counters[role]
            prefix = {"sales": "rep", "technician": "tech"}.get(role, role)
            email = ADMIN_EMAIL if role == "admin" else f"{prefix}{n}@{EMAIL_DOMAIN}"
            team = None
            if role in ("manager", "sales"):
                team = SALES_TEAMS[(n - 1) % len(SALES_TEAMS)]
            elif role == "support":
                team = "Support"
            elif role == "technician":
                team = "Field"
            rows.append(
                {
                    "id": index + 1,
                    "email": email,
                    "name": names[index],
                    "password_hash": password_hash,
                    "role": role,
                    "team_id": team_id[team] if team else None,
                    "active": True,
                    "security_stamp": f"scale-{index + 1}-{self.rng.getrandbits(128):032x}",
                    "created_at": self.now - timedelta(days=800),
                    "skills": (
                        self.support_rng.sample(TECHNICIAN_SKILLS, 2 + index % 2)
                        if role == "technician"
                        else None
                    ),
                }
            )
        self.insert(User, rows)
        self.user_rows = rows
        self.reps = [r["id"] for r in rows if r["role"] == "sales"]
        self.owners = [r["id"] for r in rows if r["role"] in ("sales", "manager")]
        self.office = [r["id"] for r in rows if r["role"] in ("sales", "manager", "support")]
        self.teams_of_reps = {r["team_id"] for r in rows if r["role"] == "sales"}
        self.agents = [r["id"] for r in rows if r["role"] == "support"]
        self.technicians = [r["id"] for r in rows if r["role"] == "technician"]
        self.skills_of = {r["id"]: r["skills"] for r in rows if r["skills"]}
        self.support_team = team_id["Support"]

    def _unique_people(self, count: int) -> list[str]:
        pairs = [f"{first} {last}" for first in FIRST_NAMES for last in LAST_NAMES]
        self.rng.shuffle(pairs)
        return [
            pairs[i % len(pairs)] + (f" {i // len(pairs) + 1}" if i >= len(pairs) else "")
            for i in range(count)
        ]

    # ---- tags, products, pipelines ----------------------------------------

    def catalogue(self) -> None:
        self.insert(Tag, [{"id": i + 1, "name": name} for i, name in enumerate(TAGS)])
        self.products = []
        for i, (code, name, price, cost) in enumerate(PRODUCTS):
            self.products.append(
                {
                    "id": i + 1,
                    "code": code,
                    "name": name,
                    "name_key": fold(name),
                    "unit_price": Decimal(price),
                    "unit_cost": Decimal(cost),
                    "active": True,
                }
            )
        self.insert(Product, self.products)
        # The two default pipelines, made as the app makes them: a dozen ORM rows.
        self.pipelines = create_default_pipelines()
        db.session.flush()

    # ---- companies ---------------------------------------------------------

    def companies(self) -> None:
        rng, count = self.rng, self.sizes.companies
        seen: set[str] = set()
        self.company_names: list[str] = []
        self.company_places: list[tuple[str, str]] = []
        rows = []
        for index in range(count):
            city, postcode = rng.choice(CITIES)
            base = f"{rng.choice(COMPANY_WORDS)} {rng.choice(COMPANY_NAMES)}"
            name = base if base not in seen else f"{base} {city}"
            suffix = 2
            while name in seen:
                name = f"{base} {city} {suffix}"
                suffix += 1
            seen.add(name)
            created = self.now - timedelta(days=rng.randint(60, 900))
            slug = "".join(ch for ch in fold(name) if ch.isalnum())[:24]
            rows.append(
                {
                    "id": index + 1,
                    "name": name,
                    "name_key": fold(name),
                    "stage": rng.choice(("lead", "prospect", "customer", "customer", "former")),
                    "industry": rng.choice(INDUSTRIES),
                    "employees": rng.choice((3, 8, 15, 40, 120, 250, 800)),
                    "website": f"https://{slug}.example",
                    "email": f"contact@{slug}.example",
                    "phone": _phone(rng, index, "4"),
                    "city": city,
                    "postcode": postcode,
                    "country": "France",
                    "owner_id": rng.choice(self.owners),
                    "created_at": created,
                    "updated_at": created,
                }
            )
            self.company_names.append(name)
            self.company_places.append((city, postcode))
        self.insert(Company, rows)

    # ---- contacts ----------------------------------------------------------

    def contacts(self) -> None:
        """Who they are, which company, who owns them; then when they were last touched."""
        rng, sizes = self.rng, self.sizes
        n, companies = sizes.contacts, sizes.companies
        self.contact_company: list[int | None] = []
        self.contact_owner: list[int] = []
        self.contact_created: list[datetime] = []
        self.contact_names: list[str] = []
        for _ in range(n):
            # A few large customers and many small ones: the first companies get the most people.
            company = int(companies * rng.random() ** 1.5) + 1 if rng.random() < 0.85 else None
            self.contact_company.append(company if companies else None)
            self.contact_owner.append(rng.choice(self.owners))
            self.contact_created.append(
                self.now - timedelta(days=rng.randint(30, 700), seconds=rng.randint(0, 86_399))
            )
        self._plan_activities()
        self.insert(Contact, (self._contact_row(i) for i in range(n)))
        tagged = []
        for i in range(n):
            for tag_id in rng.sample(range(1, len(TAGS) + 1), rng.choice((0, 0, 0, 1, 1, 2))):
                tagged.append({"contact_id": i + 1, "tag_id": tag_id})
        self.insert(contact_tag, tagged)

    def _contact_row(self, index: int) -> dict:
        rng = self.rng
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        company_id = self.contact_company[index]
        company_name = self.company_names[company_id - 1] if company_id else None
        local = _email_part(f"{first}.{last}")
        domain = (
            _email_part(company_name).replace(".", "")[:14] + ".example"
            if company_name
            else rng.choice(("gmail.example", "orange.example", "free.example"))
        )
        keys = _contact_keys(
            first, last, f"{local}{index + 1}@{domain}", _phone(rng, index, "6"), company_name
        )
        if index % 1_000 == 0:
            _check_contact_keys(keys, company_name)
        city, postcode = self.company_places[company_id - 1] if company_id else rng.choice(CITIES)
        created = self.contact_created[index]
        self.contact_names.append(f"{first} {last}")
        return {
            "id": index + 1,
            "first_name": first,
            "last_name": last,
            "title": rng.choice(TITLES),
            "email": keys["email"],
            "phone": keys["phone"],
            "stage": rng.choice(("lead", "lead", "prospect", "customer", "former")),
            "source": rng.choice(("website", "trade fair", "referral", "cold call")),
            "score": rng.randint(0, 100),
            "company_id": company_id,
            "owner_id": self.contact_owner[index],
            "city": city,
            "postcode": postcode,
            "country": "France",
            "created_at": created,
            "updated_at": created,
            "last_activity_at": self.last_touch[index],
            "sort_name": keys["sort_name"],
            "email_key": keys["email_key"],
            "phone_key": keys["phone_key"],
            "search_text": keys["search_text"],
        }

    def _plan_activities(self) -> None:
        """Which contact each call or note goes to, and when: last_activity_at follows from it."""
        rng, sizes = self.rng, self.sizes
        n = sizes.contacts
        deal_events = self._planned_deal_events()
        budget = max(sizes.activities - deal_events, 0)
        long_ones = min(sizes.long_timelines, n, budget // max(sizes.long_timeline_length, 1))
        step = max(n // max(long_ones, 1), 1)
        self.long_timeline_contacts = [1 + i * step for i in range(long_ones)]
        planned: list[tuple[int, datetime]] = []
        for contact_id in self.long_timeline_contacts:
            planned += [
                (contact_id - 1, self._moment_after(self.contact_created[contact_id - 1]))
                for _ in range(sizes.long_timeline_length)
            ]
        while len(planned) < budget and n:
            index = rng.randrange(n)
            planned.append((index, self._moment_after(self.contact_created[index])))
        self.planned_activities = planned
        self.last_touch = list(self.contact_created)
        for index, when in planned:
            if when > self.last_touch[index]:
                self.last_touch[index] = when

    def _moment_after(self, start: datetime) -> datetime:
        span = (self.now - start).total_seconds()
        return start + timedelta(seconds=int(span * self.rng.random() ** 0.5))

    # ---- deals -------------------------------------------------------------

    def _planned_deal_events(self) -> int:
        """One event per deal created and per move; the paths are drawn now, used in deals()."""
        rng = self.rng
        self.deal_paths = []
        new_business = list(_DEFAULT_STAGE_KINDS["New business"])
        renewals = list(_DEFAULT_STAGE_KINDS["Renewals"])
        events = 0
        for index in range(self.sizes.deals):
            kinds = renewals if index % 5 == 4 else new_business
            # Most deals are still open; the others are won or lost.
            weights = [5 if kind == "open" else 3 for kind in kinds]
            target = rng.choices(range(len(kinds)), weights)[0]
            path = []
            for position, kind in enumerate(kinds):
                if position > target:
                    break
                if kind == "won" and kinds[target] == "lost":
                    continue
                path.append(position)
            self.deal_paths.append(path)
            events += len(path)
        return events

    def deals(self) -> None:
        rng = self.rng
        stage_ids = {p.name: [s.id for s in p.stages] for p in self.pipelines}
        stage_names = {p.name: [s.name for s in p.stages] for p in self.pipelines}
        stage_kinds = {p.name: [s.kind for s in p.stages] for p in self.pipelines}
        pipeline_ids = {p.name: p.id for p in self.pipelines}
        deals, lines, history = [], [], []
        self.deal_events: list[dict] = []
        line_id = history_id = 0
        for index, path in enumerate(self.deal_paths):
            pipeline = "Renewals" if index % 5 == 4 else "New business"
            deal_id = index + 1
            contact_index = rng.randrange(self.sizes.contacts) if self.sizes.contacts else None
            contact_id = contact_index + 1 if contact_index is not None else None
            company_id = self.contact_company[contact_index] if contact_index is not None else None
            about = (
                self.company_names[company_id - 1]
                if company_id
                else (self.contact_names[contact_index] if contact_index is not None else "")
            )
            title = f"{rng.choice(DEAL_WORDS)} {about}".strip()
            owner = rng.choice(self.reps) if rng.random() < 0.95 else rng.choice(self.owners)
            created = self.now - timedelta(days=rng.randint(3, 365), seconds=rng.randint(0, 86_399))
            moments = sorted(self._moment_after(created) for _ in path[1:])
            moments = [created] + moments
            amount = Decimal("0")
            for position in range(rng.randint(1, 3)):
                product = rng.choice(self.products)
                quantity = Decimal(rng.choice((1, 1, 2, 3, 5, 10)))
                discount = Decimal(rng.choice((0, 0, 0, 5, 10)))
                line_id += 1
                line = {
                    "id": line_id,
                    "deal_id": deal_id,
                    "product_id": product["id"],
                    "description": product["name"],
                    "quantity": quantity,
                    "unit_price": product["unit_price"],
                    "unit_cost": product["unit_cost"],
                    "discount_percent": discount,
                    "position": position,
                }
                lines.append(line)
                amount += _line_total(line)
            previous = None
            for step, (position, moment) in enumerate(zip(path, moments, strict=True)):
                history_id += 1
                stage_id = stage_ids[pipeline][position]
                history.append(
                    {
                        "id": history_id,
                        "deal_id": deal_id,
                        "from_stage_id": previous,
                        "to_stage_id": stage_id,
                        "changed_by_id": owner,
                        "changed_at": moment,
                    }
                )
                if step == 0:
                    data = {"event": "deal_created", "deal": title}
                else:
                    data = {
                        "event": "deal_stage",
                        "deal": title,
                        "from": stage_names[pipeline][path[step - 1]],
                        "to": stage_names[pipeline][position],
                    }
                self.deal_events.append(
                    {
                        "deal_id": deal_id,
                        "contact_id": contact_id,
                        "company_id": company_id,
                        "author_id": owner,
                        "occurred_at": moment,
                        "data": data,
                    }
                )
                previous = stage_id
            kind = stage_kinds[pipeline][path[-1]]
            lost_reason = rng.choice(LOST_REASONS) if kind == "lost" else None
            if lost_reason:
                self.deal_events[-1]["data"]["reason"] = lost_reason
            deals.append(
                {
                    "id": deal_id,
                    "title": title,
                    "title_key": fold(title),
                    "pipeline_id": pipeline_ids[pipeline],
                    "stage_id": previous,
                    "amount": amount,
                    "currency": "EUR",
                    "expected_close": (created + timedelta(days=rng.randint(20, 150))).date(),
                    "owner_id": owner,
                    "updated_by_id": owner,
                    "contact_id": contact_id,
                    "company_id": company_id,
                    "source": rng.choice(("website", "trade fair", "referral", "cold call")),
                    "lost_reason": lost_reason,
                    "stage_entered_at": moments[-1],
                    "closed_at": moments[-1] if kind != "open" else None,
                    "created_at": created,
                    "updated_at": moments[-1],
                    "version_id": len(path),
                }
            )
        self.insert(Deal, deals)
        self.insert(DealLine, lines)
        self.insert(DealStageHistory, history)

    # ---- activities --------------------------------------------------------

    def activities(self) -> None:
        self.insert(Activity, self._activity_rows())
        self.report.counts["long timelines"] = len(self.long_timeline_contacts)

    def _activity_rows(self) -> Iterator[dict]:
        rng = self.rng
        activity_id = 0
        for event in self.deal_events:
            activity_id += 1
            yield {
                "id": activity_id,
                "kind": "system",
                "subject": None,
                "body": None,
                "outcome": None,
                "duration_minutes": None,
                "created_at": event["occurred_at"],
                **event,
            }
        for index, when in self.planned_activities:
            activity_id += 1
            kind = rng.choice(("call", "call", "call", "note", "note", "email", "meeting", "visit"))
            owner = self.contact_owner[index]
            yield {
                "id": activity_id,
                "kind": kind,
                "subject": "Follow-up" if kind in ("email", "meeting") else None,
                "body": rng.choice(CALL_NOTES if kind in ("call", "meeting", "visit") else NOTES),
                "outcome": rng.choice(("reached", "voicemail", "no_answer"))
                if kind == "call"
                else None,
                "duration_minutes": rng.choice((5, 10, 15, 30, 60))
                if kind in ("call", "meeting")
                else None,
                "data": None,
                "occurred_at": when,
                "created_at": when,
                "author_id": owner if rng.random() < 0.7 else rng.choice(self.office),
                "contact_id": index + 1,
                "company_id": self.contact_company[index],
                "deal_id": None,
            }

    # ---- quotas, then statistics ------------------------------------------

    def quotas(self) -> None:
        """A monthly target for every rep and a quarterly one for every sales team."""
        today = self.now.date()
        month = today.replace(day=1)
        quarter = month.replace(month=3 * ((month.month - 1) // 3) + 1)
        rows = []
        for user_id in self.reps:
            for offset in (-1, 0, 1):
                rows.append(
                    {
                        "user_id": user_id,
                        "team_id": None,
                        "period_kind": "month",
                        "period_start": _add_months(month, offset),
                        "target": Decimal(self.rng.choice((15_000, 20_000, 25_000))),
                    }
                )
        for team_id in sorted(t for t in self.teams_of_reps if t):
            rows.append(
                {
                    "user_id": None,
                    "team_id": team_id,
                    "period_kind": "quarter",
                    "period_start": quarter,
                    "target": Decimal(400_000),
                }
            )
        self.insert(Quota, rows)

    # ---- the agenda ----------------------------------------------------------

    def agenda(self) -> None:
        """Meetings, calls and visits with their contact, and tasks, for every office user.

        Three events for two tasks, on working days between 8:00 and 18:00 Paris time,
        spread over six months back and ahead, plus one weekly meeting per sales team
        with its members (a series, expanded by the agenda like the demo's).
        """
        rng = self.rng
        zone = ZoneInfo("Europe/Paris")
        people = [r for r in self.user_rows if r["role"] != "technician"] or self.user_rows
        team_of = {r["id"]: r["team_id"] for r in self.user_rows}
        n_events = self.sizes.agenda * 3 // 5
        n_tasks = self.sizes.agenda - n_events
        half_year = timedelta(days=182)
        events, attendees, tasks = [], [], []
        attendee_id = 0

        def local_slot(moment: datetime, minutes: int) -> datetime:
            """A working-day slot in Paris near `moment`, in UTC."""
            local = moment.astimezone(zone)
            while local.weekday() >= 5:
                local += timedelta(days=1)
            hour = 8 + int(rng.random() ** 1.3 * 10)
            wall = local.replace(tzinfo=None, hour=hour, minute=rng.choice((0, 15, 30, 45)))
            return wall.replace(tzinfo=zone).astimezone(UTC)

        managers = {r["team_id"]: r["id"] for r in self.user_rows if r["role"] == "manager"}
        team_members: dict[int, list[int]] = {}
        for row in self.user_rows:
            if row["team_id"]:
                team_members.setdefault(row["team_id"], []).append(row["id"])
        event_id = 0
        for team_id, organizer in sorted(managers.items()):
            event_id += 1
            first = (self.now - half_year).astimezone(zone).date()
            first += timedelta(days=-first.weekday() % 7)  # a Monday, 9:00 in Paris
            start = datetime(first.year, first.month, first.day, 9, tzinfo=zone).astimezone(UTC)
            events.append(
                self._event_row(
                    event_id,
                    organizer,
                    "meeting",
                    "Réunion d'équipe",
                    start,
                    60,
                    rrule="FREQ=WEEKLY;BYDAY=MO",
                )
            )
            for member in team_members.get(team_id, []):
                if member != organizer:
                    attendee_id += 1
                    attendees.append(self._attendee_row(attendee_id, event_id, user_id=member))
        for _ in range(n_events - event_id):
            event_id += 1
            organizer = rng.choice(people)["id"]
            kind = rng.choice(("meeting", "call", "call", "visit"))
            minutes = {"meeting": 60, "call": 30, "visit": 90}[kind]
            start = local_slot(self.now + (rng.random() * 2 - 1) * half_year, minutes)
            contact = rng.randrange(self.sizes.contacts) if self.sizes.contacts else None
            company = self.contact_company[contact] if contact is not None else None
            name = self.contact_names[contact] if contact is not None else "?"
            title = {
                "meeting": rng.choice(MEETING_TOPICS),
                "call": rng.choice(CALL_TOPICS),
                "visit": rng.choice(VISIT_TOPICS),
            }[kind]
            events.append(
                self._event_row(
                    event_id,
                    organizer,
                    kind,
                    f"{title} – {name}",
                    start,
                    minutes,
                    contact_id=contact + 1 if contact is not None else None,
                    company_id=company,
                    private=rng.random() < 0.03,
                )
            )
            if contact is not None:
                attendee_id += 1
                attendees.append(self._attendee_row(attendee_id, event_id, contact_id=contact + 1))
            if kind == "meeting" and rng.random() < 0.3:
                colleagues = team_members.get(team_of[organizer]) or [organizer]
                colleague = rng.choice(colleagues)
                if colleague != organizer:
                    attendee_id += 1
                    attendees.append(self._attendee_row(attendee_id, event_id, user_id=colleague))
        for task_id in range(1, n_tasks + 1):
            assignee = rng.choice(people)["id"]
            due = local_slot(self.now + (rng.random() * 2 - 1) * half_year, 0)
            done = due < self.now and rng.random() < 0.8
            contact = rng.randrange(self.sizes.contacts) if self.sizes.contacts else None
            name = self.contact_names[contact] if contact is not None else "?"
            tasks.append(
                {
                    "id": task_id,
                    "title": rng.choice(TASK_TOPICS).format(name=name),
                    "notes": None,
                    "due_at": due,
                    "all_day": False,
                    "status": "done" if done else "open",
                    "completed_at": due if done else None,
                    "reminder_minutes": None,
                    "assignee_id": assignee,
                    "created_by_id": assignee,
                    "contact_id": contact + 1 if contact is not None else None,
                    "company_id": self.contact_company[contact] if contact is not None else None,
                    "deal_id": None,
                    "source_activity_id": None,
                    "created_at": due - timedelta(days=7),
                    "updated_at": due - timedelta(days=7),
                }
            )
        self.insert(Event, events)
        self.insert(EventAttendee, attendees)
        self.insert(Task, tasks)
        # Every office user subscribed their calendar app to their agenda.
        self.insert(
            CalendarFeed,
            [
                {
                    "id": index + 1,
                    "token": f"{rng.getrandbits(256):064x}",
                    "user_id": row["id"],
                    "team_id": None,
                    "created_by_id": row["id"],
                    "created_at": self.now - timedelta(days=30),
                    "revoked_at": None,
                    "last_fetched_at": None,
                }
                for index, row in enumerate(people)
            ],
        )

    def _event_row(self, event_id, organizer, kind, title, start, minutes, rrule=None, **extra):
        row = {
            "id": event_id,
            "title": title[:200],
            "kind": kind,
            "status": "confirmed",
            "description": None,
            "location": None,
            "starts_at": start,
            "ends_at": start + timedelta(minutes=minutes),
            "all_day": False,
            "timezone": "Europe/Paris",
            "private": False,
            "rrule": rrule,
            "rrule_until": None if rrule else start + timedelta(minutes=minutes),
            "exdates": None,
            "parent_id": None,
            "recurrence_id": None,
            "ical_uid": f"scale-{event_id}@crm",
            "sequence": 0,
            "reminder_minutes": None,
            "organizer_id": organizer,
            "contact_id": None,
            "company_id": None,
            "deal_id": None,
            "report": None,
            "report_at": None,
            "created_at": start - timedelta(days=14),
            "updated_at": start - timedelta(days=14),
        }
        row.update(extra)
        return row

    def _attendee_row(self, attendee_id, event_id, user_id=None, contact_id=None) -> dict:
        return {
            "id": attendee_id,
            "event_id": event_id,
            "user_id": user_id,
            "contact_id": contact_id,
            "response": "accepted" if contact_id else self.rng.choice(("accepted", "needs_action")),
        }

    # ---- support: incidents and their messages ------------------------------

    def incidents(self) -> None:
        """Incidents over the last year, most of them resolved or closed, about one in ten
        still open; their due times computed in business time as the app computes them.

        The service levels are the default policies on the default support calendar
        (crm/services/support_settings.py: no settings saved), with the public holidays of
        last year too, as the app had them when the older incidents came in. Each due time
        goes through business_time.add_business_minutes like sla.start_clock; the moment of
        the first reply and of the resolution is drawn as a share of its target in business
        time, so that about one in six misses it, and the breach flags (and the watch's
        notices of running clocks) follow from the times. Not written: the timeline rows the
        app records beside incidents and replies (the activities keep their own sizes).
        """
        from crm.services import business_time as bt
        from crm.services import support_settings

        rng, now = self.support_rng, self.now
        count = self.sizes.incidents if self.sizes.contacts else 0
        default = support_settings.default_calendar(now.date())
        last_year = support_settings.french_holidays(now.year - 1)
        calendar = bt.Calendar(
            default.timezone, default.week, default.holidays | {day for day, _ in last_year}
        )
        policies = support_settings.DEFAULT_POLICIES
        agents = self.agents or self.office
        incidents, messages = [], []
        self.technical_incidents: list[tuple[datetime, int, int]] = []  # created, id, contact
        self.open_technical: list[tuple[datetime, int, int]] = []
        message_id = 0
        for incident_id in range(1, count + 1):
            kind = rng.choices(INCIDENT_KINDS, (25, 60, 15))[0]
            priority = rng.choices(PRIORITIES, (20, 50, 22, 8))[0]
            status = rng.choices(("new", "open", "waiting", "done"), (3, 5, 3, 89))[0]
            age_days = {"new": 2, "open": 20, "waiting": 30, "done": 365}[status]
            created = now - timedelta(seconds=rng.randint(600, age_days * 86_400))
            policy = policies[priority]
            response_due = bt.add_business_minutes(calendar, created, policy.first_response_minutes)
            resolution_due = bt.add_business_minutes(calendar, created, policy.resolution_minutes)
            # When the agent answered, and when it was solved: a share of each target.
            responded = bt.add_business_minutes(
                calendar, created, policy.first_response_minutes * rng.random() ** 1.6 * 1.3
            )
            resolved = closed = paused = None
            if status == "done":
                resolved = bt.add_business_minutes(
                    calendar, created, policy.resolution_minutes * rng.random() ** 1.2 * 1.25
                )
                resolved = max(resolved, responded + timedelta(minutes=5))
                if resolved > now:  # came in lately: still being worked on
                    status, resolved = "open", None
                else:
                    closed = resolved + timedelta(hours=rng.randint(24, 24 * 7))
                    status = "closed" if closed <= now else "resolved"
                    closed = closed if status == "closed" else None
            if status == "new" or responded > now:
                responded = None
                status = "open" if status == "waiting" else status
            if status == "waiting":
                paused = responded + timedelta(minutes=rng.randint(1, 30))
                paused = min(paused, now)
            contact = rng.randrange(self.sizes.contacts)
            company = self.contact_company[contact]
            assignee = None if status == "new" and rng.random() < 0.4 else rng.choice(agents)
            stopped = resolved or paused or now
            notified = {}
            flags = {"first_response_breached": False, "resolution_breached": False}
            for target, due, met in (
                ("first_response", response_due, responded),
                ("resolution", resolution_due, resolved),
            ):
                if met is not None:
                    flags[f"{target}_breached"] = met > due
                elif due <= stopped:  # the watch saw the running clock pass its due time
                    flags[f"{target}_breached"] = True
                    if status in ("new", "open"):
                        notified[target] = ["warning", "breach"]
            subject = rng.choice(INCIDENT_SUBJECTS[kind])
            # The conversation: the customer's message sometimes, the first reply, then
            # more replies, notes and answers until it was solved (or until now).
            thread: list[tuple[datetime, str, int | None]] = []
            if rng.random() < 0.3:
                thread.append((created + timedelta(minutes=1), "inbound", None))
            if responded is not None:
                thread.append((responded, "reply", assignee or rng.choice(agents)))
                last = paused or resolved or now
                span = max((last - responded).total_seconds(), 60)
                for _ in range(rng.choices((0, 1, 2, 3, 5, 8), (50, 28, 12, 6, 3, 1))[0]):
                    when = responded + timedelta(seconds=rng.uniform(30, span))
                    what = rng.choice(("reply", "note", "inbound", "inbound"))
                    thread.append((when, what, None if what == "inbound" else assignee))
            elif status != "new" and rng.random() < 0.5:  # a note opens a new incident
                thread.append((created + timedelta(minutes=rng.randint(2, 90)), "note", assignee))
            for when, what, author in sorted(thread, key=lambda m: m[0]):
                message_id += 1
                messages.append(
                    {
                        "id": message_id,
                        "incident_id": incident_id,
                        "kind": what,
                        "body": rng.choice(SUPPORT_MESSAGES[what]),
                        "author_id": author or (None if what == "inbound" else agents[0]),
                        "email_status": "pending" if what == "reply" else None,
                        "created_at": min(when, now),
                    }
                )
            updated = max([created, *(m[0] for m in thread), closed or resolved or created])
            incidents.append(
                {
                    "id": incident_id,
                    "kind": kind,
                    "subject": subject,
                    "subject_key": _fold(subject),
                    "description": rng.choice(INCIDENT_DESCRIPTIONS)
                    if rng.random() < 0.7
                    else None,
                    "priority": priority,
                    "status": status,
                    "channel": rng.choices(("phone", "email", "web", "visit"), (40, 35, 20, 5))[0],
                    "contact_id": contact + 1,
                    "company_id": company,
                    "product_id": rng.choice(self.products)["id"] if kind == "technical" else None,
                    "assignee_id": assignee,
                    "team_id": self.support_team,
                    "created_by_id": assignee or rng.choice(agents),
                    "assignment_reason": None,
                    "first_response_due_at": response_due,
                    "first_responded_at": responded,
                    "resolution_due_at": resolution_due,
                    "resolved_at": resolved,
                    "closed_at": closed,
                    "paused_at": paused,
                    "sla_notified": notified or None,
                    **flags,
                    "created_at": created,
                    "updated_at": min(updated, now),
                }
            )
            if kind == "technical":
                self.technical_incidents.append((created, incident_id, contact))
                if status in ("new", "open", "waiting"):
                    self.open_technical.append((created, incident_id, contact))
        self.insert(Incident, incidents)
        self.insert(IncidentMessage, messages)
        self.technical_incidents.sort()

    # ---- support: interventions and the technicians' bookings ------------------

    def interventions(self) -> None:
        """On-site visits over six months back and ahead, on the technicians' working days.

        Each technician's day is cut into a few visits one after the other (8:00 to 18:00
        Paris time, travel between them), so that no two of their bookings overlap, which
        the PostgreSQL exclusion constraint would refuse; the visits are drawn from those
        slots, one in ten with a second technician free at that time. Past visits are done
        (their bookings freed, as the report does) or cancelled, future ones planned, those
        under way en route or on site; a few wait unscheduled on the dispatch board's tray.
        Most serve a technical incident opened shortly before, some a deal.
        """
        rng, now = self.support_rng, self.now
        count = self.sizes.interventions if self.technicians and self.sizes.contacts else 0
        if not count:
            return
        zone = ZoneInfo("Europe/Paris")
        unscheduled = max(count // 50, 1)
        slots = self._technician_slots(zone)
        chosen = sorted(rng.sample(slots, min(count - unscheduled, len(slots))))
        if len(chosen) < count - unscheduled:
            self.progress(f"  only {len(chosen):,} free slots for the interventions")
        taken: dict[tuple[int, date], list[tuple[datetime, datetime]]] = {}
        for start, end, technician in chosen:
            taken.setdefault((technician, start.astimezone(zone).date()), []).append((start, end))
        interventions, bookings = [], []
        booking_id = 0
        created_order = [c for c, _i, _c in self.technical_incidents]
        plan = [(start, end, [technician]) for start, end, technician in chosen]
        plan += [(None, None, [])] * unscheduled
        for index, (start, end, team) in enumerate(plan, start=1):
            if start is not None and rng.random() < 0.1:
                day = start.astimezone(zone).date()
                others = [t for t in self.technicians if t != team[0]]
                rng.shuffle(others)
                for other in others:
                    busy = taken.get((other, day), [])
                    if all(end <= b_start or start >= b_end for b_start, b_end in busy):
                        taken.setdefault((other, day), []).append((start, end))
                        team = [*team, other]
                        break
            # What it is for: an incident opened before it (an open one for a visit to
            # come or waiting), else a deal, else a maintenance visit of a customer.
            incident_id = deal_id = None
            contact = rng.randrange(self.sizes.contacts)
            opened = now - timedelta(days=365)
            if start is None or start > now:
                if self.open_technical and rng.random() < 0.7:
                    opened, incident_id, contact = rng.choice(self.open_technical)
            elif rng.random() < 0.7 and created_order:
                last = bisect_left(created_order, start) - 1
                first = bisect_left(created_order, start - timedelta(days=21))
                if last >= first and last >= 0:
                    opened, incident_id, contact = self.technical_incidents[
                        rng.randint(first, last)
                    ]
            if incident_id is None and self.sizes.deals and rng.random() < 0.5:
                deal_id = rng.randrange(self.sizes.deals) + 1
            company = self.contact_company[contact]
            city, postcode = self.company_places[company - 1] if company else rng.choice(CITIES)
            name = self.contact_names[contact]
            duration = int((end - start).total_seconds() // 60) if start else rng.choice((60, 120))
            status = "unscheduled"
            if start is not None:
                if end <= now:
                    status = "done" if rng.random() < 0.94 else "cancelled"
                elif start <= now:
                    status = rng.choice(("en_route", "on_site"))
                else:
                    status = "planned" if rng.random() < 0.97 else "cancelled"
            held = [s for t in team for s in self.skills_of.get(t, ())]
            created = max((start or now) - timedelta(days=rng.randint(1, 20)), opened)
            changed = end if status == "done" else (start if status != "unscheduled" else created)
            interventions.append(
                {
                    "id": index,
                    "title": f"{rng.choice(VISIT_TITLES)} – {name}",
                    "status": status,
                    "incident_id": incident_id,
                    "deal_id": deal_id,
                    "contact_id": contact + 1,
                    "company_id": company,
                    "starts_at": start,
                    "ends_at": end,
                    "duration_minutes": duration,
                    "address": f"{rng.randint(1, 120)} rue de la République, {postcode} {city}, France",
                    "skills": [rng.choice(held)] if held and rng.random() < 0.5 else None,
                    "notes": None,
                    "created_by_id": rng.choice(self.agents or self.office),
                    "work_done": rng.choice(WORK_DONE) if status == "done" else None,
                    "time_spent_minutes": duration if status == "done" else None,
                    "parts_used": None,
                    "signature_png": None,
                    "signed_by": None,
                    "status_changed_at": min(changed, now),
                    "completed_at": end if status == "done" else None,
                    "created_at": min(created, now),
                    "updated_at": min(changed, now),
                }
            )
            for technician in team:
                booking_id += 1
                bookings.append(
                    {
                        "id": booking_id,
                        "intervention_id": index,
                        "technician_id": technician,
                        "starts_at": start,
                        "ends_at": end,
                        "active": status in BOOKED_STATUSES,
                    }
                )
        self.insert(Intervention, interventions)
        self.insert(TechnicianBooking, bookings)

    def _technician_slots(self, zone: ZoneInfo) -> list[tuple[datetime, datetime, int]]:
        """Every technician's working days cut into visits in a row: (start, end, technician)."""
        rng = self.support_rng
        first = (self.now - timedelta(days=182)).astimezone(zone).date()
        slots = []
        for offset in range(365):
            day = first + timedelta(days=offset)
            if day.weekday() >= 5:
                continue
            for technician in self.technicians:
                minute = 8 * 60 + rng.choice((0, 15, 30, 45, 60))
                while True:
                    length = rng.choice((60, 60, 90, 120, 120, 180))
                    if minute + length > 18 * 60:
                        break
                    wall = datetime(day.year, day.month, day.day, minute // 60, minute % 60)
                    start = wall.replace(tzinfo=zone).astimezone(UTC)
                    slots.append((start, start + timedelta(minutes=length), technician))
                    minute += length + rng.choice((30, 45, 60, 90))
        return slots

    def drop_indexes_and_foreign_keys(self) -> list[str]:
        """Drop the secondary indexes and foreign keys of the big tables, as pg_restore does.

        Building an index once over all the rows is many times faster than updating it row
        by row (the trigram GIN indexes most of all), and checking a foreign key once for
        the whole table is a join instead of a lookup per row. Returns the statements that
        put them back, with their names, so that the schema ends exactly as migrated.
        """
        tables = {"tables": list(BULK_TABLES)}
        indexes = db.session.execute(
            text(
                "SELECT indexname, indexdef FROM pg_indexes "
                "WHERE schemaname = current_schema() AND tablename = ANY(:tables) "
                # Primary keys, unique and exclusion constraints stay: the last ones check
                # the technicians' bookings as they are loaded (few rows, a cheap check).
                "AND indexname NOT IN "
                "(SELECT conname FROM pg_constraint WHERE contype IN ('p', 'u', 'x'))"
            ),
            tables,
        ).all()
        foreign_keys = db.session.execute(
            text(
                "SELECT c.conname, t.relname, pg_get_constraintdef(c.oid) FROM pg_constraint c "
                "JOIN pg_class t ON t.oid = c.conrelid "
                "WHERE c.contype = 'f' AND t.relname = ANY(:tables) "
                "AND t.relnamespace = current_schema()::regnamespace"
            ),
            tables,
        ).all()
        for name, table, _definition in foreign_keys:
            db.session.execute(text(f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}"'))
        for name, _definition in indexes:
            db.session.execute(text(f'DROP INDEX "{name}"'))
        db.session.commit()
        return [definition for _name, definition in indexes] + [
            f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {definition}'
            for name, table, definition in foreign_keys
        ]

    def restore(self, statements: list[str]) -> None:
        if statements:
            db.session.execute(text("SET LOCAL maintenance_work_mem = '256MB'"))
        for statement in statements:
            db.session.execute(text(statement))

    def finish(self) -> None:
        """Move the id sequences past the rows written here, and give the planner statistics."""
        if not self.postgres:
            db.session.execute(text("ANALYZE"))
            return
        for table in db.metadata.sorted_tables:
            if "id" in table.c and table.c.id.autoincrement is not False and table.c.id.primary_key:
                db.session.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('\"{table.name}\"', 'id'), "  # noqa: S608
                        f'coalesce((SELECT max(id) FROM "{table.name}"), 0) + 1, false)'
                    )
                )
        db.session.commit()
        # VACUUM cannot run in a transaction; it also marks the pages all-visible, so that
        # index-only scans work on the new rows at once, as they would after autovacuum.
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))


# (kind of each stage) per default pipeline, in order: the paths are drawn before the rows exist.
def _stage_kinds() -> dict[str, tuple[str, ...]]:
    from crm.services.deals import DEFAULT_PIPELINES

    return {name: tuple(stage[2] for stage in stages) for name, stages in DEFAULT_PIPELINES.items()}


_DEFAULT_STAGE_KINDS = _stage_kinds()


# The same few names and companies come back thousands of times: fold each once.
_fold = lru_cache(maxsize=65_536)(fold)


@lru_cache(maxsize=65_536)
def _email_part(text: str) -> str:
    return "".join(ch for ch in fold(text) if ch.isalnum() or ch == ".")


def _contact_keys(first: str, last: str, email: str, phone: str, company_name: str | None) -> dict:
    """What Contact.refresh_keys stores, with the folding cached (checked by _check_contact_keys)."""
    email_folded, phone_folded = email_key(email), phone_key(phone)
    digits = "".join(ch for ch in phone if ch.isdigit())
    parts = (
        _fold(first),
        _fold(last),
        email_folded,
        digits,
        phone_folded,
        _fold(company_name or ""),
    )
    return {
        "first_name": first,
        "last_name": last,
        "email": email,
        "phone": phone,
        "sort_name": _fold(f"{last} {first}")[:210],
        "email_key": email_folded,
        "phone_key": phone_folded,
        "search_text": " ".join(part for part in parts if part),
    }


def _check_contact_keys(keys: dict, company_name: str | None) -> None:
    """Run the model's own refresh_keys on the same contact: the seed must store what it would."""
    contact = SimpleNamespace(
        first_name=keys["first_name"],
        last_name=keys["last_name"],
        email=keys["email"],
        phone=keys["phone"],
        company=SimpleNamespace(name=company_name) if company_name else None,
    )
    Contact.refresh_keys(contact)
    for name in ("sort_name", "email_key", "phone_key", "search_text"):
        if getattr(contact, name) != keys[name]:
            raise RuntimeError(f"seed-scale computes {name} unlike Contact.refresh_keys")


def _roles(count: int) -> list[str]:
    """1 admin, a manager per sales team, 16% support, 16% technicians, the rest sales reps
    (of 50 users: 8 support agents, 8 technicians, 29 reps)."""
    managers = min(len(SALES_TEAMS), max(count // 12, 1))
    support = count * 16 // 100
    technicians = count * 16 // 100
    sales = max(count - 1 - managers - support - technicians, 1)
    return (
        ["admin"]
        + ["manager"] * managers
        + ["sales"] * sales
        + ["support"] * support
        + ["technician"] * technicians
    )


def _phone(rng: random.Random, index: int, prefix: str) -> str:
    return f"+33 {prefix} {rng.randint(10, 99)} {rng.randint(10, 99)} {index // 100 % 100:02d} {index % 100:02d}"


def _line_total(line: dict) -> Decimal:
    """DealLine.total, on a plain row."""
    gross = line["quantity"] * line["unit_price"]
    return (gross * (100 - line["discount_percent"]) / 100).quantize(Decimal("0.01"))


def _add_months(day: date, months: int) -> date:
    month_index = day.year * 12 + day.month - 1 + months
    return date(month_index // 12, month_index % 12 + 1, 1)


def _copy(table, rows: list[dict]) -> None:
    """COPY the rows into `table` in the session's transaction, through each column's own
    bind processing (UTC datetimes stored naive, JSON serialized) as an INSERT would."""
    dialect = db.engine.dialect
    columns = list(rows[0])
    processors = [
        json.dumps
        if isinstance(table.c[name].type, JSON)
        else table.c[name].type.bind_processor(dialect)
        for name in columns
    ]
    quoted = ", ".join(f'"{name}"' for name in columns)
    cursor = db.session.connection().connection.driver_connection.cursor()
    with cursor, cursor.copy(f'COPY "{table.name}" ({quoted}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row(
                [
                    process(row[name]) if process and row[name] is not None else row[name]
                    for name, process in zip(columns, processors, strict=True)
                ]
            )


def _batches(rows: Iterable[dict], size: int) -> Iterator[list[dict]]:
    batch: list[dict] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
