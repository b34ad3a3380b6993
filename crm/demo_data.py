"""A believable small company for the demo: people, customers and their history."""

import random
from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from crm.extensions import db
from crm.models import Activity, Company, Contact, Team, User
from crm.models.types import utcnow
from crm.services.contacts import set_tags
from crm.services.passwords import hash_password

DEMO_PASSWORD = "demo-password"

DEMO_USERS = [
    ("Alice Martin", "admin@demo.example", "admin", None),
    ("Marc Dubois", "manager@demo.example", "manager", "Sales"),
    ("Sophie Laurent", "sales@demo.example", "sales", "Sales"),
    ("Hugo Bernard", "hugo@demo.example", "sales", "Sales"),
    ("Emma Petit", "emma@demo.example", "sales", "Sales"),
    ("Nadia Roux", "support@demo.example", "support", "Support"),
    ("Lucas Moreau", "lucas@demo.example", "support", "Support"),
    ("Karim Fontaine", "technician@demo.example", "technician", "Field"),
]

FIRST_NAMES = [
    "Jean",
    "Marie",
    "Pierre",
    "Camille",
    "Louis",
    "Chloé",
    "Thomas",
    "Léa",
    "Nicolas",
    "Manon",
    "Julien",
    "Inès",
    "Antoine",
    "Sarah",
    "Maxime",
    "Clara",
    "Hélène",
    "Olivier",
    "Zoé",
    "Paul",
    "James",
    "Emily",
    "Oliver",
    "Grace",
    "Daniel",
    "Amelia",
    "Noah",
    "Isabelle",
    "Rémi",
    "Élodie",
]
LAST_NAMES = [
    "Durand",
    "Lefebvre",
    "Mercier",
    "Girard",
    "Bonnet",
    "Lambert",
    "Fournier",
    "Rousseau",
    "Vincent",
    "Muller",
    "Faure",
    "André",
    "Blanc",
    "Guérin",
    "Boyer",
    "Garnier",
    "Chevalier",
    "Smith",
    "Taylor",
    "Brown",
    "Wilson",
    "Clarke",
    "Perrin",
    "Morel",
    "Gauthier",
    "Roche",
]
COMPANY_WORDS = [
    "Atelier",
    "Boulangerie",
    "Garage",
    "Cabinet",
    "Transports",
    "Imprimerie",
    "Menuiserie",
    "Pharmacie",
    "Hôtel",
    "Studio",
    "Agence",
    "Clinique",
    "Ferme",
    "Brasserie",
    "Laboratoire",
]
COMPANY_NAMES = [
    "du Lac",
    "Martin & Fils",
    "Horizon",
    "des Alpes",
    "Lumière",
    "Saint-Michel",
    "Océan",
    "Bellevue",
    "du Centre",
    "Les Tilleuls",
    "Arc-en-Ciel",
    "Grand Est",
    "Provence",
    "Atlas",
]
CITIES = [
    ("Lyon", "69002"),
    ("Paris", "75011"),
    ("Marseille", "13001"),
    ("Bordeaux", "33000"),
    ("Lille", "59000"),
    ("Nantes", "44000"),
    ("Toulouse", "31000"),
    ("Grenoble", "38000"),
    ("Rennes", "35000"),
    ("Annecy", "74000"),
]
INDUSTRIES = [
    "Retail",
    "Construction",
    "Health",
    "Hospitality",
    "Logistics",
    "Manufacturing",
    "Services",
]
TAGS = ["VIP", "newsletter", "salon-2026", "partner", "referral"]
TITLES = ["Gérant", "Directrice", "Office manager", "Responsable achats", "CEO", "Comptable", None]
CALL_NOTES = [
    "Interested, wants a demo next week.",
    "Asked for a quote for 12 licences.",
    "Rappeler après les vacances.",
    "Budget validé, attend la proposition.",
    "Not the right person, gave the manager's number.",
    "Satisfied with the installation.",
]
NOTES = [
    "Met at the trade fair in Lyon.",
    "Prefers email over phone.",
    "Contrat à renouveler en mars.",
    "Decision maker is the owner.",
    "Compare avec un concurrent.",
]


