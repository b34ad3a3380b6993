"""Lead routes: the public web form (honeypot, rate limit, 422 keeping values, a routed lead
with its source, redirects to http(s) only, CSRF), the admin pages (scoring rules, routing
rules with their dry run, web forms) and who may use them, the hot list's order, filters,
pages and query count, and the score panel of a contact."""

import re

import pytest
from sqlalchemy import func, select

from crm.extensions import db
from crm.models import Contact, LeadForm, RoutingRule, ScoringRule, Task, User
from crm.queues import queue
from crm.services import leads
from tests.conftest import htmx_headers
from tests.factories import make_company, make_contact, make_team, make_user


def count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


@pytest.fixture
def team(ctx):
    team = make_team("Sales France")
    reps = [make_user(role="sales", team=team, name=f"Rep {n}") for n in "AB"]
    db.session.commit()
    return team, reps


@pytest.fixture
def web_form(ctx, team):
    lead_form = leads.create_lead_form("Contact us", "web_form", None, True)
    db.session.commit()
    return lead_form


def _post(client, lead_form, address="10.1.1.1", **data):
    fields = {"name": "Marie Curie", "email": "marie@example.com", "message": "Call me"}
    fields.update(data)
    return client.post(
        f"/leads/f/{lead_form.token}", data=fields, environ_base={"REMOTE_ADDR": address}
    )


# ---- the public web form ----------------------------------------------------------------------


def test_the_hosted_form_is_public_and_unknown_or_closed_forms_are_not(client, web_form):
    page = client.get(f"/leads/f/{web_form.token}")
    assert page.status_code == 200
    assert 'name="website"' in page.text and "Contact us" in page.text
    assert client.get("/leads/f/nope").status_code == 404
    web_form.active = False
    db.session.commit()
    assert client.get(f"/leads/f/{web_form.token}").status_code == 404
    assert _post(client, web_form).status_code == 404
    assert count(Contact) == 0


def test_a_sent_form_creates_a_routed_lead_with_its_source(client, web_form, team):
    _team, reps = team
    response = _post(client, web_form, company="Radium SA", phone="+33 6 12 34 56 78")
    assert response.status_code == 303
    assert response.headers["Location"] == f"/leads/f/{web_form.token}/thanks"
    assert "Thank you" in client.get(response.headers["Location"]).text
    contact = db.session.scalars(select(Contact)).one()
    assert (contact.first_name, contact.last_name, contact.stage, contact.source) == (
        "Marie",
        "Curie",
        "lead",
        "web_form",
    )
    assert contact.company.name == "Radium SA"
    assert contact.owner == reps[0] and "round-robin" in contact.routing_reason
    task = db.session.scalars(select(Task).where(Task.contact_id == contact.id)).one()
    assert task.assignee == reps[0] and task.title == "Call new lead Marie Curie"


def test_the_honeypot_pretends_success_and_saves_nothing(client, web_form):
    response = _post(client, web_form, website="http://spam.example")
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/thanks")
    assert count(Contact) == 0 and count(Task) == 0


def test_missing_contact_details_answer_422_with_every_value_kept(client, web_form):
    response = _post(client, web_form, email="", name="Pierre Curie", message="Un devis ?")
    assert response.status_code == 422
    assert "Give an email or a phone number." in response.text
    assert 'value="Pierre Curie"' in response.text and "Un devis ?" in response.text
    too_long = _post(client, web_form, name="x" * 201)
    assert too_long.status_code == 422
    bad_email = _post(client, web_form, email="not an address")
    assert bad_email.status_code == 422 and 'value="not an address"' in bad_email.text
    assert count(Contact) == 0


def test_each_address_is_limited(client, web_form, data_app):
    statuses = [_post(client, web_form, email=f"p{i}@example.com").status_code for i in range(6)]
    assert statuses == [303] * 5 + [429]
    blocked = _post(client, web_form, email="late@example.com")
    assert blocked.status_code == 429
    assert "Please wait a few minutes" in blocked.text
    # Another address is not held up by the first.
    assert _post(client, web_form, address="10.2.2.2", email="other@example.com").status_code == 303
    assert count(Contact) == 6


