"""Lead routing: territory, postcode, size and score rules, first match wins, round-robin
fair over 1,000 leads, the dry run changes nothing, and the owner gets a task and a
notification."""

from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from crm.extensions import db
from crm.models import Contact, Notification, RoutingRule, Task, User
from crm.services import lead_routing, leads
from tests.factories import make_company, make_contact, make_team, make_user


def _rule(name, position=0, owner=None, team=None, **conditions):
    rule = RoutingRule(name=name, position=position, owner=owner, team=team, conditions=conditions)
    db.session.add(rule)
    db.session.flush()
    return rule


def _lead(country=None, postcode=None, employees=None, score=0, **fields):
    company = make_company(employees=employees) if employees is not None else None
    return make_contact(
        country=country, postcode=postcode, company=company, score=score, stage="lead", **fields
    )


@pytest.fixture
def reps(ctx):
    team = make_team("North")
    return team, [make_user(role="sales", team=team, name=f"Rep {i}") for i in range(3)]


def test_territory_rule_by_country_name_or_code(ctx):
    owner = make_user(role="sales", name="Hans")
    _rule("Germany", owner=owner, countries=["DE"])
    assert lead_routing.decide(_lead(country="Allemagne")).owner == owner
    assert lead_routing.decide(_lead(country="de")).owner == owner
    assert lead_routing.decide(_lead(country="Germany")).owner == owner
    assert lead_routing.decide(_lead(country="France")).rule is None


def test_region_from_a_french_postcode(ctx):
    lyon = make_user(role="sales", name="Lyon rep")
    _rule("Rhône-Alpes", owner=lyon, regions=["ARA"])
    assert lead_routing.decide(_lead(country="France", postcode="69003")).owner == lyon
    assert lead_routing.decide(_lead(country="FR", postcode="75011")).rule is None
    # Overseas departments have three digits.
    assert lead_routing.region_of("FR", "97400") == "LRE"


def test_postcode_prefix_size_and_score(ctx):
    paris, big, hot = (make_user(role="sales", name=n) for n in ("Paris", "Big", "Hot"))
    _rule("Paris", position=0, owner=paris, postcode_prefixes=["75", "92"])
    _rule("Big accounts", position=1, owner=big, min_employees=200)
    _rule("Hot", position=2, owner=hot, min_score=50)
    assert lead_routing.decide(_lead(postcode="92100")).owner == paris
    assert lead_routing.decide(_lead(postcode="13001", employees=500)).owner == big
    assert lead_routing.decide(_lead(postcode="13001", employees=20, score=60)).owner == hot
    decision = lead_routing.decide(_lead(postcode="13001", employees=20, score=10))
    assert decision.rule is None and decision.round_robin


def test_max_employees_needs_a_known_size(ctx):
    small = make_user(role="sales")
    _rule("Small", owner=small, max_employees=10)
    assert lead_routing.decide(_lead(employees=5)).owner == small
    assert lead_routing.decide(_lead()).rule is None


def test_the_first_matching_rule_wins_and_inactive_rules_are_skipped(ctx):
    first, second = make_user(role="sales"), make_user(role="sales")
    off = _rule("Off", position=0, owner=make_user(role="sales"), countries=["FR"])
    off.active = False
    _rule("Second", position=2, owner=second, countries=["FR"])
    _rule("First", position=1, owner=first, countries=["FR"])
    decision = lead_routing.decide(_lead(country="FR"))
    assert decision.owner == first and decision.rule.name == "First"
    assert "First" in decision.reason


def test_an_owner_away_falls_to_the_rule_team(ctx, reps):
    team, members = reps
    away = make_user(role="sales", away_until=date.today() + timedelta(days=3))
    _rule("Named", owner=away, team=team, countries=["FR"])
    decision = lead_routing.decide(_lead(country="FR"))
    assert decision.owner in members and decision.round_robin
    assert away.name in decision.reason


