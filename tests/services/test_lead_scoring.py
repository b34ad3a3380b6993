"""Lead scoring: each kind of condition, the reasons that explain a score, a batched
recompute whose query count does not grow with the contacts, and the listener that
enqueues one rescore job once the transaction commits."""

import contextlib
from datetime import timedelta

import pytest
from sqlalchemy import event, select

from crm.extensions import db
from crm.jobs.lead_scoring import rescore_all_leads, rescore_contacts, rescore_stale_leads
from crm.models import Activity, Contact, EmailMessage, ScoringRule
from crm.models.types import utcnow
from crm.queues import queue
from crm.services import lead_scoring, leads
from tests.factories import make_activity, make_company, make_contact


def _rule(name, points, position=0, **condition):
    rule = ScoringRule(name=name, points=points, position=position, condition=condition)
    db.session.add(rule)
    db.session.flush()
    return rule


def _email(contact, opened_days_ago=None, campaign=False, **fields):
    n = db.session.scalar(select(db.func.count()).select_from(EmailMessage)) + 1
    message = EmailMessage(
        direction="out",
        status="sent",
        message_id=f"<m{n}@crm>",
        message_id_key=f"m{n}@crm",
        contact_id=contact.id,
        first_opened_at=utcnow() - timedelta(days=opened_days_ago)
        if opened_days_ago is not None
        else None,
        **fields,
    )
    if campaign:
        message.campaign_id = _campaign().id
    db.session.add(message)
    db.session.flush()
    return message


def _campaign():
    from crm.models.campaigns import Campaign

    existing = db.session.scalars(select(Campaign)).first()
    if existing is not None:
        return existing
    campaign = Campaign(name="Spring")
    db.session.add(campaign)
    db.session.flush()
    return campaign


@contextlib.contextmanager
def count_queries():
    counted = []

    def _count(conn, cursor, statement, parameters, context, executemany):
        counted.append(statement)

    event.listen(db.engine, "before_cursor_execute", _count)
    try:
        yield counted
    finally:
        event.remove(db.engine, "before_cursor_execute", _count)


# ---- field conditions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "op", "value", "company", "contact", "expected"),
    [
        ("company.employees", "gt", 50, {"employees": 120}, {}, True),
        ("company.employees", "gt", 50, {"employees": 50}, {}, False),
        ("company.employees", "lt", "50", {"employees": 9}, {}, True),
        ("company.industry", "eq", "software", {"industry": "Software"}, {}, True),
        ("company.industry", "contains", "soft", {"industry": "Logiciels & Software"}, {}, True),
        ("company.country", "ne", "FR", {"country": "DE"}, {}, True),
        ("title", "contains", "direct", {}, {"title": "Directrice achats"}, True),
        ("title", "set", None, {}, {"title": None}, False),
        ("phone", "set", None, {}, {"phone": "06 12 34 56 78"}, True),
        ("source", "eq", "web_form", {}, {"source": "web_form"}, True),
        ("custom.budget", "eq", "high", {}, {"custom_fields": {"budget": "High"}}, True),
        ("custom.budget", "gt", 1000, {}, {"custom_fields": {"budget": 1500}}, True),
        ("custom.products", "contains", "CRM", {}, {"custom_fields": {"products": ["crm"]}}, True),
        ("custom.newsletter", "eq", "yes", {}, {"custom_fields": {"newsletter": True}}, True),
        ("custom.missing", "eq", "x", {}, {"custom_fields": {}}, False),
    ],
)
def test_field_conditions(ctx, field, op, value, company, contact, expected):
    rule = _rule("Rule", 20, type="field", field=field, op=op, value=value)
    who = make_contact(company=make_company(**company), **contact)
    points, reasons = lead_scoring.score(who)
    assert (points == 20) is expected
    assert reasons == ([{"rule_id": rule.id, "name": "Rule", "points": 20}] if expected else [])


# ---- activity conditions ---------------------------------------------------------------------