def demo_exists() -> bool:
    return bool(db.session.scalar(select(func.count(User.id))))


def seed_demo(contacts: int = 300, companies: int = 60, deals: int = 90, seed: int = 42) -> dict:
    rng = random.Random(seed)
    users = _seed_users()
    owners = [u for u in users if u.role in ("sales", "manager")]
    company_rows = _seed_companies(rng, companies, owners)
    contact_rows = _seed_contacts(rng, contacts, company_rows, owners, users)
    db.session.flush()
    _seed_deals(rng, deals, contact_rows, [u for u in users if u.role == "sales"], users)
    db.session.flush()
    agenda = _seed_agenda(rng, users, contact_rows)
    _seed_incidents(users, contact_rows)
    _seed_interventions(users)
    _seed_mailboxes()
    _seed_custom_fields(random.Random(seed + 1), contact_rows, company_rows)
    _seed_leads(users)
    _seed_campaigns(users, contact_rows)
    db.session.commit()
    return {
        "users": len(users),
        "companies": companies,
        "contacts": contacts,
        "deals": deals,
        **agenda,
    }


def _seed_users() -> list[User]:
    password_hash = hash_password(DEMO_PASSWORD)
    teams: dict[str, Team] = {}
    users = []
    for name, email, role, team_name in DEMO_USERS:
        team = None
        if team_name:
            team = teams.setdefault(team_name, Team(name=team_name))
        user = User(name=name, email=email, role=role, team=team, password_hash=password_hash)
        db.session.add(user)
        users.append(user)
    return users


def _seed_companies(rng: random.Random, count: int, owners: list[User]) -> list[Company]:
    rows, seen = [], set()
    while len(rows) < count:
        name = f"{rng.choice(COMPANY_WORDS)} {rng.choice(COMPANY_NAMES)}"
        if name in seen:
            name = f"{name} {len(rows) + 1}"
        seen.add(name)
        city, postcode = rng.choice(CITIES)
        slug = "".join(ch for ch in name.lower() if ch.isalnum())[:20]
        company = Company(
            name=name,
            industry=rng.choice(INDUSTRIES),
            employees=rng.choice([3, 8, 15, 40, 120, 250]),
            city=city,
            postcode=postcode,
            country="France",
            website=f"https://{slug}.example",
            stage=rng.choice(["lead", "prospect", "customer", "customer"]),
            owner=rng.choice(owners),
        )
        db.session.add(company)
        rows.append(company)
    return rows


def _seed_contacts(rng, count, companies, owners, users) -> list[Contact]:
    now = utcnow()
    rows = []
    for index in range(count):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        company = rng.choice(companies) if rng.random() < 0.85 else None
        email_name = "".join(
            ch for ch in f"{first}.{last}".lower() if ch.isascii() and (ch.isalnum() or ch == ".")
        )
        contact = Contact(
            first_name=first,
            last_name=last,
            title=rng.choice(TITLES),
            email=f"{email_name}{index}@example.com",
            phone=f"+33 6 {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)} {index % 100:02d}",
            company=company,
            owner=rng.choice(owners),
            stage=rng.choice(["lead", "lead", "prospect", "customer", "former"]),
            source=rng.choice(["website", "trade fair", "referral", "cold call"]),
            created_at=now - timedelta(days=rng.randint(30, 400)),
        )
        if company:
            contact.city, contact.postcode, contact.country = (
                company.city,
                company.postcode,
                "France",
            )
        db.session.add(contact)
        rows.append(contact)
        set_tags(contact, rng.sample(TAGS, rng.choice([0, 0, 1, 2])))
        last_touch = contact.created_at
        for _ in range(rng.randint(0, 6)):
            when = now - timedelta(days=rng.randint(0, 120), hours=rng.randint(0, 10))
            kind = rng.choice(["call", "call", "note", "meeting", "email"])
            body = rng.choice(CALL_NOTES if kind in ("call", "meeting") else NOTES)
            db.session.add(
                Activity(
                    kind=kind,
                    contact=contact,
                    company=company,
                    author=rng.choice(users[:7]),
                    occurred_at=when,
                    body=body,
                    outcome=rng.choice(["reached", "voicemail", "no_answer"])
                    if kind == "call"
                    else None,
                    subject="Follow-up" if kind in ("email", "meeting") else None,
                )
            )
            last_touch = max(last_touch, when)
        contact.last_activity_at = last_touch
        if index % 100 == 99:
            db.session.flush()
    return rows