def test_redirects_go_to_http_addresses_only(as_role, client, web_form):
    admin, _ = as_role("admin")
    refused = admin.post(
        f"/leads/forms/{web_form.id}",
        data={
            f"edit-{web_form.id}-name": "Contact us",
            f"edit-{web_form.id}-source": "web_form",
            f"edit-{web_form.id}-redirect_url": "javascript://x/%0Aalert(1)",
            f"edit-{web_form.id}-active": "y",
        },
    )
    assert refused.status_code == 422 and "Only http:// or https:// addresses." in refused.text
    assert "javascript" in refused.text  # the input kept
    saved = admin.post(
        f"/leads/forms/{web_form.id}",
        data={
            f"edit-{web_form.id}-name": "Contact us",
            f"edit-{web_form.id}-source": "campaign",
            f"edit-{web_form.id}-redirect_url": "https://www.example.com/merci",
            f"edit-{web_form.id}-active": "y",
        },
    )
    assert saved.status_code in (200, 303)
    response = _post(client, web_form)
    assert response.headers["Location"] == "https://www.example.com/merci"
    assert db.session.scalars(select(Contact)).one().source == "campaign"
    # The hosted page lets its form go on to that site, and still refuses to be framed.
    policy = client.get(f"/leads/f/{web_form.token}").headers["Content-Security-Policy"]
    assert "form-action 'self' https://www.example.com" in policy
    assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy
    # A stored address that is not http(s) is never followed.
    db.session.get(LeadForm, web_form.id).redirect_url = "data:text/html,hi"
    db.session.commit()
    response = _post(client, web_form, email="again@example.com")
    assert response.headers["Location"].endswith("/thanks")


def test_the_form_needs_no_csrf_token_but_other_tokens_do(csrf_app, ctx, web_form):
    client = csrf_app.test_client()
    response = _post(client, web_form)
    assert response.status_code == 303 and count(Contact) == 1
    assert client.post("/leads/f/not-a-form", data={"email": "x@example.com"}).status_code == 400


# ---- scoring rules -----------------------------------------------------------------------------


@pytest.mark.parametrize(("role", "status"), [("admin", 200), ("manager", 200), ("sales", 403)])
def test_rule_pages_are_for_admins_and_managers(as_role, role, status):
    client, _ = as_role(role)
    for url in ("/leads/scoring", "/leads/routing", "/leads/forms"):
        assert client.get(url).status_code == status, url
    assert client.get("/leads").status_code == 200


def test_support_and_technicians_have_no_hot_list(as_role):
    for role in ("support", "technician"):
        client, _ = as_role(role)
        assert client.get("/leads").status_code == 403


def _rescore_jobs():
    default = queue("default")
    return [default.fetch_job(i).func_name for i in default.job_ids]


def test_scoring_rules_are_added_edited_moved_and_deleted(as_role):
    client, _ = as_role("manager")
    headers = htmx_headers("div#scoring-panel")
    added = client.post(
        "/leads/scoring",
        data={
            "rule_type": "field",
            "field-name": "Big company",
            "field-field": "company.employees",
            "field-op": "gt",
            "field-value": "50",
            "field-points": "20",
            "field-active": "y",
        },
        headers=headers,
    )
    assert added.status_code == 200 and "<html" not in added.text
    assert "Big company" in added.text and "+20" in added.text
    assert "crm.jobs.lead_scoring.rescore_all_leads" in _rescore_jobs()
    client.post(
        "/leads/scoring",
        data={
            "rule_type": "inactive",
            "inactive-name": "Silent",
            "inactive-days": "30",
            "inactive-points": "-10",
            "inactive-active": "y",
        },
        headers=headers,
    )
    big, silent = db.session.scalars(select(ScoringRule).order_by(ScoringRule.position)).all()
    assert big.condition == {
        "type": "field",
        "field": "company.employees",
        "op": "gt",
        "value": "50",
    }
    assert silent.condition == {"type": "inactive", "days": 30} and silent.points == -10

    edit = client.get(f"/leads/scoring/{big.id}/edit", headers=headers)
    assert 'value="Big company"' in edit.text
    client.post(
        f"/leads/scoring/{big.id}",
        data={
            f"edit-{big.id}-name": "Very big company",
            f"edit-{big.id}-field": "company.employees",
            f"edit-{big.id}-op": "gt",
            f"edit-{big.id}-value": "500",
            f"edit-{big.id}-points": "30",
        },
        headers=headers,
    )
    client.post(f"/leads/scoring/{silent.id}/move", data={"direction": "up"}, headers=headers)
    db.session.expire_all()
    assert (big.name, big.points, big.active, big.condition["value"]) == (
        "Very big company",
        30,
        False,
        "500",
    )
    names = [r.name for r in db.session.scalars(select(ScoringRule).order_by(ScoringRule.position))]
    assert names == ["Silent", "Very big company"]
    client.post(f"/leads/scoring/{big.id}/delete", headers=headers)
    assert count(ScoringRule) == 1


