"""Checks that walk the whole URL map, so that a route added later is covered too.

- CSRF: every mutating route refuses a request without the token, or with a wrong one.
- GET never changes anything: a snapshot of every table is the same after every GET
  route was opened, as each role.
- Bad input: every mutating route, given hostile values in every field, answers without
  a server error, and when it refuses (4xx) it has saved nothing, not even half-way.
- Record-level access (IDOR): a record out of the user's scope, asked for by id on any
  route, gives 403 or 404 and stays as it was.
- Field-level access: support never sees a deal amount, on any page, fragment or download.

The route x role matrix is tests/test_route_permissions.py; login brute force is
tests/blueprints/test_auth.py (test_failures_on_one_account_from_one_address_are_limited:
429 for the attacker's address, the real user still signs in) and, for the second step,
tests/security/test_two_factor.py.
"""

import hashlib
import json
import re

import pytest

from crm.extensions import db
from crm.models import Deal, DealLine
from crm.models.users import ROLES
from crm.permissions import POLICY, PUBLIC
from tests.factories import (
    make_activity,
    make_company,
    make_contact,
    make_deal,
    make_event,
    make_product,
    make_task,
    make_team,
    make_user,
    start_session,
)
from tests.test_route_permissions import SESSION_ENDING, _rules, _url

MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
# Bookkeeping that reading a page may write: when the session was last seen (at most
# once a minute), not data.
BOOKKEEPING = {("user_session", "last_seen_at")}


def _records(owner=None):
    """One of each kind of record, a deal, an event, a task owned by `owner`; ids for _url()."""
    from crm.services import calendar_feed
    from tests.factories import make_incident, make_intervention
    from tests.test_route_permissions import (
        _campaign_records,
        _data_import,
        _email_template,
        _holiday,
        _lead_records,
        _mail_records,
        _next_monday_nine,
        _notification,
    )

    owner = owner or make_user(role="sales")
    company = make_company()
    contact = make_contact(company=company)
    make_activity(contact, body="A note")
    deal = make_deal(owner=owner, contact=contact, company=company)
    line = DealLine(deal=deal, description="Line", quantity=1, unit_price=10)
    db.session.add(line)
    other = make_user(role="sales")
    start_session(other)
    db.session.flush()
    return {
        "contact": contact.id,
        "company": company.id,
        "user": other.id,
        "session": other.current_session.id,
        "deal": deal.id,
        "line": line.id,
        "product": make_product().id,
        "pipeline": deal.pipeline_id,
        "stage": deal.stage_id,
        "feed": calendar_feed.create_user_feed(owner).id,
        "team": make_team().id,
        "event": make_event(owner).id,
        "task": make_task(owner).id,
        "notification": _notification(owner).id,
        "incident": make_incident(contact).id,
        "template": _email_template().id,
        "intervention": make_intervention(technicians=[owner], start=_next_monday_nine()).id,
        "holiday": _holiday().id,
        **_mail_records(owner),
        **_lead_records(),
        "import": _data_import(owner),
        **_campaign_records(owner),
    }


def _snapshot() -> dict:
    """{table: sha256 of its rows}, bookkeeping columns left out."""
    result = {}
    with db.engine.connect() as conn:
        for table in db.metadata.sorted_tables:
            columns = [c for c in table.columns if (table.name, c.name) not in BOOKKEEPING]
            rows = conn.execute(db.select(*columns).order_by(*table.primary_key.columns)).all()
            result[table.name] = hashlib.sha256(repr(rows).encode()).hexdigest()
    return result


def _changed(before: dict, after: dict) -> list[str]:
    return [name for name in before if before[name] != after[name]]


# ---- CSRF ----------------------------------------------------------------------------------