PRODUCTS = [
    ("LIC-STD", "Licence Standard (1 an)", "480.00", "90.00"),
    ("LIC-PRO", "Licence Pro (1 an)", "960.00", "180.00"),
    ("SUP-01", "Support, 1 year", "1200.00", "700.00"),
    ("INST", "Installation sur site", "650.00", "400.00"),
    ("FORM-J", "Formation (journée)", "900.00", "450.00"),
    ("HW-TERM", "Terminal de caisse", "1490.00", "1100.00"),
    ("HW-PRINT", "Imprimante tickets", "290.00", "190.00"),
    ("MAINT", "Maintenance annuelle", "1800.00", "900.00"),
]
DEAL_WORDS = [
    "Équipement",
    "Renouvellement",
    "Extension",
    "Migration",
    "Pack",
    "Projet",
    "Déploiement",
]
LOST_REASONS = ["Trop cher", "Went with a competitor", "Projet reporté", "No budget this year"]


def _seed_deals(rng, count, contacts, reps, users) -> None:
    from decimal import Decimal

    from crm.models.deals import Product
    from crm.services import deals as deal_service

    products = [
        Product(
            code=code,
            name=name,
            name_key=name.lower(),
            unit_price=Decimal(price),
            unit_cost=Decimal(cost),
        )
        for code, name, price, cost in PRODUCTS
    ]
    db.session.add_all(products)
    new_business, renewals = deal_service.create_default_pipelines()
    db.session.flush()
    today = utcnow().date()
    for index in range(count):
        pipeline = new_business if index % 5 else renewals
        contact = rng.choice(contacts)
        rep = rng.choice(reps)
        company_name = contact.company.name if contact.company else contact.name
        deal = deal_service.create_deal(
            rep,
            title=f"{rng.choice(DEAL_WORDS)} {company_name}",
            pipeline=pipeline,
            contact=contact,
            expected_close=today + timedelta(days=rng.randint(-20, 120)),
            source=contact.source,
        )
        for _ in range(rng.randint(1, 3)):
            deal_service.add_line(
                deal,
                product=rng.choice(products),
                description=None,
                quantity=Decimal(rng.choice([1, 1, 2, 3, 5, 10])),
                unit_price=None,
                discount_percent=Decimal(rng.choice([0, 0, 0, 5, 10])),
            )
        target = rng.choice(pipeline.stages)
        for stage in pipeline.stages:
            if stage.position > target.position or stage.kind == "lost" and target.kind != "lost":
                break
            if stage.kind == "won" and target.kind == "lost":
                continue
            reason = rng.choice(LOST_REASONS) if stage.kind == "lost" else None
            deal_service.move_deal(rep, deal, stage, None, reason)
        # Spread the history over the past weeks so that cycle lengths and stalled flags mean something.
        age = timedelta(days=rng.randint(3, 90))
        deal.created_at = utcnow() - age
        deal.stage_entered_at = utcnow() - age / 2
        if deal.closed_at:
            deal.closed_at -= age / 3
        if index % 20 == 19:
            db.session.flush()


# ---- the agenda: a believable week around today ----------------------------------

MEETING_TOPICS = [
    "Présentation de l'offre",
    "Point d'avancement",
    "Product demo",
    "Négociation contrat",
    "Kick-off",
    "Revue du devis",
]
CALL_TOPICS = ["Appel de suivi", "Follow-up call", "Qualification call", "Relance devis"]
VISIT_TOPICS = ["Visite sur site", "Installation check", "Visite client", "Audit du parc"]
TASK_TOPICS = [
    "Envoyer le devis à {name}",
    "Call back {name}",
    "Préparer la démo pour {name}",
    "Relancer {name} sur la proposition",
    "Send the contract to {name}",
    "Mettre à jour la fiche de {name}",
]
# Local start times a day's appointments are picked from (no overlaps for one person).
DAY_SLOTS = [(9, 30), (11, 0), (14, 0), (15, 30), (17, 0)]


