"""Two-factor sign-in (ASVS V6.5/V6.6): enrolment with a QR code, login with a time-stepped
code or a recovery code, no code reused, rate-limited, and roles an admin can require it for.

Codes are made with pyotp for an explicit time; nothing sleeps."""

import re
from datetime import UTC, datetime, timedelta

import pyotp
import pytest

from crm.extensions import db
from crm.models import RecoveryCode, User
from crm.services import two_factor
from tests.factories import PASSWORD, make_user

NOW = datetime(2026, 11, 26, 9, 30, 10, tzinfo=UTC)


def _enrol(user, now=NOW) -> tuple[str, list[str]]:
    secret = two_factor.begin_enrolment(user)
    codes = two_factor.confirm_enrolment(user, pyotp.TOTP(secret).at(now), now=now)
    db.session.commit()
    return secret, codes


def _fresh(user) -> User:
    db.session.expire_all()
    return db.session.get(User, user.id)


# ---- the service, at explicit times -----------------------------------------------------


def test_secret_is_stored_encrypted(ctx):
    user = make_user()
    secret = two_factor.begin_enrolment(user)
    assert secret not in user.totp_secret
    assert two_factor.secret_of(user) == secret


def test_enrolment_needs_a_right_code(ctx):
    user = make_user()
    secret = two_factor.begin_enrolment(user)
    with pytest.raises(two_factor.TwoFactorError):
        two_factor.confirm_enrolment(
            user, "000000" if pyotp.TOTP(secret).at(NOW) != "000000" else "111111", now=NOW
        )
    assert not user.two_factor_enabled
    codes = two_factor.confirm_enrolment(user, pyotp.TOTP(secret).at(NOW), now=NOW)
    assert user.two_factor_enabled
    assert len(codes) == 10 and len(set(codes)) == 10
    stored = db.session.scalars(db.select(RecoveryCode.code_hash)).all()
    assert not set(codes) & set(stored)  # only hashes


def test_codes_of_the_next_and_previous_step_pass_older_ones_do_not(ctx):
    user = make_user()
    secret, _ = _enrol(user, NOW - timedelta(minutes=10))
    totp = pyotp.TOTP(secret)
    assert not two_factor.verify_code(user, totp.at(NOW - timedelta(seconds=90)), now=NOW)
    assert two_factor.verify_code(user, totp.at(NOW - timedelta(seconds=30)), now=NOW)
    assert two_factor.verify_code(user, totp.at(NOW), now=NOW)
    assert two_factor.verify_code(user, totp.at(NOW + timedelta(seconds=30)), now=NOW)


def test_a_code_is_never_accepted_twice(ctx):
    user = make_user()
    secret, _ = _enrol(user, NOW - timedelta(minutes=10))
    code = pyotp.TOTP(secret).at(NOW)
    assert two_factor.verify_code(user, code, now=NOW)
    assert not two_factor.verify_code(user, code, now=NOW)
    assert not two_factor.verify_code(user, code, now=NOW + timedelta(seconds=20))
    # Nor one of an earlier step, once a later one was used.
    assert not two_factor.verify_code(
        user, pyotp.TOTP(secret).at(NOW - timedelta(seconds=30)), now=NOW
    )


def test_recovery_codes_work_once_each(ctx):
    user = make_user()
    _secret, codes = _enrol(user)
    assert two_factor.verify_second_factor(user, codes[0].upper().replace("-", " ")) == "recovery"
    assert two_factor.verify_second_factor(user, codes[0]) is None
    assert two_factor.remaining_recovery_codes(user) == 9
    fresh = two_factor.new_recovery_codes(user)
    assert two_factor.verify_second_factor(user, codes[1]) is None
    assert two_factor.verify_second_factor(user, fresh[0]) == "recovery"


def test_the_qr_code_is_an_svg_without_inline_style(ctx):
    user = make_user(email="rep@example.com")
    secret = two_factor.begin_enrolment(user)
    uri = two_factor.provisioning_uri(user, secret)
    assert uri.startswith("otpauth://totp/") and f"secret={secret}" in uri
    svg = two_factor.qr_svg(uri).decode()
    assert svg.startswith("<svg") and "style" not in svg and "<script" not in svg


# ---- through the pages ----------------------------------------------------------------------