def test_a_rule_with_errors_answers_422_keeps_its_input_and_saves_nothing(as_role):
    client, _ = as_role("admin")
    response = client.post(
        "/leads/scoring",
        data={
            "rule_type": "activity",
            "activity-name": "Opened",
            "activity-activity": "email_opened",
            "activity-within_days": "0",
            "activity-points": "99999",
        },
        headers=htmx_headers("div#scoring-panel"),
    )
    assert response.status_code == 422
    assert 'value="Opened"' in response.text and 'value="99999"' in response.text
    assert response.text.count('class="error"') >= 2
    missing_value = client.post(
        "/leads/scoring",
        data={"rule_type": "field", "field-name": "X", "field-field": "title", "field-points": "5"},
    )
    assert (
        missing_value.status_code == 422 and "Give the value to compare with." in missing_value.text
    )
    assert client.post("/leads/scoring", data={"rule_type": "magic"}).status_code == 400
    assert count(ScoringRule) == 0


# ---- routing rules -------------------------------------------------------------------------------


def test_routing_rules_and_their_dry_run(as_role, team):
    the_team, reps = team
    client, _ = as_role("admin")
    headers = htmx_headers("div#routing-panel")
    lyon = make_user(role="sales", name="Lyon Rep")
    db.session.commit()
    response = client.post(
        "/leads/routing",
        data={
            "new-name": "Rhône",
            "new-countries": "France",
            "new-regions": "ARA",
            "new-postcode_prefixes": "69, 38",
            "new-min_employees": "10",
            "new-owner": str(lyon.id),
            "new-active": "y",
        },
        headers=headers,
    )
    assert response.status_code == 200, response.text
    rule = db.session.scalars(select(RoutingRule)).one()
    assert rule.conditions == {
        "countries": ["FR"],
        "regions": ["ARA"],
        "postcode_prefixes": ["69", "38"],
        "min_employees": 10,
    }
    assert rule.owner_id == lyon.id and rule.position == 0

    tried = client.post(
        "/leads/routing/dry-run",
        data={"country": "France", "postcode": "69003", "employees": "40", "score": "0"},
        headers=htmx_headers("div#dry-run"),
    )
    assert "Would go to Lyon Rep" in tried.text and "Auvergne-Rhône-Alpes" in tried.text
    elsewhere = client.post(
        "/leads/routing/dry-run",
        data={"country": "France", "postcode": "13001", "employees": "40"},
        headers=htmx_headers("div#dry-run"),
    )
    assert f"Would go to {reps[0].name}" in elsewhere.text
    assert "round-robin in Sales France" in elsewhere.text
    db.session.expire_all()
    assert all(u.last_lead_assigned_at is None for u in db.session.scalars(select(User)))
    assert count(Contact) == 0


def test_a_routing_rule_needs_a_target_and_known_countries(as_role):
    client, _ = as_role("manager")
    response = client.post(
        "/leads/routing",
        data={"new-name": "Nowhere", "new-countries": "Atlantis", "new-min_employees": "-4"},
        headers=htmx_headers("div#routing-panel"),
    )
    assert response.status_code == 422
    assert "Choose a person or a team." in response.text
    assert "Unknown country: Atlantis" in response.text and 'value="Atlantis"' in response.text
    assert count(RoutingRule) == 0


def test_routing_rules_edit_move_delete(as_role, team):
    the_team, _reps = team
    client, _ = as_role("admin")
    first = RoutingRule(name="First", position=0, team=the_team, conditions={})
    second = RoutingRule(name="Second", position=1, team=the_team, conditions={"min_score": 5})
    db.session.add_all([first, second])
    db.session.commit()
    headers = htmx_headers("div#routing-panel")
    assert 'value="Second"' in client.get(f"/leads/routing/{second.id}/edit", headers=headers).text
    client.post(
        f"/leads/routing/{second.id}",
        data={
            f"edit-{second.id}-name": "Hot",
            f"edit-{second.id}-min_score": "50",
            f"edit-{second.id}-team": str(the_team.id),
            f"edit-{second.id}-active": "y",
        },
        headers=headers,
    )
    client.post(f"/leads/routing/{second.id}/move", data={"direction": "up"}, headers=headers)
    db.session.expire_all()
    assert second.name == "Hot" and second.conditions == {"min_score": 50}
    order = db.session.scalars(select(RoutingRule.name).order_by(RoutingRule.position)).all()
    assert order == ["Hot", "First"]
    client.post(f"/leads/routing/{first.id}/delete", headers=headers)
    assert count(RoutingRule) == 1


# ---- web forms -----------------------------------------------------------------------------------


def test_a_new_web_form_shows_its_code_and_hosted_page(as_role, data_app):
    client, _ = as_role("admin")
    response = client.post(
        "/leads/forms",
        data={"new-name": "Demo request", "new-source": "web_form", "new-active": "y"},
        headers=htmx_headers("div#forms-panel"),
    )
    assert response.status_code == 200
    lead_form = db.session.scalars(select(LeadForm)).one()
    url = data_app.config["BASE_URL"].rstrip("/") + f"/leads/f/{lead_form.token}"
    assert url in response.text
    # The snippet is shown as text: escaped, never live HTML on our page.
    assert f"&lt;form method=&#34;post&#34; action=&#34;{url}&#34;" in response.text
    assert "name=&#34;website&#34;" in response.text
    assert client.post("/leads/forms", data={"new-name": ""}).status_code == 422
    client.post(f"/leads/forms/{lead_form.id}/delete")
    assert count(LeadForm) == 0