def test_activity_once_or_per_occurrence_within_the_window(ctx):
    contact = make_contact()
    for days in (1, 5, 60):
        make_activity(contact, kind="call", occurred_at=utcnow() - timedelta(days=days))
    make_activity(contact, kind="meeting", occurred_at=utcnow() - timedelta(days=2))
    _rule("Called", 5, type="activity", kind="call", within_days=30)
    _rule("Each call", 3, type="activity", kind="call", within_days=90, count="each")
    _rule("Met", 10, type="activity", kind="meeting", within_days=7)
    _rule("Visited", 10, type="activity", kind="visit", within_days=7)
    points, reasons = lead_scoring.score(contact)
    assert [(r["name"], r["points"]) for r in reasons] == [
        ("Called", 5),
        ("Each call", 9),
        ("Met", 10),
    ]
    assert points == 24


def test_each_occurrence_is_capped(ctx):
    contact = make_contact()
    for _ in range(lead_scoring.MAX_OCCURRENCES + 5):
        make_activity(contact, kind="note")
    _rule("Notes", 1, type="activity", kind="note", within_days=30, count="each")
    assert lead_scoring.score(contact)[0] == lead_scoring.MAX_OCCURRENCES


def test_emails_opened_and_campaign_emails_opened(ctx):
    contact = make_contact()
    _email(contact, opened_days_ago=3)
    _email(contact, opened_days_ago=None)  # never opened
    _email(contact, opened_days_ago=200)  # opened too long ago
    _rule("Opened", 5, type="activity", kind="email_opened", within_days=90, count="each")
    campaign_rule = _rule("Campaign", 7, type="activity", kind="campaign_email_opened")
    assert lead_scoring.score(contact)[0] == 5
    _email(contact, opened_days_ago=1, campaign=True)
    points, reasons = lead_scoring.score(contact)
    assert points == 5 * 2 + 7
    assert {"rule_id": campaign_rule.id, "name": "Campaign", "points": 7} in reasons


def test_a_web_form_sent_counts_once_per_capture(ctx):
    _rule("Web form", 15, type="activity", kind="web_form", within_days=30, count="each")
    contact = leads.capture_lead(
        source="web_form", email="w@example.com", message="Call me", route=False
    )
    assert contact.score == 15 and contact.score_reasons[0]["name"] == "Web form"
    leads.capture_lead(source="web_form", email="w@example.com", message="Again", route=False)
    leads.capture_lead(source="email", email="w@example.com", route=False)
    db.session.flush()
    assert lead_scoring.score(contact)[0] == 30


def test_inactivity_takes_points_away(ctx):
    rule = _rule("Silent", -10, type="inactive", days=30)
    quiet = make_contact(last_activity_at=utcnow() - timedelta(days=31))
    lively = make_contact(last_activity_at=utcnow() - timedelta(days=2))
    assert lead_scoring.score(quiet) == (
        -10,
        [{"rule_id": rule.id, "name": "Silent", "points": -10}],
    )
    assert lead_scoring.score(lively) == (0, [])


def test_inactive_rules_and_order_of_reasons(ctx):
    _rule("Second", 2, position=2, type="field", field="title", op="set")
    _rule("First", 1, position=1, type="field", field="title", op="set")
    off = _rule("Off", 100, position=0, type="field", field="title", op="set")
    off.active = False
    points, reasons = lead_scoring.score(make_contact(title="CEO"))
    assert points == 3 and [r["name"] for r in reasons] == ["First", "Second"]


# ---- recompute in batches ----------------------------------------------------------------------


def _many_leads(count: int, company) -> list[int]:
    now = utcnow()
    contacts = [
        Contact(
            first_name="L", last_name=str(i), email=f"l{count}-{i}@example.com", company=company
        )
        for i in range(count)
    ]
    db.session.add_all(contacts)
    db.session.flush()
    db.session.add_all(
        Activity(kind="call", contact_id=c.id, occurred_at=now - timedelta(days=i % 40))
        for i, c in enumerate(contacts)
    )
    db.session.flush()
    return [c.id for c in contacts]