@pytest.mark.parametrize("token", ["missing", "wrong"])
def test_every_mutating_route_refuses_a_missing_or_wrong_csrf_token(csrf_app, ctx, token):
    admin = make_user(role="admin")
    ids = _records()
    session_token = start_session(admin)
    db.session.commit()
    client = csrf_app.test_client()
    with client.session_transaction() as cookie:
        cookie["_user_id"] = session_token
    client.get("/")  # a session with a real CSRF secret in it
    headers = {"X-CSRFToken": "forged.token.value"} if token == "wrong" else {}
    data = {"csrf_token": "forged.token.value"} if token == "wrong" else {}
    before = _snapshot()
    checked = []
    for rule in _rules(csrf_app):
        for method in sorted(rule.methods & MUTATING):
            response = client.open(_url(rule, ids), method=method, data=data, headers=headers)
            assert response.status_code == 400, f"{method} {rule.rule}: {response.status_code}"
            checked.append(rule.rule)
    assert len(checked) > 40
    assert "/login" in checked and "/contacts/<int:contact_id>/erase" in checked
    assert _changed(before, _snapshot()) == []


# ---- GET never changes anything ------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_no_get_route_changes_anything(app, as_role, role):
    client, user = as_role(role)
    ids = _records(owner=user)
    db.session.commit()
    before = _snapshot()
    walked = 0
    for rule in _rules(app):
        if "GET" in rule.methods:
            for headers in ({}, {"HX-Request": "true", "HX-Request-Type": "partial"}):
                response = client.get(_url(rule, ids), headers=headers)
                assert response.status_code < 500, f"GET {rule.rule}: {response.status_code}"
                walked += 1
    assert walked > 40
    assert _changed(before, _snapshot()) == []


# ---- bad input -------------------------------------------------------------------------------

FIELDS = [
    "active",
    "amount",
    "body",
    "city",
    "code",
    "company",
    "confirm",
    "confirm_duplicate",
    "contact",
    "copy_from",
    "country",
    "currency",
    "current",
    "description",
    "discount",
    "email",
    "employees",
    "expected_close",
    "first_name",
    "industry",
    "kind",
    "last_name",
    "linkedin_url",
    "locale",
    "lost_reason",
    "milestone",
    "move_to",
    "name",
    "outcome",
    "owner",
    "password",
    "phone",
    "pipeline",
    "postcode",
    "probability",
    "product_id",
    "quantity",
    "remember",
    "return_to",
    "role",
    "roles",
    "source",
    "stage",
    "stage_id",
    "stall_days",
    "street",
    "team",
    "timezone",
    "title",
    "unit_cost",
    "unit_price",
    "version",
    "website",
    "value",
    "consent_status",
    "unsubscribed",
    "format",
    "direction",
    "id",
    "keep_company",
    "period",
    "target",
    "code",
]
HOSTILE = [
    "x" * 5000,
    "-1",
    "1e309",
    "not a number",
    "'; DROP TABLE contact; --",
    "<script>alert(1)</script>",
    "\x00",
    "9" * 40,
]


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_every_form_refuses_bad_input_and_saves_nothing_half_way(app, as_role, value):
    client, admin = as_role("admin")
    ids = _records(owner=admin)
    db.session.commit()
    data = {name: value for name in FIELDS}
    for rule in _rules(app):
        if rule.endpoint in SESSION_ENDING:
            continue
        for method in sorted(rule.methods & MUTATING):
            before = _snapshot()
            response = client.open(_url(rule, ids), method=method, data=data)
            assert response.status_code < 500, f"{method} {rule.rule} {value[:20]!r}: 500"
            if 400 <= response.status_code < 500:
                changed = [t for t in _changed(before, _snapshot()) if t != "audit_log"]
                assert changed == [], f"{method} {rule.rule} refused but changed {changed}"


def test_a_body_over_the_size_limit_is_refused(app, as_role):
    client, _ = as_role("sales")
    too_big = app.config["MAX_CONTENT_LENGTH"] + 1
    response = client.post("/contacts", data={"first_name": "x" * too_big})
    assert response.status_code == 413
    assert "The file is too large." in response.text


# ---- record-level access (IDOR) ---------------------------------------------------------------