def _seed_agenda(rng: random.Random, users: list[User], contacts: list[Contact]) -> dict:
    """Meetings, calls and visits of the sales team from last week to next week, a weekly
    team meeting, a private appointment, an all-day trade fair, and tasks that are
    overdue, due today, upcoming and done. Times are local to Paris, stored in UTC."""
    from datetime import date, datetime

    from crm.models import Deal, Event, EventAttendee
    from crm.services import reminders
    from crm.services.recurrence import from_local_naive, iso_utc, local_midnight, series_end

    zone_name = "Europe/Paris"
    zone = ZoneInfo(zone_name)
    now = utcnow()
    today = now.astimezone(zone).date()
    monday = today - timedelta(days=today.weekday())
    by_email = {u.email: u for u in users}
    manager = by_email["manager@demo.example"]
    reps = [u for u in users if u.role == "sales"]
    support = [u for u in users if u.role == "support"]
    deals_of = {}
    for deal in db.session.scalars(select(Deal).where(Deal.closed_at.is_(None))):
        deals_of.setdefault(deal.owner_id, []).append(deal)
    reachable = [c for c in contacts if c.company is not None]
    events: list[Event] = []

    def at(day: date, hour: int, minute: int = 0) -> datetime:
        return from_local_naive(
            datetime.combine(day, datetime.min.time()).replace(hour=hour, minute=minute), zone
        )

    def add_event(organizer, kind, title, start, minutes, **fields) -> Event:
        event = Event(
            organizer=organizer,
            kind=kind,
            title=title,
            starts_at=start,
            ends_at=start + timedelta(minutes=minutes),
            timezone=zone_name,
            created_at=now - timedelta(days=rng.randint(1, 10)),
            **fields,
        )
        event.rrule_until = series_end(event) if event.rrule else None
        db.session.add(event)
        events.append(event)
        return event

    # The Monday sales meeting, every week since two months, one cancelled for a holiday.
    first = monday - timedelta(weeks=8)
    weekly = add_event(
        manager,
        "meeting",
        "Réunion commerciale hebdo",
        at(first, 9),
        60,
        rrule="FREQ=WEEKLY;BYDAY=MO",
        location="Salle Lumière",
        description="Pipeline, deals at risk, plan of the week.",
    )
    weekly.exdates = [iso_utc(at(monday - timedelta(weeks=3), 9))]
    weekly.attendees = [EventAttendee(user=rep, response="accepted") for rep in reps]

    # Each rep's week: one to three customer appointments per working day.
    for person in [*reps, manager]:
        own_deals = deals_of.get(person.id, [])
        for offset in range(-7, 12):
            day = today + timedelta(days=offset)
            if day.weekday() >= 5:
                continue
            slots = rng.sample(DAY_SLOTS, rng.choice([1, 2, 2, 3]))
            for hour, minute in sorted(slots):
                if day.weekday() == 0 and hour < 11:
                    continue  # the weekly meeting
                kind = rng.choice(["meeting", "call", "call", "visit"])
                deal = rng.choice(own_deals) if own_deals and rng.random() < 0.5 else None
                contact = deal.contact if deal and deal.contact else None
                if contact is None or contact.company is None:
                    contact = rng.choice(reachable)
                company = contact.company
                if kind == "call":
                    title, minutes = f"{rng.choice(CALL_TOPICS)} – {contact.name}", 30
                    location = contact.phone
                elif kind == "visit":
                    title, minutes = f"{rng.choice(VISIT_TOPICS)} – {company.name}", 90
                    location = f"{company.name}, {company.postcode} {company.city}"
                else:
                    title, minutes = f"{rng.choice(MEETING_TOPICS)} – {company.name}", 60
                    location = rng.choice(["Visio", "Salle Horizon", f"{company.city}"])
                event = add_event(
                    person,
                    kind,
                    title,
                    at(day, hour, minute),
                    minutes,
                    location=location,
                    contact=contact,
                    company=company,
                    deal=deal,
                )
                event.attendees = [EventAttendee(contact=contact, response="accepted")]
                if kind == "meeting" and rng.random() < 0.3:
                    colleague = rng.choice([u for u in reps if u is not person] or reps)
                    event.attendees.append(EventAttendee(user=colleague, response="tentative"))

    sophie = by_email["sales@demo.example"]
    thursday = monday + timedelta(days=3)
    add_event(sophie, "meeting", "Rendez-vous dentiste", at(thursday, 18, 0), 45, private=True)
    hugo = by_email["hugo@demo.example"]
    fair = today + timedelta(days=(2 - today.weekday()) % 7 + 7)  # next week's Wednesday
    trade_fair = add_event(
        hugo,
        "visit",
        "Salon Expo Commerce Lyon",
        local_midnight(fair, zone),
        0,
        all_day=True,
        location="Eurexpo, Chassieu",
    )
    trade_fair.ends_at = local_midnight(fair + timedelta(days=2), zone)
    trade_fair.attendees = [EventAttendee(user=by_email["emma@demo.example"], response="accepted")]
    for person in support:
        add_event(
            person,
            "call",
            "Point support – escalades",
            at(monday + timedelta(days=1), 10),
            30,
            rrule="FREQ=WEEKLY;BYDAY=TU",
        )

    tasks = _seed_tasks(rng, [*reps, manager, *support], reachable, deals_of, now, today, zone)
    db.session.flush()
    for event in events:
        if event.rrule or event.starts_at > now:
            reminders.schedule_event(event)
    for task in tasks:
        if task.status == "open":
            reminders.schedule_task(task)
    return {"events": len(events), "tasks": len(tasks)}


