"""The audit log (ASVS V16): who created, changed (before/after), exported or deleted what,
logins and role changes; append-only in the database; an admin page with filters."""

import io
from decimal import Decimal

import pytest
from rq import Queue
from sqlalchemy.exc import DatabaseError

from crm.extensions import db
from crm.models import AuditLog, Contact, DataImport, Deal
from crm.models.types import utcnow
from tests.conftest import htmx_headers
from tests.factories import PASSWORD, make_contact, make_deal, make_user
from worker import InProcessWorker, worker_connection


def _entries(**where):
    db.session.expire_all()
    query = db.select(AuditLog).order_by(AuditLog.id)
    for key, value in where.items():
        query = query.where(getattr(AuditLog, key) == value)
    return list(db.session.scalars(query))


def test_create_change_and_delete_of_a_contact_are_logged_with_who_and_before_after(as_role):
    client, manager = as_role("manager")
    client.post(
        "/contacts", data={"first_name": "Anne", "last_name": "Roy", "email": "anne@example.com"}
    )
    contact = db.session.scalars(db.select(Contact)).one()
    client.post(f"/contacts/{contact.id}/fields/email", data={"value": "anne@new.example"})
    client.post(f"/contacts/{contact.id}/delete")
    created, changed, deleted = _entries(entity_type="contact", entity_id=contact.id)
    assert (created.action, changed.action, deleted.action) == ("create", "update", "delete")
    assert created.changes["email"] == [None, "anne@example.com"]
    assert changed.changes == {"email": ["anne@example.com", "anne@new.example"]}
    assert deleted.changes["email"] == ["anne@new.example", None]
    assert {e.actor_id for e in (created, changed, deleted)} == {manager.id}
    assert manager.email in created.actor_label
    assert created.ip == "127.0.0.1"
    # Derived search keys and timestamps are noise, not history.
    assert "search_text" not in created.changes and "updated_at" not in changed.changes


def test_deal_amount_changes_are_logged(as_role):
    client, rep = as_role("sales")
    deal = make_deal(owner=rep, amount="100")
    db.session.commit()
    deal.amount = Decimal("250.00")  # after a commit: the value it replaces is loaded for the log
    db.session.commit()
    entry = _entries(entity_type="deal", action="update")[-1]
    assert entry.changes["amount"] == ["100.00", "250.00"]


def test_secrets_never_reach_the_log(as_role):
    client, user = as_role("sales")
    client.post("/settings/two-factor/start")
    client.post(
        "/settings/password",
        data={"current": PASSWORD, "password": "another long one", "confirm": "another long one"},
    )
    text = " ".join(str(e.changes) for e in _entries())
    db.session.refresh(user)
    assert user.password_hash not in text and "password_hash" not in text
    assert "totp_secret" not in text and "security_stamp" not in text
    assert _entries(action="password_change")[0].actor_id == user.id


def test_sign_ins_failures_and_sign_outs_are_logged(client):
    user = make_user(email="rep@example.com")
    db.session.commit()
    client.post("/login", data={"email": "rep@example.com", "password": "wrong"})
    client.post("/login", data={"email": "rep@example.com", "password": PASSWORD})
    client.post("/logout")
    failed, login, logout = [e for e in _entries() if e.action != "create"]
    assert (
        failed.action == "login_failed"
        and failed.actor_id is None
        and failed.summary == "rep@example.com"
    )
    assert (login.action, login.actor_id, login.entity_id) == ("login", user.id, user.id)
    assert (logout.action, logout.actor_id) == ("logout", user.id)


def test_role_changes_are_logged_as_such(as_role):
    admin_client, admin = as_role("admin")
    rep = make_user(role="sales")
    db.session.commit()
    admin_client.post(
        f"/admin/users/{rep.id}/role", data={"role": "manager"}, headers=htmx_headers()
    )
    entry = _entries(action="role_change")[0]
    assert (entry.entity_id, entry.actor_id, entry.changes) == (
        rep.id,
        admin.id,
        {"role": ["sales", "manager"]},
    )


def test_settings_changes_are_logged(as_role):
    admin_client, _ = as_role("admin")
    admin_client.post("/admin/security", data={"roles": ["admin"]})
    entry = _entries(entity_type="security_setting")[0]
    assert entry.changes["value"] == [None, ["admin"]]


def test_a_rolled_back_change_leaves_no_entry(ctx):
    contact = make_contact()
    db.session.rollback()
    assert _entries(entity_type="contact") == []
    assert db.session.get(Contact, contact.id) is None


@pytest.mark.parametrize(
    "statement", ["UPDATE audit_log SET summary = 'forged'", "DELETE FROM audit_log"]
)
def test_the_database_refuses_to_edit_or_delete_an_entry(ctx, statement):
    make_contact()
    db.session.commit()
    with pytest.raises(DatabaseError, match="append-only"):
        db.session.execute(db.text(statement))
        db.session.flush()
    db.session.rollback()
    assert _entries()[0].summary != "forged"


def test_only_a_one_time_redaction_is_allowed(ctx):
    make_contact()
    db.session.commit()
    entry = _entries()[0]
    entry.changes, entry.summary, entry.redacted_at = (
        {"email": ["[erased]", None]},
        "Erased",
        utcnow(),
    )
    db.session.commit()
    entry.summary = "again"
    with pytest.raises(DatabaseError, match="append-only"):
        db.session.commit()
    db.session.rollback()