# What a user of each role may not reach of a rep of another team, by route parameter.
HIDDEN_FROM_EVERYONE = {
    "deal_id",
    "line_id",
    "task_id",  # assigned to and made by the stranger
    "notification_id",
    "feed_id",  # the stranger's calendar feed
    "session_id",  # another user's session
    "message_id",  # a private message of the stranger's
    "attachment_id",
    "mailbox_id",  # a shared mailbox: admins manage it
    "quarantine_id",
    "segment_id",  # a segment the stranger did not share
}
HIDDEN = {
    "manager": HIDDEN_FROM_EVERYONE,
    "support": HIDDEN_FROM_EVERYONE,
    # Incidents of customers they do not own.
    "sales": HIDDEN_FROM_EVERYONE | {"incident_id"},
    # Only the customers, incidents and visits they are booked on.
    "technician": HIDDEN_FROM_EVERYONE
    | {"incident_id", "contact_id", "company_id", "intervention_id"},
}


def _out_of_scope() -> tuple[dict, list[str]]:
    """Records of a rep of another team, with the texts that must not show, not even in an
    error page: a deal, a task, a private event, a private message, a private segment..."""
    from crm.models import EmailMessage, Event, Segment, Task

    stranger = make_user(role="sales", team=make_team())
    ids = _records(owner=stranger)
    message = db.session.get(EmailMessage, ids["message"])
    message.privacy, message.subject = "private", "Stranger's private subject"
    event = db.session.get(Event, ids["event"])
    event.private, event.title = True, "Stranger's private meeting"
    segment = db.session.get(Segment, ids["segment"])
    segment.shared, segment.name = False, "Stranger's own segment"
    deal = db.session.get(Deal, ids["deal"])
    secrets = [
        deal.title,
        db.session.get(Task, ids["task"]).title,
        event.title,
        message.subject,
        segment.name,
    ]
    return ids, secrets


@pytest.mark.parametrize("role", ["manager", "sales", "support", "technician"])
def test_records_of_another_team_cannot_be_read_or_changed_by_id(app, as_role, role):
    client, user = as_role(role, team=make_team())
    ids, secrets = _out_of_scope()
    db.session.commit()
    before = _snapshot()
    hidden = HIDDEN[role]
    data = {"title": "Taken", "amount": "1", "value": "x", "response": "accepted"}
    walked = set()
    for rule in _rules(app):
        if rule.endpoint in SESSION_ENDING:
            continue
        by_id = set(rule.arguments) & hidden
        # Anybody sees when a colleague is busy; a private event's details and changes are
        # for its people.
        event = "key" in rule.arguments
        if not by_id and not event:
            continue
        permission = app.view_functions[rule.endpoint].permission
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = client.open(_url(rule, ids), method=method, data=data)
            walked.add(f"{method} {rule.rule}")
            if by_id or method != "GET":
                assert response.status_code in (403, 404), (
                    f"{role} {method} {rule.rule} ({permission}): {response.status_code}"
                )
            text = response.get_data().decode("utf-8", errors="replace")
            for secret in secrets:
                assert secret not in text, f"{role} {method} {rule.rule}: {secret!r}"
    assert len(walked) >= 40
    changed = [t for t in _changed(before, _snapshot()) if t not in ("audit_log",)]
    assert changed == []


def test_a_manager_sees_their_team_deals_only(as_role):
    client, manager = as_role("manager", team=make_team())
    teammate = make_user(role="sales", team=manager.team)
    mine = make_deal(owner=teammate, title="Team deal")
    theirs = make_deal(owner=make_user(role="sales", team=make_team()), title="Other team deal")
    db.session.commit()
    assert client.get(f"/deals/{mine.id}").status_code == 200
    assert client.get(f"/deals/{theirs.id}").status_code == 404
    listing = client.get("/deals?view=list").text
    assert "Team deal" in listing and "Other team deal" not in listing


def test_sessions_of_another_user_are_out_of_reach(as_role):
    client, _ = as_role("admin")  # even for an admin: a session belongs to its user
    victim = make_user()
    start_session(victim)
    db.session.commit()
    assert client.post(f"/settings/sessions/{victim.current_session.id}/revoke").status_code == 404


# ---- field-level access: support never sees deal amounts ------------------------------------

AMOUNT = "987654.32"
AMOUNT_FORMS = re.compile(r"987[\s,.\u00a0\u202f]?654")