def _seed_tasks(rng, people, contacts, deals_of, now, today, zone) -> list:
    """Per person: two overdue, two due today, three upcoming, two done."""
    from datetime import datetime

    from crm.models import Task
    from crm.services.recurrence import from_local_naive, local_midnight

    tasks = []
    plan = [
        (-6, "open"),
        (-2, "open"),
        (0, "open"),
        (0, "open"),
        (1, "open"),
        (3, "open"),
        (8, "open"),
        (-4, "done"),
        (-1, "done"),
    ]
    for person in people:
        for days, status in plan:
            deal = (
                rng.choice(deals_of[person.id])
                if deals_of.get(person.id) and rng.random() < 0.4
                else None
            )
            contact = deal.contact if deal and deal.contact else rng.choice(contacts)
            day = today + timedelta(days=days)
            all_day = rng.random() < 0.4
            if all_day:
                due = local_midnight(day, zone)
            else:
                due = from_local_naive(
                    datetime.combine(day, datetime.min.time()).replace(
                        hour=rng.choice([10, 12, 16, 18])
                    ),
                    zone,
                )
            task = Task(
                title=rng.choice(TASK_TOPICS).format(name=contact.name),
                due_at=due,
                all_day=all_day,
                status=status,
                completed_at=due if status == "done" else None,
                assignee=person,
                created_by=person,
                contact=contact,
                company=contact.company,
                deal=deal,
                created_at=now - timedelta(days=10),
            )
            db.session.add(task)
            tasks.append(task)
    return tasks


# ---- support: incidents ------------------------------------------------------

DEMO_INCIDENTS = [
    # kind, priority, status, channel, subject, description, [(message kind, body)]
    (
        "complaint",
        "high",
        "open",
        "phone",
        "Delivery two weeks late",
        "The customer waited two weeks for the order and had to stop the line.",
        [
            ("note", "Checked with logistics: the carrier lost the pallet."),
            ("reply", "We are sorry for the delay. A new pallet left this morning."),
        ],
    ),
    (
        "technical",
        "urgent",
        "new",
        "email",
        "Machine stops after ten minutes",
        "Error E42 on the display, then it stops.",
        [],
    ),
    (
        "technical",
        "normal",
        "waiting",
        "web",
        "Cannot log in to the customer portal",
        "Password reset email never arrives.",
        [("reply", "Could you check your spam folder and tell us?")],
    ),
    (
        "information",
        "low",
        "open",
        "email",
        "Price of the maintenance contract",
        "Wants the yearly price for two machines.",
        [("note", "Ask sales for the 2-machine rate.")],
    ),
    (
        "information",
        "normal",
        "resolved",
        "phone",
        "Opening hours during the holidays",
        None,
        [("reply", "We are open every working day except 25 December and 1 January.")],
    ),
    (
        "technical",
        "high",
        "closed",
        "visit",
        "Leak under the unit",
        "Water under the machine after each cycle.",
        [("note", "Seal replaced on site.")],
    ),
]