def test_round_robin_is_fair_over_1000_leads_and_skips_who_is_away(ctx, reps):
    team, members = reps
    away = make_user(role="sales", team=team, away_until=date.today() + timedelta(days=1))
    make_user(role="support", team=team)  # not a sales role: never picked
    make_user(role="sales", team=team, active=False)
    _rule("North", team=team)
    db.session.commit()
    given = Counter()
    for i in range(1000):
        contact = make_contact(email=f"lead{i}@example.com")
        decision = lead_routing.route_lead(contact)
        given[decision.owner.id] += 1
        if i % 100 == 99:
            db.session.commit()
    db.session.commit()
    assert away.id not in given
    assert set(given) == {m.id for m in members}
    assert all(333 <= n <= 334 for n in given.values()), given


def test_turns_continue_in_order_and_never_twice_in_a_row(ctx, reps):
    team, members = reps
    _rule("North", team=team)
    owners = [lead_routing.route_lead(make_contact()).owner for _ in range(6)]
    assert owners == members + members


def test_no_rule_goes_to_the_default_team(ctx, reps, data_app):
    team, members = reps
    make_team("Empty")
    decision = lead_routing.decide(_lead())
    assert decision.team == team and decision.owner == members[0]
    assert "No rule matched" in decision.reason
    other = make_team("South")
    south_rep = make_user(role="sales", team=other)
    data_app.config["LEADS_DEFAULT_TEAM"] = "South"
    try:
        assert lead_routing.decide(_lead()).owner == south_rep
    finally:
        data_app.config.pop("LEADS_DEFAULT_TEAM")


def test_nobody_available_leaves_the_lead_unowned(ctx):
    team = make_team()
    make_user(role="sales", team=team, away_until=date.today())
    _rule("T", team=team)
    contact = make_contact(owner=None)
    decision = lead_routing.route_lead(contact)
    assert decision.owner is None and contact.owner is None
    assert "Nobody available" in contact.routing_reason


def test_dry_run_changes_nothing(ctx, reps):
    team, members = reps
    _rule("North", team=team)
    db.session.commit()
    before = [(u.id, u.last_lead_assigned_at) for u in members]
    facts = lead_routing.sample_facts("France", "69001", 30, 10)
    first = lead_routing.decide_sample(facts)
    second = lead_routing.decide_sample(facts)
    assert first.owner == second.owner == members[0]
    db.session.commit()
    db.session.expire_all()
    assert [(u.id, u.last_lead_assigned_at) for u in members] == before
    assert db.session.scalar(select(func.count()).select_from(Task)) == 0


def test_routing_gives_the_owner_a_task_a_notification_and_a_reason(ctx, reps):
    team, members = reps
    _rule("Lyon", team=team, postcode_prefixes=["69"])
    contact = leads.capture_lead(source="web_form", first_name="Ada", email="ada@example.com")
    contact.postcode = "69002"
    db.session.flush()
    decision = lead_routing.route_lead(contact)
    db.session.commit()
    owner = decision.owner
    assert contact.owner == owner
    assert "Lyon" in contact.routing_reason
    task = db.session.scalars(select(Task).where(Task.contact_id == contact.id)).all()[-1]
    assert task.assignee == owner and task.title == "Call new lead Ada" and task.all_day
    note = db.session.scalars(select(Notification).where(Notification.user_id == owner.id)).all()
    assert note[-1].url == f"/contacts/{contact.id}" and note[-1].kind == "lead"


def test_the_call_is_due_today_or_the_next_working_day(ctx):
    owner = make_user(role="sales", timezone="Europe/Paris")
    monday_morning = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    friday_evening = datetime(2026, 3, 6, 17, 0, tzinfo=UTC)
    assert lead_routing.call_due_day(owner, monday_morning) == date(2026, 3, 2)
    assert lead_routing.call_due_day(owner, friday_evening) == date(2026, 3, 9)


def test_capture_reuses_the_contact_with_that_email(ctx, reps):
    first = leads.capture_lead(source="web_form", first_name="Bo", email="Bo@Example.com")
    db.session.commit()
    again = leads.capture_lead(source="email", email="bo@example.com", message="Hello again")
    assert again.id == first.id and again.source == "web_form"
    count = db.session.scalar(select(func.count()).select_from(Contact))
    assert count == 1
    assert db.session.scalar(select(func.count()).select_from(User).where(User.id > 0)) >= 3