def test_recompute_runs_the_same_few_queries_for_10_or_400_contacts(ctx):
    company = make_company(employees=80)
    _rule("Big", 20, type="field", field="company.employees", op="gt", value=50)
    _rule("Called", 5, type="activity", kind="call", within_days=30)
    _rule("Opened", 5, type="activity", kind="email_opened", within_days=30)
    _rule("Silent", -10, type="inactive", days=30)
    few, many = _many_leads(10, company), _many_leads(400, company)
    db.session.commit()
    with count_queries() as small:
        assert lead_scoring.recompute(few) == 10
    with count_queries() as large:
        assert lead_scoring.recompute(many) == 400
    # Rules, contacts with their company, activity counts, email opens, one UPDATE.
    assert len(small) == len(large) <= 5, large
    db.session.commit()
    scores = dict(
        db.session.execute(select(Contact.id, Contact.score).where(Contact.id.in_(many))).all()
    )
    contact = db.session.get(Contact, many[0])  # called today
    assert scores[many[0]] == 25 and [r["name"] for r in contact.score_reasons] == ["Big", "Called"]
    assert scores[many[35]] == 20  # called 35 days ago: not "Called", and not yet silent


def test_recompute_skips_customers_and_does_not_touch_updated_at(ctx):
    _rule("Titled", 5, type="field", field="title", op="set")
    customer = make_contact(stage="customer", title="CEO")
    lead = make_contact(title="CEO")
    db.session.commit()
    updated_at = lead.updated_at
    assert lead_scoring.recompute([customer.id, lead.id]) == 1
    db.session.commit()
    db.session.expire_all()
    assert (customer.score, lead.score) == (0, 5)
    assert lead.updated_at == updated_at and lead.score_updated_at is not None


# ---- the listener and the jobs ----------------------------------------------------------------


def _jobs():
    return [queue("default").fetch_job(job_id) for job_id in queue("default").job_ids]


def test_one_job_is_enqueued_after_commit_for_what_changed(ctx):
    contact, other = make_contact(), make_contact()
    company = make_company()
    customer = make_contact(company=company)
    db.session.commit()
    queue("default").empty()
    make_activity(contact, kind="call")
    other.title = "Buyer"
    company.employees = 300
    db.session.flush()
    assert _jobs() == []  # nothing before the commit
    db.session.commit()
    jobs = _jobs()
    assert len(jobs) == 1
    assert jobs[0].func_name == "crm.jobs.lead_scoring.rescore_contacts"
    contact_ids, company_ids = jobs[0].args
    assert sorted(contact_ids) == sorted([contact.id, other.id]) and company_ids == [company.id]
    assert customer.id not in contact_ids


def test_a_rollback_enqueues_nothing_and_unrelated_changes_neither(ctx):
    contact = make_contact()
    db.session.commit()
    queue("default").empty()
    make_activity(contact, kind="call")
    db.session.rollback()
    contact = db.session.get(Contact, contact.id)
    contact.consent_status = "granted"  # not scored
    db.session.commit()
    assert _jobs() == []


def test_an_email_opened_enqueues_a_rescore(ctx):
    contact = make_contact()
    message = _email(contact)
    db.session.commit()
    queue("default").empty()
    message.first_opened_at = utcnow()
    db.session.commit()
    assert [job.args[0] for job in _jobs()] == [[contact.id]]


def test_the_jobs_rescore_contacts_companies_all_and_stale_leads(ctx):
    rule = _rule("Big", 20, type="field", field="company.employees", op="gt", value=50)
    company = make_company(employees=10)
    contact = make_contact(company=company)
    fresh = make_contact(company=company, score_updated_at=utcnow())
    db.session.commit()
    company.employees = 100
    db.session.commit()
    assert rescore_contacts([], [company.id]) == 2
    db.session.expire_all()
    assert contact.score == 20
    rule.points = 30
    db.session.commit()
    assert rescore_all_leads() == 2
    db.session.expire_all()
    assert (contact.score, fresh.score) == (30, 30)
    # Both were just scored: the hourly sweep leaves them; an old score is redone.
    assert rescore_stale_leads() == 0
    contact.score_updated_at = utcnow() - timedelta(days=2)
    db.session.commit()
    assert rescore_stale_leads() == 1