def _seed_incidents(users: list[User], contacts: list[Contact]) -> None:
    """A few incidents of each kind, some with a conversation, one complaint followed up."""
    from crm.services import incidents

    agents = [u for u in users if u.role == "support"]
    owned = [c for c in contacts if c.owner is not None]
    for index, (kind, priority, status, channel, subject, description, messages) in enumerate(
        DEMO_INCIDENTS
    ):
        agent = agents[index % len(agents)]
        incident = incidents.create_incident(
            agent,
            subject=subject,
            kind=kind,
            description=description,
            priority=priority,
            channel=channel,
            contact=owned[index * 7 % len(owned)],
            assignee=agent if index % 3 else None,
        )
        for message_kind, body in messages:
            incidents.add_message(agent, incident, message_kind, body)
        incidents.change_status(incident, status)
        if kind == "complaint":
            incidents.complaint_task(agent, incident)


# (title, days from today, local hour, minutes, skills) of the technician's visits; None: unscheduled.
DEMO_VISITS = [
    ("Diagnostic on site", -1, 9, 90, ["diagnostic"]),
    ("Replace the control board", 0, 9, 120, ["electronics"]),
    ("Annual maintenance", 0, 14, 60, ["maintenance"]),
    ("Check after repair", 1, 10, 60, ["diagnostic"]),
    ("Install the new unit", 2, 8, 180, ["installation"]),
    ("Second opinion", None, None, 60, ["diagnostic"]),
    ("Training on the new unit", None, None, 90, ["installation"]),
]


def _seed_interventions(users: list[User]) -> None:
    """The technician's week around today, and two visits waiting on the dispatch board,
    for the demo's incidents (a technical incident and the complaint first)."""
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    from crm.models import Incident
    from crm.services import interventions
    from crm.services.recurrence import from_local_naive

    technician = next(u for u in users if u.role == "technician")
    technician.skills = ["diagnostic", "electronics", "maintenance", "installation"]
    planner = next(u for u in users if u.role == "support")
    zone = ZoneInfo(technician.timezone or "Europe/Paris")
    today = datetime.now(zone).date()
    incidents = list(db.session.scalars(db.select(Incident).order_by(Incident.id)))
    for n, (title, days, hour, minutes, skills) in enumerate(DEMO_VISITS):
        incident = incidents[n % len(incidents)]
        customer = incident.contact
        address = (
            ", ".join(part for part in (customer.street, customer.postcode, customer.city) if part)
            if customer
            else None
        )
        starts_at = None
        if days is not None:
            day = today + timedelta(days=days)
            starts_at = from_local_naive(datetime(day.year, day.month, day.day, hour), zone)
        visit = interventions.create(
            planner,
            title=title,
            duration_minutes=minutes,
            address=address or "12 rue de la République, 69002 Lyon",
            skills=skills,
            incident=incident,
            starts_at=starts_at,
            technicians_=[technician] if starts_at else None,
        )
        if days is not None and days < 0:
            # Yesterday's visit is done, with its report.
            visit.status, visit.work_done, visit.time_spent_minutes = (
                "done",
                "Fault found: a worn relay, replaced.",
                80,
            )
            visit.completed_at = visit.ends_at
            for booking in visit.bookings:
                booking.active = False