def test_support_never_sees_a_deal_amount(app, as_role):
    client, agent = as_role("support")
    rep = make_user(role="sales")
    company = make_company("Amountco")
    contact = make_contact("Zed", "Amount", company=company)
    deal = make_deal(
        owner=rep, contact=contact, company=company, amount=AMOUNT, title="Secret value"
    )
    make_activity(contact, deal=deal, kind="note", body=f"Quoted {AMOUNT} EUR")
    db.session.commit()
    ids = _records()
    # The support records of that customer: its incident and the visit booked for it.
    from tests.factories import make_incident, make_intervention

    incident = make_incident(contact, subject="Invoice question")
    ids.update(
        contact=contact.id,
        company=company.id,
        deal=deal.id,
        incident=incident.id,
        intervention=make_intervention(incident).id,
    )
    db.session.commit()
    pages = 0
    for rule in _rules(app):
        permission = app.view_functions[rule.endpoint].permission
        if "GET" not in rule.methods or (
            permission != PUBLIC and "support" not in POLICY[permission]
        ):
            continue
        for headers in ({}, {"HX-Request": "true", "HX-Request-Type": "partial"}):
            response = client.get(_url(rule, ids), headers=headers)
            pages += 1
            # Some answers are bytes (the open-tracking pixel): decoded leniently, searched all the same.
            text = response.get_data().decode("utf-8", errors="replace")
            assert not AMOUNT_FORMS.search(text), f"amount on {rule.rule}"
    for q in ("Amount", "Zed", "Amountco", "987", "Secret"):
        assert not AMOUNT_FORMS.search(client.get(f"/search?q={q}").text)
    # Every tab of the dashboard, over a period that holds the deal.
    from crm.services.dashboards import tabs_for

    for tab in tabs_for(agent):
        response = client.get(f"/dashboard?tab={tab}&period=this_year")
        assert response.status_code == 200 and not AMOUNT_FORMS.search(response.text), tab
    # Every list support may export, in each format (an XLSX is a zip: read its sheet).
    exported = 0
    for entity in ("contacts", "companies", "incidents", "deals"):
        for fmt in ("csv", "xlsx"):
            response = client.post(f"/exports/{entity}.{fmt}?view=all")
            if entity == "deals":
                assert response.status_code == 403
                continue
            assert response.status_code == 200, f"{entity}.{fmt}"
            text = _readable(response.get_data(), fmt)
            assert "Amountco" in text and not AMOUNT_FORMS.search(text), f"{entity}.{fmt}"
            exported += 1
    assert exported == 6 and pages > 10
    # And no export is open to support (an admin's export shows it: the check is real).
    assert (
        client.post(f"/contacts/{contact.id}/personal-data", data={"format": "json"}).status_code
        == 403
    )
    admin, _ = as_role("admin")
    data = json.loads(
        admin.post(f"/contacts/{contact.id}/personal-data", data={"format": "json"}).text
    )
    assert any(d.get("amount") == AMOUNT for d in data["deals"])
    # The contact page shows support the contact but no deal section at all.
    assert "Secret value" not in client.get(f"/contacts/{contact.id}").text


def _readable(content: bytes, fmt: str) -> str:
    """An export's text: the CSV itself, or the cells of an XLSX's sheets."""
    if fmt == "csv":
        return content.decode("utf-8-sig")
    import io
    import zipfile

    with zipfile.ZipFile(io.BytesIO(content)) as book:
        return " ".join(
            book.read(name).decode() for name in book.namelist() if name.startswith("xl/")
        )


def test_amounts_follow_the_permission_not_the_role_name(app, as_role, monkeypatch):
    client, rep = as_role("sales")
    contact = make_contact()
    make_deal(owner=rep, contact=contact, amount=AMOUNT)
    db.session.commit()
    assert AMOUNT_FORMS.search(client.get(f"/contacts/{contact.id}").text)
    monkeypatch.setitem(POLICY, "deals.see_amounts", frozenset({"admin", "manager"}))
    assert not AMOUNT_FORMS.search(client.get(f"/contacts/{contact.id}").text)