def test_enrol_through_the_settings_then_sign_in_with_a_code(app, as_role):
    client, user = as_role("sales", email="rep@example.com")
    page = client.get("/settings/two-factor")
    assert "Set up two-factor sign-in" in page.text
    assert client.post("/settings/two-factor/start").status_code == 303
    page = client.get("/settings/two-factor").text
    assert 'src="/settings/two-factor/qr.svg"' in page
    qr = client.get("/settings/two-factor/qr.svg")
    assert qr.status_code == 200 and qr.mimetype == "image/svg+xml"
    secret = re.search(r'<code class="secret">([A-Z2-7 ]+)</code>', page).group(1).replace(" ", "")
    wrong = client.post("/settings/two-factor/confirm", data={"code": "12345x"})
    assert wrong.status_code == 422 and "This code is not right" in wrong.text
    now = datetime.now(UTC)
    done = client.post("/settings/two-factor/confirm", data={"code": pyotp.TOTP(secret).at(now)})
    assert done.status_code == 200
    codes = re.findall(r"<code>([a-z2-9]{5}-[a-z2-9]{5})</code>", done.text)
    assert len(codes) == 10
    assert _fresh(user).two_factor_enabled
    assert client.get("/settings/two-factor/qr.svg").status_code == 404  # the secret is shown once

    browser = app.test_client()
    first = browser.post("/login", data={"email": "rep@example.com", "password": PASSWORD})
    assert first.headers["Location"] == "/login/two-factor"
    assert browser.get("/").status_code == 303  # not signed in yet
    reused = browser.post("/login/two-factor", data={"code": pyotp.TOTP(secret).at(now)})
    assert reused.status_code == 422 and "already used" in reused.text
    later = now + timedelta(seconds=30)
    assert (
        browser.post("/login/two-factor", data={"code": pyotp.TOTP(secret).at(later)}).status_code
        == 303
    )
    assert browser.get("/").status_code == 200


def test_sign_in_with_a_recovery_code(app, client):
    user = make_user(email="rep@example.com")
    _secret, codes = _enrol(user)
    client.post("/login", data={"email": "rep@example.com", "password": PASSWORD})
    response = client.post("/login/two-factor", data={"code": codes[3]})
    assert response.status_code == 303
    assert client.get("/").status_code == 200
    assert two_factor.remaining_recovery_codes(_fresh(user)) == 9


def test_the_second_step_needs_the_password_first(client):
    assert client.get("/login/two-factor").headers["Location"] == "/login"
    assert client.post("/login/two-factor", data={"code": "123456"}).headers["Location"] == "/login"


def test_the_second_step_is_rate_limited_without_locking_the_user_out(app, ctx):
    user = make_user(email="rep@example.com")
    secret, _ = _enrol(user, datetime.now(UTC) - timedelta(minutes=10))
    attacker = app.test_client()
    attacker.post(
        "/login",
        data={"email": "rep@example.com", "password": PASSWORD},
        environ_base={"REMOTE_ADDR": "10.0.0.66"},
    )
    statuses = [
        attacker.post(
            "/login/two-factor", data={"code": "000000"}, environ_base={"REMOTE_ADDR": "10.0.0.66"}
        ).status_code
        for _ in range(6)
    ]
    assert statuses[:5] == [422] * 5 and statuses[5] == 429
    owner = app.test_client()
    owner.post(
        "/login",
        data={"email": "rep@example.com", "password": PASSWORD},
        environ_base={"REMOTE_ADDR": "192.168.1.5"},
    )
    code = pyotp.TOTP(secret).at(datetime.now(UTC) + timedelta(seconds=30))
    assert (
        owner.post(
            "/login/two-factor", data={"code": code}, environ_base={"REMOTE_ADDR": "192.168.1.5"}
        ).status_code
        == 303
    )


def test_turning_it_off_needs_the_password(as_role):
    client, user = as_role("sales")
    _enrol(user)
    assert client.post("/settings/two-factor/disable", data={"current": "nope"}).status_code == 422
    assert _fresh(user).two_factor_enabled
    assert (
        client.post("/settings/two-factor/disable", data={"current": PASSWORD}).status_code == 303
    )
    user = _fresh(user)
    assert not user.two_factor_enabled and user.totp_secret is None


def test_admin_requires_two_factor_for_a_role(app, as_role):
    admin, _ = as_role("admin")
    page = admin.get("/admin/security")
    assert page.status_code == 200
    assert admin.post("/admin/security", data={"roles": ["support"]}).status_code in (200, 303)
    assert two_factor.required_roles() == {"support"}

    support, agent = as_role("support")
    # Anything else sends them to the enrolment page, full pages and htmx requests alike.
    response = support.get("/contacts")
    assert response.status_code == 303 and response.headers["Location"] == "/settings/two-factor"
    htmx = support.get("/contacts", headers={"HX-Request": "true", "HX-Request-Type": "partial"})
    assert htmx.headers["HX-Location"]
    assert "must use two-factor" in support.get("/settings/two-factor").text
    support.post("/settings/two-factor/start")
    secret = two_factor.secret_of(_fresh(agent))
    support.post("/settings/two-factor/confirm", data={"code": pyotp.TOTP(secret).now()})
    assert support.get("/contacts").status_code == 200
    # Required: it cannot be turned off.
    assert (
        support.post("/settings/two-factor/disable", data={"current": PASSWORD}).status_code == 422
    )
    # Other roles are not concerned.
    sales, _ = as_role("sales")
    assert sales.get("/contacts").status_code == 200