def test_no_route_writes_to_the_audit_log_page(app):
    rules = [rule for rule in app.url_map.iter_rules() if rule.rule.startswith("/admin/audit")]
    assert rules and all(rule.methods <= {"GET", "HEAD", "OPTIONS"} for rule in rules)


def test_admin_page_filters_and_shows_before_after(as_role):
    admin_client, admin = as_role("admin")
    rep = make_user(role="sales", name="Rita Rep")
    deal = make_deal(owner=rep, title="Big deal")
    db.session.commit()
    deal.title = "Bigger deal"
    db.session.commit()
    page = admin_client.get("/admin/audit?entity_type=deal&action=update")
    assert page.status_code == 200
    assert "<del>Big deal</del>" in page.text and "<ins>Bigger deal</ins>" in page.text
    assert "Rita Rep" not in page.text.split("<tbody", 1)[1]  # user creations filtered out
    by_id = admin_client.get(f"/admin/audit?entity_type=user&entity_id={rep.id}")
    assert "Rita Rep" in by_id.text and "Bigger deal" not in by_id.text
    today = utcnow().date().isoformat()
    assert "Bigger deal" in admin_client.get(f"/admin/audit?date_from={today}&date_to={today}").text
    assert "Bigger deal" not in admin_client.get("/admin/audit?date_to=2000-01-01").text
    assert "Bigger deal" not in admin_client.get(f"/admin/audit?actor={admin.id}").text


def test_admin_page_pages_through_with_a_cursor(app, as_role):
    admin_client, _ = as_role("admin")
    for _ in range(app.config["PAGE_SIZE"] + 5):
        make_contact()
    db.session.commit()
    first = admin_client.get("/admin/audit?entity_type=contact")
    assert first.text.count('<tr id="audit-') == app.config["PAGE_SIZE"] + 1  # + the load-more row
    rows = admin_client.get(
        first.text.split('id="audit-more" hx-get="', 1)[1].split('"', 1)[0].replace("&amp;", "&"),
        headers=htmx_headers("tbody#audit-rows"),
    )
    assert "<html" not in rows.text and rows.text.count('<tr id="audit-') == 5


def test_audit_log_is_for_admins_only(as_role):
    for role in ("manager", "sales", "support", "technician"):
        client, _ = as_role(role)
        assert client.get("/admin/audit").status_code == 403
    assert Deal  # the model is imported for the factories


def test_agenda_and_support_records_are_logged_too(as_role):
    """Incidents, events, tasks and interventions opted in like the sales records."""
    from tests.factories import make_event, make_incident, make_intervention, make_task

    client, agent = as_role("support")
    incident = make_incident(make_contact(), priority="normal")
    event = make_event(agent, title="Call back")
    task = make_task(agent, title="Send the manual")
    visit = make_intervention(incident, title="Visit")
    db.session.commit()
    client.post(f"/incidents/{incident.id}/fields/priority", data={"value": "urgent"})
    updates = _entries(entity_type="incident", entity_id=incident.id, action="update")
    priority = next(e for e in updates if "priority" in e.changes)
    assert (priority.changes["priority"], priority.actor_id) == (["normal", "urgent"], agent.id)
    for entity_type, record in (("event", event), ("task", task), ("intervention", visit)):
        assert [e.action for e in _entries(entity_type=entity_type, entity_id=record.id)] == [
            "create"
        ], entity_type


def test_imports_merges_and_exports_are_logged_under_who_ran_them(app, as_role):
    """The bulk changes: each row an import creates, the import itself and its undo, a
    merge (the kept record and the one removed), a list export, all under the user's name."""
    client, manager = as_role("manager")
    client.post(
        "/imports",
        data={
            "entity": "contacts",
            "file": (io.BytesIO(b"Name,Email\nIda Imp,ida@x.example\n"), "p.csv"),
        },
        content_type="multipart/form-data",
    )
    data_import = db.session.scalars(db.select(DataImport)).one()
    started = client.post(
        f"/imports/{data_import.id}/start",
        data={
            "column-0": "name",
            "column-1": "email",
            "duplicate_policy": "skip",
            "source": "Fair",
        },
    )
    assert started.status_code in (200, 303)
    connection = worker_connection(app)
    InProcessWorker([Queue("imports", connection=connection)], connection=connection, app=app).work(
        burst=True
    )
    imported = db.session.scalars(db.select(Contact).where(Contact.email == "ida@x.example")).one()
    created = _entries(entity_type="contact", entity_id=imported.id, action="create")
    assert [e.actor_id for e in created] == [manager.id]
    assert [e.action for e in _entries(entity_type="data_import")] == ["create"]

    kept, other = make_contact("Kim", "Kept"), make_contact("Kim", "Other")
    db.session.commit()
    other_id = other.id
    assert client.post(f"/merge/contacts/{kept.id}/with/{other_id}").status_code in (200, 303)
    merged = _entries(entity_type="contact", entity_id=kept.id, action="update")
    assert any(e.summary.startswith("Merged") and e.actor_id == manager.id for e in merged)
    removed = _entries(entity_type="contact", entity_id=other_id, action="delete")
    assert [e.actor_id for e in removed] == [manager.id]

    assert client.post("/exports/contacts.csv").status_code == 200
    exported = _entries(action="export", entity_type="contact")
    assert [e.actor_id for e in exported] == [manager.id]

    assert client.post(f"/imports/{data_import.id}/undo").status_code in (200, 303)
    assert [e.action for e in _entries(entity_type="data_import")] == ["create", "delete"]