def _seed_mailboxes() -> None:
    """support@ and sales@ on the demo's local mail pair (crm/demo_mail.py, started by
    `make run` when Dovecot is installed): plain IMAP/SMTP on loopback, password "demo".
    Support mail opens incidents for the Support team; sales mail makes leads."""
    from crm.demo_mail import DEMO_PASSWORD as MAIL_PASSWORD
    from crm.demo_mail import HOST, imap_port, smtp_port
    from crm.models import Mailbox
    from crm.services import secrets_box

    if db.session.scalar(select(func.count(Mailbox.id))):
        return
    teams = {team.name: team for team in db.session.scalars(select(Team))}
    password = secrets_box.encrypt("mail", MAIL_PASSWORD)
    for address, name, purpose, team in (
        ("support@demo.example", "Support", "support", "Support"),
        ("sales@demo.example", "Sales", "sales", "Sales"),
    ):
        db.session.add(
            Mailbox(
                name=name,
                address=address,
                purpose=purpose,
                team=teams.get(team),
                imap_host=HOST,
                imap_port=imap_port(),
                imap_security="none",
                imap_username=address,
                imap_password=password,
                smtp_host=HOST,
                smtp_port=smtp_port(),
                smtp_security="none",
            )
        )


def _seed_custom_fields(rng: random.Random, contacts: list[Contact], companies: list[Company]):
    """A field of each kind an admin would add first, with values on some demo records."""
    from crm.models import Deal, Incident
    from crm.services import custom_fields

    language = custom_fields.create_definition(
        "contact", "Preferred language", "choice", ["French", "English", "German", "Spanish"]
    )
    contract = custom_fields.create_definition("company", "Contract number", "text")
    budget = custom_fields.create_definition("deal", "Budget approved", "boolean")
    serial = custom_fields.create_definition("incident", "Serial number", "text")
    for contact in contacts:
        if rng.random() < 0.6:
            choice = rng.choices(language.choices, weights=(70, 20, 5, 5))[0]
            contact.custom_fields = {**(contact.custom_fields or {}), language.key: choice}
    for company in companies:
        if company.stage == "customer" or rng.random() < 0.2:
            number = f"CT-{rng.randint(2019, 2026)}-{rng.randint(100, 999)}"
            company.custom_fields = {**(company.custom_fields or {}), contract.key: number}
    for deal in db.session.scalars(select(Deal)):
        if rng.random() < 0.5:
            deal.custom_fields = {**(deal.custom_fields or {}), budget.key: rng.random() < 0.6}
    for incident in db.session.scalars(select(Incident)):
        if rng.random() < 0.7:
            value = f"SN-{rng.randint(100000, 999999)}"
            incident.custom_fields = {**(incident.custom_fields or {}), serial.key: value}


def _seed_leads(users: list[User]) -> None:
    """Scoring rules, routing rules by region (the rest taking turns in the Sales team), a
    web form; then every lead scored at once, so the hot list has its order from the start."""
    from crm.models import LeadForm, RoutingRule, ScoringRule
    from crm.services import lead_scoring

    by_email = {u.email: u for u in users}
    sales_team = by_email["manager@demo.example"].team
    rules = [
        (
            "Company of 50 people or more",
            20,
            {"type": "field", "field": "company.employees", "op": "gt", "value": 49},
        ),
        (
            "Software or IT company",
            10,
            {"type": "field", "field": "company.industry", "op": "contains", "value": "soft"},
        ),
        ("Has a phone number", 5, {"type": "field", "field": "phone", "op": "set", "value": None}),
        ("Called within 30 days", 10, {"type": "activity", "kind": "call", "within_days": 30}),
        (
            "Opened our emails (90 days)",
            5,
            {"type": "activity", "kind": "email_opened", "within_days": 90, "count": "each"},
        ),
        ("Sent a web form", 15, {"type": "activity", "kind": "web_form", "within_days": 60}),
        ("No activity for 30 days", -10, {"type": "inactive", "days": 30}),
    ]
    for position, (name, points, condition) in enumerate(rules):
        db.session.add(
            ScoringRule(name=name, points=points, condition=condition, position=position)
        )
    routing = [
        ("Auvergne-Rhône-Alpes", {"countries": ["FR"], "regions": ["ARA"]}, "sales@demo.example"),
        ("Île-de-France", {"countries": ["FR"], "regions": ["IDF"]}, "hugo@demo.example"),
        ("Big accounts", {"min_employees": 200}, "manager@demo.example"),
    ]
    for position, (name, conditions, email) in enumerate(routing):
        db.session.add(
            RoutingRule(name=name, conditions=conditions, owner=by_email[email], position=position)
        )
    db.session.add(
        RoutingRule(
            name="Hot leads elsewhere",
            conditions={"min_score": 30},
            team=sales_team,
            position=len(routing),
        )
    )
    db.session.add(
        LeadForm(
            name="Contact us (website)", source="web_form", token="demo-contact-us", active=True
        )
    )
    db.session.flush()
    for batch in lead_scoring.lead_ids():
        lead_scoring.recompute(batch)