# ---- the hot list ----------------------------------------------------------------------------------


def _leads(owner, scores, source="web_form"):
    return [make_contact(owner=owner, score=s, source=source, score_reasons=[]) for s in scores]


def test_the_hot_list_orders_by_score_and_filters(as_role):
    client, rep = as_role("sales")
    other = make_user(role="sales")
    mine = _leads(rep, [10, 80, 40])
    _leads(other, [90])
    make_contact(owner=rep, score=100, stage="customer")
    make_contact(owner=rep, score=60, stage="prospect", source="quick_add")
    mine[1].score_reasons = [{"rule_id": 1, "name": "Big company", "points": 80}]
    db.session.commit()
    page = client.get("/leads").text
    scores = [int(s) for s in re.findall(r'class="score-badge[^"]*">(-?\d+)<', page)]
    assert scores == [80, 60, 40, 10]  # mine, leads and prospects, by score
    assert "Big company +80" in page
    everyone = client.get("/leads?scope=all").text
    assert [int(s) for s in re.findall(r'class="score-badge[^"]*">(-?\d+)<', everyone)] == [
        90,
        80,
        60,
        40,
        10,
    ]
    hot = client.get("/leads?scope=all&min_score=50", headers=htmx_headers("tbody#lead-rows"))
    assert "<html" not in hot.text
    assert re.findall(r'class="score-badge[^"]*">(-?\d+)<', hot.text) == ["90", "80", "60"]
    by_hand = client.get("/leads?scope=mine&source=manual").text
    assert re.findall(r'class="score-badge[^"]*">(-?\d+)<', by_hand) == ["60"]


def test_a_manager_sees_the_team_leads_first(as_role):
    team = make_team()
    client, manager = as_role("manager", team=team)
    teammate = make_user(role="sales", team=team)
    _leads(teammate, [30])
    _leads(make_user(role="sales", team=make_team()), [70])
    db.session.commit()
    page = client.get("/leads").text
    assert re.findall(r'class="score-badge[^"]*">(-?\d+)<', page) == ["30"]


def test_the_hot_list_pages_by_keyset(app, as_role):
    client, rep = as_role("sales")
    _leads(rep, [50] * 7 + [10] * 5)
    db.session.commit()
    size = app.config["PAGE_SIZE"]
    app.config["PAGE_SIZE"] = 5
    pages = 0
    try:
        seen, url = [], "/leads"
        while url:
            page = client.get(url, headers=htmx_headers("tr#load-more") if seen else {})
            seen += re.findall(r'href="/contacts/(\d+)"', page.text)
            pages += 1
            more = re.search(r'id="load-more" hx-get="([^"]+)"', page.text)
            url = more.group(1).replace("&amp;", "&") if more else None
    finally:
        app.config["PAGE_SIZE"] = size
    assert pages == 3
    assert len(seen) == len(set(seen)) == 12


def test_the_hot_list_runs_a_bounded_number_of_queries(as_role):
    client, rep = as_role("sales")
    company = make_company()
    for owner in (rep, make_user(), make_user()):
        for i in range(4):
            make_contact(owner=owner, score=i, company=company)
    db.session.commit()
    small = int(client.get("/leads?scope=all").headers["X-SQL-Queries"])
    for n in range(150):
        owner = make_user() if n % 10 == 0 else rep
        make_contact(owner=owner, score=n, company=make_company() if n % 3 else company)
    db.session.commit()
    large = int(client.get("/leads?scope=all").headers["X-SQL-Queries"])
    assert large == small <= 6


# ---- the contact page -------------------------------------------------------------------------------


def test_the_contact_page_shows_the_score_its_reasons_and_the_routing(as_role, web_form):
    client, _ = as_role("sales")
    db.session.add(
        ScoringRule(
            name="Sent a form",
            points=15,
            condition={"type": "activity", "kind": "web_form", "within_days": 30},
        )
    )
    db.session.commit()
    _post(client, web_form)
    contact = db.session.scalars(select(Contact)).one()
    page = client.get(f"/contacts/{contact.id}").text
    assert "Lead score" in page and ">15<" in page
    assert "+15</span> Sent a form" in page
    assert "Routed: No rule matched: round-robin in Sales France" in page
    assert "Source: Web form" in page


def test_a_customer_without_routing_has_no_score_panel(as_role):
    client, _ = as_role("sales")
    contact = make_contact(stage="customer")
    db.session.commit()
    assert "Lead score" not in client.get(f"/contacts/{contact.id}").text
