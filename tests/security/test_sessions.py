"""Sessions (ASVS V7): one row per browser, listed, revocable one by one or all at once;
a password change or a deactivation ends the others at once; idle and absolute timeouts."""

import re
from datetime import timedelta

from crm.extensions import db
from crm.models import UserSession
from crm.models.types import utcnow
from crm.services import sessions
from tests.conftest import htmx_headers
from tests.factories import PASSWORD, make_user


def _sign_in(client, email, password=PASSWORD, remember=False, agent="Firefox/140.0 (X11; Linux)"):
    data = {"email": email, "password": password}
    if remember:
        data["remember"] = "y"
    return client.post("/login", data=data, headers={"User-Agent": agent})


def _rows(user):
    db.session.expire_all()
    return list(db.session.scalars(db.select(UserSession).where(UserSession.user_id == user.id)))


def test_each_sign_in_opens_its_own_session_and_stores_only_a_hash(app, client):
    user = make_user(email="rep@example.com")
    db.session.commit()
    laptop, phone = app.test_client(), app.test_client()
    assert _sign_in(laptop, "rep@example.com").status_code == 303
    assert (
        _sign_in(phone, "rep@example.com", agent="Mozilla/5.0 (iPhone) Safari/604.1").status_code
        == 303
    )
    rows = _rows(user)
    assert len(rows) == 2
    with laptop.session_transaction() as cookie:
        token = cookie["_user_id"]
    assert token not in {row.token_hash for row in rows}
    assert all(len(row.token_hash) == 64 for row in rows)
    assert {row.user_agent for row in rows} == {"Firefox · Linux", "Safari · iOS"}


def test_settings_list_my_sessions_and_mark_this_device(app, as_role, login):
    client, user = as_role("sales")
    login(app.test_client(), user)
    page = client.get("/settings").text
    assert page.count('id="session-') == 2
    assert page.count("this device") == 1


def test_revoke_one_session_from_the_list_signs_that_browser_out(app, as_role, login):
    client, user = as_role("sales")
    other = login(app.test_client(), user)
    other_row = max(_rows(user), key=lambda row: row.id)
    response = client.post(f"/settings/sessions/{other_row.id}/revoke", headers=htmx_headers())
    assert response.status_code == 200
    assert "signed out" in response.headers["HX-Trigger"]
    assert other.get("/contacts").status_code == 303
    assert client.get("/contacts").status_code == 200


def test_a_session_of_someone_else_cannot_be_revoked(app, as_role, login):
    client, _user = as_role("sales")
    victim = make_user()
    victim_client = login(app.test_client(), victim)
    row = _rows(victim)[0]
    assert client.post(f"/settings/sessions/{row.id}/revoke").status_code == 404
    assert victim_client.get("/").status_code == 200


def test_revoking_this_session_signs_me_out(as_role):
    client, user = as_role("sales")
    row = _rows(user)[0]
    response = client.post(f"/settings/sessions/{row.id}/revoke", headers=htmx_headers())
    assert response.headers["HX-Redirect"] == "/login"
    assert client.get("/").status_code == 303


def test_logout_revokes_the_session_row(as_role):
    client, user = as_role("sales")
    client.post("/logout")
    assert all(row.revoked_at is not None for row in _rows(user))


def test_a_password_change_signs_out_every_other_session(app, as_role, login):
    client, user = as_role("sales")
    other = login(app.test_client(), user)
    wrong = client.post(
        "/settings/password",
        headers=htmx_headers("section#password-card"),
        data={
            "current": "not it",
            "password": "a new long password",
            "confirm": "a new long password",
        },
    )
    assert wrong.status_code == 422
    assert "This is not your current password." in wrong.text
    assert other.get("/").status_code == 200
    mismatch = client.post(
        "/settings/password",
        headers=htmx_headers("section#password-card"),
        data={"current": PASSWORD, "password": "a new long password", "confirm": "another one!"},
    )
    assert mismatch.status_code == 422 and "The two passwords differ." in mismatch.text
    # Without JavaScript: back to the settings page, the reason shown there.
    plain = client.post("/settings/password", data={"current": "not it"})
    assert plain.status_code == 303
    assert "This field is required." in client.get("/settings").text
    done = client.post(
        "/settings/password",
        data={
            "current": PASSWORD,
            "password": "a new long password",
            "confirm": "a new long password",
        },
    )
    assert done.status_code == 303
    assert other.get("/").status_code == 303
    assert client.get("/").status_code == 200
    assert _sign_in(app.test_client(), user.email, "a new long password").status_code == 303


def test_deactivation_ends_every_session_at_once(app, as_role, login):
    admin, _ = as_role("admin")
    rep_client, rep = as_role("sales")
    phone = login(app.test_client(), rep)
    admin.post(f"/admin/users/{rep.id}/deactivate", headers=htmx_headers())
    assert rep_client.get("/").status_code == 303
    assert phone.get("/").status_code == 303
    assert all(row.revoked_at is not None for row in _rows(rep))


def test_idle_timeout(app, as_role):
    client, user = as_role("sales")
    row = _rows(user)[0]
    row.last_seen_at = utcnow() - timedelta(minutes=app.config["SESSION_IDLE_MINUTES"] + 1)
    db.session.commit()
    assert client.get("/").status_code == 303
    assert _rows(user)[0].revoked_at is not None


def test_remembered_session_has_no_idle_timeout_but_an_absolute_one(app, client):
    user = make_user(email="rep@example.com")
    db.session.commit()
    _sign_in(client, "rep@example.com", remember=True)
    row = _rows(user)[0]
    assert row.remember
    row.last_seen_at = utcnow() - timedelta(minutes=app.config["SESSION_IDLE_MINUTES"] + 1)
    db.session.commit()
    assert client.get("/").status_code == 200
    row = _rows(user)[0]
    row.created_at = utcnow() - timedelta(hours=app.config["SESSION_ABSOLUTE_HOURS"], minutes=1)
    db.session.commit()
    assert client.get("/").status_code == 303


def test_remember_cookie_lives_no_longer_than_the_absolute_timeout(app, client):
    make_user(email="rep@example.com")
    db.session.commit()
    response = _sign_in(client, "rep@example.com", remember=True)
    cookie = next(
        c for c in response.headers.getlist("Set-Cookie") if c.startswith("remember_token=")
    )
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    expires = re.search(r"Expires=([^;]+)", cookie).group(1)
    from email.utils import parsedate_to_datetime

    lifetime = parsedate_to_datetime(expires) - utcnow()
    assert lifetime <= timedelta(hours=app.config["SESSION_ABSOLUTE_HOURS"], minutes=1)


def test_last_seen_is_written_at_most_once_a_minute(as_role):
    client, user = as_role("sales")
    row = _rows(user)[0]
    first = row.last_seen_at
    client.get("/")
    assert _rows(user)[0].last_seen_at == first  # under a minute: no write
    row = _rows(user)[0]
    row.last_seen_at = utcnow() - timedelta(minutes=5)
    db.session.commit()
    client.get("/")
    assert _rows(user)[0].last_seen_at > utcnow() - timedelta(minutes=1)


def test_describe_agent():
    chrome = "Mozilla/5.0 (Windows NT 10.0) AppleWebKit/537.36 Chrome/130.0 Safari/537.36"
    assert sessions.describe_agent(chrome) == "Chrome · Windows"
    assert sessions.describe_agent(chrome + " Edg/130.0") == "Edge · Windows"
    assert sessions.describe_agent(None) == ""