def _seed_campaigns(users: list[User], contacts: list[Contact]) -> None:
    """A segment and a campaign sent six weeks ago: recipients, opens, a reply handed to its
    owner as a task, three leads it brought in, one of them a customer with a won deal."""
    import secrets
    from decimal import Decimal

    from crm.models import (
        Campaign,
        CampaignRecipient,
        Deal,
        EmailTemplate,
        Mailbox,
        Segment,
        Stage,
        Task,
    )

    by_email = {u.email: u for u in users}
    manager = by_email["manager@demo.example"]
    now = utcnow()
    started = now - timedelta(days=42)
    segment = Segment(
        name="Leads and prospects",
        owner_id=manager.id,
        filters=[{"field": "stage", "op": "in", "value": ["lead", "prospect"]}],
    )
    template = EmailTemplate(
        name="Spring offer",
        usage="sales",
        subject="{{contact.first_name}}, our spring offer",
        body=(
            "Hello {{contact.first_name}},\n\nThis spring, {{company.name}} can try our "
            "maintenance plan free for a month. Just answer this email.\n\n{{user.name}}"
        ),
    )
    mailbox = db.session.scalars(select(Mailbox).where(Mailbox.purpose == "sales")).first()
    campaign = Campaign(
        name="Spring offer",
        status="sent",
        segment=segment,
        template=template,
        mailbox=mailbox,
        owner_id=manager.id,
        subject=template.subject,
        body=template.body,
        rate_per_minute=30,
        cost=Decimal("1200.00"),
        currency="EUR",
        started_at=started,
        finished_at=started + timedelta(minutes=2),
    )
    db.session.add_all([segment, template, campaign])
    db.session.flush()
    audience = [c for c in contacts if c.stage in ("lead", "prospect") and c.email][:30]
    recipients = []
    for index, contact in enumerate(audience):
        recipient = CampaignRecipient(
            campaign_id=campaign.id,
            contact_id=contact.id,
            email=contact.email,
            status="sent",
            unsubscribe_token=secrets.token_urlsafe(24),
            sent_at=started + timedelta(seconds=2 * index),
            opened_at=started + timedelta(hours=3 + index) if index % 3 == 0 else None,
            created_at=started,
        )
        db.session.add(recipient)
        recipients.append(recipient)
    campaign.sent_count = len(recipients)
    if recipients:
        answered = recipients[0]
        answered.replied_at = started + timedelta(days=1)
        contact = next(c for c in audience if c.id == answered.contact_id)
        owner = contact.owner or manager
        db.session.add(
            Task(
                title=f"Answer {contact.name} (reply to the campaign Spring offer)",
                notes="Interested in the maintenance plan: please call me next week.",
                due_at=started + timedelta(days=2),
                assignee=owner,
                created_by=owner,
                contact=contact,
                company=contact.company,
            )
        )
    # The leads it brought in (first touch), one of them now a customer.
    people = (("Inès", "Laurent", "ines"), ("Paul", "Garnier", "paul"), ("Léa", "Roux", "lea"))
    for index, (first, last, login) in enumerate(people):
        lead = Contact(
            first_name=first,
            last_name=last,
            email=f"{login}.{last.lower()}@spring.example",
            stage="customer" if index == 0 else "lead",
            source="campaign",
            campaign_id=campaign.id,
            owner=manager,
            created_at=started + timedelta(days=2 + index),
        )
        db.session.add(lead)
        if index == 0:
            # A deal the demo already won becomes this customer's: the campaign's revenue.
            deal = db.session.scalars(
                select(Deal)
                .join(Stage, Deal.stage_id == Stage.id)
                .where(Stage.kind == "won")
                .order_by(Deal.id)
            ).first()
            if deal is not None:
                deal.contact, deal.company, deal.campaign_id = lead, None, campaign.id
