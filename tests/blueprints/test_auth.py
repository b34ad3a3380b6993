"""Signing in and out, rate limits, CSRF, invitations, ending sessions."""

import re

from crm.extensions import db
from crm.models import User
from crm.services import users
from tests.factories import PASSWORD, make_user, start_session


def _sign_in(client, email, password, address="10.0.0.1", **extra):
    return client.post(
        "/login",
        data={"email": email, "password": password, **extra},
        environ_base={"REMOTE_ADDR": address},
    )


def test_login_page_renders(client):
    response = client.get("/login")
    assert response.status_code == 200
    assert 'name="password"' in response.text


def test_sign_in_with_the_right_password_opens_the_start_page(client):
    user = make_user(email="rep@example.com", role="sales")
    db.session.commit()
    response = _sign_in(client, "REP@example.com ", PASSWORD)
    assert response.status_code == 303
    assert response.headers["Location"] == "/"
    assert client.get("/").status_code == 200
    assert db.session.get(User, user.id).last_login_at is not None


def test_wrong_password_keeps_the_email_and_says_so(client):
    make_user(email="rep@example.com")
    db.session.commit()
    response = _sign_in(client, "rep@example.com", "wrong password")
    assert response.status_code == 422
    assert "Wrong email or password." in response.text
    assert 'value="rep@example.com"' in response.text
    assert client.get("/").status_code == 303


def test_unknown_email_gets_the_same_answer(client):
    response = _sign_in(client, "nobody@example.com", "whatever")
    assert response.status_code == 422
    assert "Wrong email or password." in response.text


def test_deactivated_user_cannot_sign_in(client):
    make_user(email="gone@example.com", active=False)
    db.session.commit()
    assert _sign_in(client, "gone@example.com", PASSWORD).status_code == 422


def test_passwords_are_stored_as_argon2id(ctx):
    user = make_user()
    assert user.password_hash.startswith("$argon2id$")


def test_next_parameter_only_goes_to_this_site(client):
    make_user(email="rep@example.com")
    db.session.commit()
    response = client.post(
        "/login?next=//evil.example/x", data={"email": "rep@example.com", "password": PASSWORD}
    )
    assert response.headers["Location"] == "/"
    client.post("/logout")
    response = client.post(
        "/login?next=/contacts?q=a", data={"email": "rep@example.com", "password": PASSWORD}
    )
    assert response.headers["Location"] == "/contacts?q=a"


def test_htmx_sign_in_reloads_the_whole_page(client):
    make_user(email="rep@example.com")
    db.session.commit()
    response = client.post(
        "/login",
        data={"email": "rep@example.com", "password": PASSWORD},
        headers={"HX-Request": "true", "HX-Boosted": "true", "HX-Request-Type": "full"},
    )
    assert response.status_code == 200
    assert response.headers["HX-Redirect"] == "/"


def test_failures_on_one_account_from_one_address_are_limited(client):
    make_user(email="target@example.com")
    db.session.commit()
    for _ in range(5):
        assert _sign_in(client, "target@example.com", "guess", "10.0.0.9").status_code == 422
    blocked = _sign_in(client, "target@example.com", "guess", "10.0.0.9")
    assert blocked.status_code == 429
    assert "Too many sign-in attempts" in blocked.text
    # Even the right password waits from that address...
    assert _sign_in(client, "target@example.com", PASSWORD, "10.0.0.9").status_code == 429
    # ...but the real user, elsewhere, is not locked out.
    assert _sign_in(client, "target@example.com", PASSWORD, "192.168.1.20").status_code == 303


def test_successful_sign_ins_do_not_count_against_the_account(client):
    make_user(email="rep@example.com")
    db.session.commit()
    for _ in range(8):
        assert _sign_in(client, "rep@example.com", PASSWORD, "10.0.0.3").status_code == 303
        client.post("/logout")


def test_one_address_trying_many_accounts_is_limited(app, client):
    app.config["LOGIN_LIMIT_PER_ADDRESS"] = "30 per 5 minutes"
    statuses = [
        _sign_in(client, f"user{i}@example.com", "guess", "10.9.9.9").status_code for i in range(31)
    ]
    assert statuses[:30] == [422] * 30
    assert statuses[30] == 429


def test_logout_ends_the_session(as_role):
    client, _user = as_role("sales")
    assert client.get("/contacts").status_code == 200
    assert client.post("/logout").status_code == 303
    assert client.get("/contacts").status_code == 303


def test_logout_everywhere_ends_every_session_of_the_user(app, as_role, login):
    phone, user = as_role("sales")
    laptop = login(app.test_client(), user)
    assert laptop.get("/contacts").status_code == 200
    phone.post("/logout-everywhere")
    assert laptop.get("/contacts").status_code == 303


class TestCsrf:
    def _signed_in(self, csrf_app, user):
        token = start_session(user)
        db.session.commit()
        client = csrf_app.test_client()
        with client.session_transaction() as session:
            session["_user_id"] = token
        return client

    def test_post_without_token_is_refused(self, csrf_app, ctx):
        user = make_user(role="sales")
        db.session.commit()
        client = self._signed_in(csrf_app, user)
        response = client.post("/contacts", data={"first_name": "A", "email": "a@example.com"})
        assert response.status_code == 400
        assert "session expired or the form is stale" in response.text

    def test_htmx_post_with_the_header_from_body_is_accepted(self, csrf_app, ctx):
        user = make_user(role="sales")
        db.session.commit()
        client = self._signed_in(csrf_app, user)
        page = client.get("/contacts").text
        token = re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1)
        assert "hx-headers:inherited=" in page
        response = client.post(
            "/contacts",
            data={"first_name": "A", "email": "a@example.com"},
            headers={"X-CSRFToken": token, "HX-Request": "true", "HX-Request-Type": "partial"},
        )
        assert response.status_code == 200

    def test_htmx_post_without_token_shows_an_error_toast(self, csrf_app, ctx):
        user = make_user(role="sales")
        db.session.commit()
        client = self._signed_in(csrf_app, user)
        response = client.post(
            "/contacts", data={}, headers={"HX-Request": "true", "HX-Request-Type": "partial"}
        )
        assert response.status_code == 400
        assert response.headers["HX-Retarget"] == "#toasts"
        assert "toast-error" in response.text

    def test_login_form_needs_the_token_too(self, csrf_app, ctx):
        make_user(email="rep@example.com")
        db.session.commit()
        client = csrf_app.test_client()
        response = client.post("/login", data={"email": "rep@example.com", "password": PASSWORD})
        assert response.status_code == 400


class TestInvitation:
    def test_invited_user_sets_a_password_and_is_signed_in(self, client):
        user = users.invite_user("new@example.com", "New Person", "support")
        db.session.commit()
        token = users.invitation_token(user)
        page = client.get(f"/invitation/{token}")
        assert page.status_code == 200
        assert "new@example.com" in page.text
        short = client.post(f"/invitation/{token}", data={"password": "short", "confirm": "short"})
        assert short.status_code == 422
        assert "At least 10 characters." in short.text
        done = client.post(
            f"/invitation/{token}",
            data={"password": "a long password", "confirm": "a long password"},
        )
        assert done.status_code == 303
        assert client.get("/").status_code == 200

    def test_an_invitation_works_once(self, client):
        user = users.invite_user("new@example.com", "New Person", "sales")
        db.session.commit()
        token = users.invitation_token(user)
        client.post(
            f"/invitation/{token}",
            data={"password": "a long password", "confirm": "a long password"},
        )
        assert client.get(f"/invitation/{token}").status_code == 404

    def test_a_forged_token_is_refused(self, client):
        assert client.get("/invitation/forged").status_code == 404
