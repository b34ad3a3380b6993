"""Mailboxes: admins manage the shared ones, each office user their own; passwords are
stored encrypted and never shown; "Check connection" talks to a real Dovecot and a real
aiosmtpd and says what went wrong; the quarantine is downloadable and can be handled."""

import json

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy import func, select

from crm.devmail import STATIC_PASSWORD, free_port
from crm.extensions import db
from crm.models import Mailbox, QuarantinedEmail
from crm.services import mailboxes as service
from crm.services import secrets_box
from tests.conftest import htmx_headers
from tests.factories import make_team, make_user
from tests.mail_servers import dovecot, imap_user  # noqa: F401  (pytest fixtures)

SMTP_USER, SMTP_PASSWORD = "crm", "smtp-secret"


def form(**overrides) -> dict:
    data = {
        "name": "Support",
        "address": "support@example.com",
        "purpose": "support",
        "team": "",
        "imap_host": "imap.example.com",
        "imap_port": "993",
        "imap_security": "ssl",
        "imap_username": "support@example.com",
        "imap_password": "imap-secret",
        "imap_folder": "INBOX",
        "smtp_host": "smtp.example.com",
        "smtp_port": "465",
        "smtp_security": "ssl",
        "smtp_username": "support@example.com",
        "smtp_password": "smtp-secret",
    }
    data.update(overrides)
    return data


def count() -> int:
    return db.session.scalar(select(func.count()).select_from(Mailbox))


def saved(address: str = "support@example.com") -> Mailbox:
    db.session.expire_all()
    return db.session.scalars(select(Mailbox).filter_by(address=address)).one()


# ---- who may do what ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "status"),
    [("admin", 200), ("manager", 403), ("sales", 403), ("support", 403), ("technician", 403)],
)
def test_only_admins_manage_shared_mailboxes(as_role, role, status):
    client, _user = as_role(role)
    assert client.get("/admin/mailboxes").status_code == status
    assert client.post("/admin/mailboxes", data=form()).status_code in (
        (303,) if status == 200 else (403,)
    )


@pytest.mark.parametrize(
    ("role", "status"),
    [("admin", 200), ("manager", 200), ("sales", 200), ("support", 200), ("technician", 403)],
)
def test_office_users_open_their_own_mailbox(as_role, role, status):
    client, _user = as_role(role)
    assert client.get("/admin/mailboxes/mine").status_code == status


def test_account_settings_link_to_the_own_mailbox(as_role):
    client, _user = as_role("sales")
    assert 'href="/admin/mailboxes/mine"' in client.get("/settings").text
    tech, _user = as_role("technician")
    assert "/admin/mailboxes/mine" not in tech.get("/settings").text


# ---- shared mailboxes: create, edit, 422 ------------------------------------------------


def test_admin_creates_a_shared_mailbox_with_encrypted_passwords(as_role):
    client, _user = as_role("admin")
    team = make_team("Support team")
    db.session.commit()
    answer = client.post("/admin/mailboxes", data=form(team=str(team.id)))
    assert answer.status_code == 303
    mailbox = saved()
    assert answer.headers["Location"] == f"/admin/mailboxes/{mailbox.id}"
    assert (mailbox.purpose, mailbox.team_id, mailbox.owner_id, mailbox.active) == (
        "support",
        team.id,
        None,
        True,
    )
    assert "imap-secret" not in mailbox.imap_password
    assert secrets_box.decrypt("mail", mailbox.imap_password) == "imap-secret"
    assert secrets_box.decrypt("mail", mailbox.smtp_password) == "smtp-secret"
    page = client.get(f"/admin/mailboxes/{mailbox.id}").text
    assert "imap-secret" not in page and "smtp-secret" not in page
    assert mailbox.imap_password not in page
    assert "Stored: leave empty to keep it" in page
    listing = client.get("/admin/mailboxes").text
    assert "support@example.com" in listing and "Support team" in listing


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"imap_port": "70000"}, "imap_port", "A port is a number from 1 to 65535."),
        ({"smtp_port": "0"}, "smtp_port", "A port is a number from 1 to 65535."),
        ({"imap_port": "abc"}, "imap_port", ""),
        ({"imap_host": "imaps://mail.example.com:993"}, "imap_host", "without :// or a port"),
        ({"smtp_host": "bad host"}, "smtp_host", "without :// or a port"),
        ({"address": "not-an-address"}, "address", "Enter an address such as"),
        ({"imap_security": "plain"}, "imap_security", "Not a valid choice"),
        ({"smtp_security": ""}, "smtp_security", "Not a valid choice"),
        ({"purpose": "personal"}, "purpose", "Not a valid choice"),
        ({"imap_password": ""}, "imap_password", "Enter the password."),
        ({"imap_host": "", "smtp_host": ""}, "imap_host", "Give an IMAP server"),
        ({"name": "  "}, "name", "Give the mailbox a name."),
    ],
)
def test_bad_input_answers_422_with_every_input_kept(as_role, changes, field, message):
    client, _user = as_role("admin")
    data = form(**{"name": "Kept name", **changes})
    answer = client.post("/admin/mailboxes", data=data, headers=htmx_headers("form#mailbox-form"))
    assert answer.status_code == 422
    page = answer.text
    assert "<html" not in page  # the form only
    assert f'id="{field}-error"' in page and message in page
    if changes.get("name") is None:
        assert 'value="Kept name"' in page
    assert 'value="imap-secret"' not in page  # a password never comes back
    assert count() == 0


def test_an_address_already_used_is_refused(as_role):
    client, _user = as_role("admin")
    assert client.post("/admin/mailboxes", data=form()).status_code == 303
    answer = client.post("/admin/mailboxes", data=form(address="SUPPORT@example.com", name="B"))
    assert answer.status_code == 422
    assert "Another mailbox already has this address." in answer.text
    assert count() == 1


def test_an_empty_password_on_edit_keeps_the_stored_one(as_role):
    client, _user = as_role("admin")
    client.post("/admin/mailboxes", data=form())
    mailbox = saved()
    token = mailbox.imap_password
    answer = client.post(
        f"/admin/mailboxes/{mailbox.id}",
        data=form(name="Support desk", imap_password="", smtp_password=""),
        headers=htmx_headers("form#mailbox-form"),
    )
    assert answer.status_code == 200, answer.text
    assert (
        "Mailbox support@example.com saved."
        in json.loads(answer.headers["HX-Trigger"])["crm:toast"]["message"]
    )
    mailbox = saved()
    assert mailbox.name == "Support desk"
    assert mailbox.imap_password == token
    assert secrets_box.decrypt("mail", mailbox.smtp_password) == "smtp-secret"
    client.post(f"/admin/mailboxes/{mailbox.id}", data=form(imap_password="new-one"))
    assert secrets_box.decrypt("mail", saved().imap_password) == "new-one"


def test_a_422_on_edit_saves_nothing(as_role):
    client, _user = as_role("admin")
    client.post("/admin/mailboxes", data=form())
    mailbox = saved()
    answer = client.post(
        f"/admin/mailboxes/{mailbox.id}", data=form(name="Changed", imap_port="99999")
    )
    assert answer.status_code == 422
    assert 'value="Changed"' in answer.text
    assert saved().name == "Support"


def test_deactivate_and_activate(as_role):
    client, _user = as_role("admin")
    client.post("/admin/mailboxes", data=form())
    mailbox = saved()
    answer = client.post(
        f"/admin/mailboxes/{mailbox.id}/deactivate", headers=htmx_headers("tr#mailbox-1")
    )
    assert answer.status_code == 200
    assert f'id="mailbox-{mailbox.id}"' in answer.text and "inactive" in answer.text
    assert saved().active is False
    client.post(f"/admin/mailboxes/{mailbox.id}/activate")
    assert saved().active is True


def test_a_personal_mailbox_is_not_an_admin_page(as_role):
    client, _admin = as_role("admin")
    owner = make_user(role="sales")
    db.session.add(
        Mailbox(name="Own", address="rep@example.com", purpose="personal", owner_id=owner.id)
    )
    db.session.commit()
    mailbox = saved("rep@example.com")
    assert client.get(f"/admin/mailboxes/{mailbox.id}").status_code == 404
    assert client.post(f"/admin/mailboxes/{mailbox.id}", data=form()).status_code == 404
    assert "rep@example.com" not in client.get("/admin/mailboxes").text


# ---- one's own mailbox ---------------------------------------------------------------


def test_a_user_saves_their_own_mailbox(as_role):
    team = make_team("Sales team")
    client, user = as_role("sales", team=team)
    page = client.get("/admin/mailboxes/mine").text
    assert f'value="{user.email}"' in page  # a first mailbox starts from the user's address
    assert 'name="purpose"' not in page and 'name="team"' not in page
    data = form(address="rep@example.com", name="Rep", purpose="support", team="")
    assert client.post("/admin/mailboxes/mine", data=data).status_code == 200
    mailbox = saved("rep@example.com")
    assert (mailbox.purpose, mailbox.owner_id, mailbox.team_id) == ("personal", user.id, team.id)
    # Saved again: the same row, the password kept.
    client.post("/admin/mailboxes/mine", data=dict(data, name="Me", imap_password=""))
    assert count() == 1
    assert saved("rep@example.com").name == "Me"
    assert secrets_box.decrypt("mail", saved("rep@example.com").imap_password) == "imap-secret"


def test_a_sales_user_cannot_open_another_users_mailbox(as_role):
    client, _me = as_role("sales")
    other = make_user(role="sales")
    theirs = Mailbox(
        name="Theirs", address="other@example.com", purpose="personal", owner_id=other.id
    )
    db.session.add(theirs)
    db.session.flush()
    item = QuarantinedEmail(
        mailbox_id=theirs.id, imap_uid=1, imap_uidvalidity=1, raw=b"secret", error="bad"
    )
    db.session.add(item)
    db.session.commit()
    assert client.get(f"/admin/mailboxes/{theirs.id}").status_code == 403
    assert client.get(f"/admin/mailboxes/{theirs.id}/quarantine").status_code == 404
    assert client.get(f"/admin/mailboxes/quarantine/{item.id}/raw").status_code == 404
    assert client.post(f"/admin/mailboxes/quarantine/{item.id}/handled").status_code == 404
    page = client.get("/admin/mailboxes/mine").text
    assert "other@example.com" not in page
    assert client.post("/admin/mailboxes/mine/sync").status_code == 422  # has none itself


# ---- the quarantine ------------------------------------------------------------------


def test_quarantine_lists_downloads_and_marks_handled(as_role):
    client, _user = as_role("admin")
    mailbox = Mailbox(name="Support", address="support@example.com", purpose="support")
    db.session.add(mailbox)
    db.session.flush()
    raw = b"From: x\r\nSubject: =?broken?=\r\n\r\n<script>alert(1)</script>"
    item = QuarantinedEmail(
        mailbox_id=mailbox.id, imap_uid=7, imap_uidvalidity=42, raw=raw, error="Bad header"
    )
    db.session.add(item)
    db.session.commit()
    assert "1 message" in client.get("/admin/mailboxes").text
    page = client.get(f"/admin/mailboxes/{mailbox.id}/quarantine").text
    assert "Bad header" in page and f"{len(raw)} Bytes" in page and "<script>alert" not in page
    download = client.get(f"/admin/mailboxes/quarantine/{item.id}/raw")
    assert download.data == raw
    assert download.headers["Content-Disposition"].startswith("attachment;")
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    assert download.mimetype == "message/rfc822"
    answer = client.post(
        f"/admin/mailboxes/quarantine/{item.id}/handled",
        headers=htmx_headers(f"tr#quarantined-{item.id}"),
    )
    assert answer.status_code == 200 and "handled" in answer.text
    db.session.expire_all()
    assert db.session.get(QuarantinedEmail, item.id).resolved_at is not None
    assert "Bad header" not in client.get(f"/admin/mailboxes/{mailbox.id}/quarantine").text
    assert "Bad header" in client.get(f"/admin/mailboxes/{mailbox.id}/quarantine?all=1").text


def test_the_owner_sees_the_quarantine_of_their_own_mailbox(as_role):
    client, me = as_role("support")
    mailbox = Mailbox(name="Me", address="me@example.com", purpose="personal", owner_id=me.id)
    db.session.add(mailbox)
    db.session.flush()
    db.session.add(
        QuarantinedEmail(mailbox_id=mailbox.id, imap_uid=1, imap_uidvalidity=1, raw=b"x", error="E")
    )
    db.session.commit()
    assert client.get(f"/admin/mailboxes/{mailbox.id}/quarantine").status_code == 200


# ---- sync now ------------------------------------------------------------------------


def test_sync_now_queues_the_mailbox_once(as_role, app):
    from crm.queues import queue

    client, _user = as_role("admin")
    client.post("/admin/mailboxes", data=form())
    mailbox = saved()
    for _ in range(2):
        answer = client.post(
            f"/admin/mailboxes/{mailbox.id}/sync", headers=htmx_headers(f"tr#mailbox-{mailbox.id}")
        )
        assert answer.status_code in (200, 204)
        assert "Sync of support@example.com queued" in answer.headers["HX-Trigger"]
    jobs = queue("mail").jobs
    assert [job.args for job in jobs] == [(mailbox.id,)]
    assert jobs[0].func_name == "crm.jobs.mail_sync.sync_mailbox_job"


# ---- the connection check, against real servers ------------------------------------


class Authenticator:
    def __call__(self, server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and (
            auth_data.login.decode(),
            auth_data.password.decode(),
        ) == (SMTP_USER, SMTP_PASSWORD)
        return AuthResult(success=ok, handled=False)


class Sink:
    async def handle_DATA(self, server, session, envelope):
        return "250 2.0.0 OK"


@pytest.fixture
def smtp_port():
    port = free_port()
    controller = Controller(
        Sink(),
        hostname="127.0.0.1",
        port=port,
        authenticator=Authenticator(),
        auth_require_tls=False,
    )
    controller.start()
    yield port
    controller.stop()


def closed_port() -> int:
    return free_port()  # bound then closed at once: nobody listens there


def check_form(dovecot, user, smtp, **overrides):  # noqa: F811
    settings = {
        "address": user,
        "imap_host": "127.0.0.1",
        "imap_port": str(dovecot.port),
        "imap_security": "none",
        "imap_username": user,
        "imap_password": STATIC_PASSWORD,
        "smtp_host": "127.0.0.1",
        "smtp_port": str(smtp),
        "smtp_security": "none",
        "smtp_username": SMTP_USER,
        "smtp_password": SMTP_PASSWORD,
    }
    return form(**{**settings, **overrides})


def test_check_connection_succeeds_without_saving(as_role, dovecot, imap_user, smtp_port):  # noqa: F811
    from tests.mail_servers import append, build_message

    append(dovecot, imap_user, build_message())
    client, _user = as_role("admin")
    answer = client.post(
        "/admin/mailboxes/check",
        data=check_form(dovecot, imap_user, smtp_port),
        headers=htmx_headers("div#check-result"),
    )
    assert answer.status_code == 200
    assert "Connected: INBOX holds 1 message." in answer.text
    assert "Connected and signed in: ready to send." in answer.text
    assert "Nothing was saved" in answer.text
    assert count() == 0


def test_check_connection_reports_each_failure(as_role, dovecot, imap_user, smtp_port):  # noqa: F811
    client, _user = as_role("admin")
    data = check_form(dovecot, imap_user, smtp_port, imap_password="wrong", smtp_password="wrong")
    answer = client.post(
        "/admin/mailboxes/check", data=data, headers=htmx_headers("div#check-result")
    )
    assert answer.text.count("The server refused the user name or the password.") == 2
    assert '"level": "error"' in answer.headers["HX-Trigger"]

    port = closed_port()
    data = check_form(dovecot, imap_user, smtp_port, imap_port=str(port), smtp_port=str(port))
    answer = client.post(
        "/admin/mailboxes/check", data=data, headers=htmx_headers("div#check-result")
    )
    assert answer.text.count(f"127.0.0.1 refused the connection on port {port}") == 2

    data = check_form(dovecot, imap_user, smtp_port, imap_folder="Nowhere")
    answer = client.post(
        "/admin/mailboxes/check", data=data, headers=htmx_headers("div#check-result")
    )
    assert "the folder Nowhere does not exist" in answer.text

    data = check_form(dovecot, imap_user, smtp_port, imap_security="ssl", smtp_security="ssl")
    answer = client.post(
        "/admin/mailboxes/check", data=data, headers=htmx_headers("div#check-result")
    )
    assert answer.text.count("check the security mode") == 2

    data = check_form(dovecot, imap_user, smtp_port, imap_host="no-such-host.invalid")
    answer = client.post(
        "/admin/mailboxes/check", data=data, headers=htmx_headers("div#check-result")
    )
    assert "no-such-host.invalid could not be found (DNS)" in answer.text
    assert count() == 0


def test_check_on_edit_uses_the_stored_password(as_role, dovecot, imap_user, smtp_port):  # noqa: F811
    client, _user = as_role("admin")
    client.post("/admin/mailboxes", data=check_form(dovecot, imap_user, smtp_port))
    mailbox = saved(imap_user)
    typed = check_form(dovecot, imap_user, smtp_port, imap_password="", smtp_password="")
    answer = client.post(
        f"/admin/mailboxes/{mailbox.id}/check", data=typed, headers=htmx_headers("div#check-result")
    )
    assert "Connected: INBOX holds 0 messages." in answer.text
    assert "ready to send" in answer.text
    # From the list: the saved settings, no form sent.
    answer = client.post(
        f"/admin/mailboxes/{mailbox.id}/check", headers=htmx_headers(f"div#check-{mailbox.id}")
    )
    assert "Connected: INBOX holds 0 messages." in answer.text


def test_check_with_invalid_settings_puts_the_errors_beside_the_fields(as_role):
    client, _user = as_role("admin")
    answer = client.post(
        "/admin/mailboxes/check",
        data=form(imap_port="0"),
        headers=htmx_headers("div#check-result"),
    )
    assert answer.status_code == 422
    assert answer.headers["HX-Retarget"] == "#mailbox-form"
    assert 'id="imap_port-error"' in answer.text


def test_a_user_checks_their_own_mailbox(as_role, dovecot, imap_user, smtp_port):  # noqa: F811
    client, _user = as_role("sales")
    answer = client.post(
        "/admin/mailboxes/mine/check",
        data=check_form(dovecot, imap_user, smtp_port, imap_password="wrong"),
        headers=htmx_headers("div#check-result"),
    )
    assert "The server refused the user name or the password." in answer.text
    assert "ready to send" in answer.text


def test_a_password_the_key_cannot_read_any_more_is_reported(data_app, ctx):
    mailbox = Mailbox(
        name="S",
        address="s@example.com",
        imap_host="127.0.0.1",
        imap_port=1,
        imap_password="gAAAAA-not-a-token",
    )
    with data_app.test_request_context():
        result = service.check_connection(mailbox)
    assert "encryption key changed" in result.imap.message
    assert result.smtp.skipped and not result.ok


# ---- query counts --------------------------------------------------------------------


def _add_mailboxes(count: int, team) -> list[Mailbox]:
    start = db.session.scalar(select(func.count()).select_from(Mailbox))
    added = []
    for n in range(start, start + count):
        mailbox = Mailbox(name=f"M{n}", address=f"m{n}@example.com", purpose="other", team=team)
        db.session.add(mailbox)
        db.session.flush()
        db.session.add(
            QuarantinedEmail(
                mailbox_id=mailbox.id, imap_uid=n, imap_uidvalidity=1, raw=b"x" * n, error="E"
            )
        )
        added.append(mailbox)
    db.session.commit()
    return added


def _queries(client, url: str) -> int:
    answer = client.get(url)
    assert answer.status_code == 200, url
    return int(answer.headers["X-SQL-Queries"])


def test_mailbox_pages_run_a_bounded_number_of_queries(as_role):
    client, _user = as_role("admin")
    team = make_team("Support")
    first = _add_mailboxes(2, team)[0]
    urls = [
        "/admin/mailboxes",
        f"/admin/mailboxes/{first.id}",
        f"/admin/mailboxes/{first.id}/quarantine?all=1",
        "/admin/system",
    ]
    small = {url: _queries(client, url) for url in urls}
    _add_mailboxes(30, team)
    for n in range(30):
        db.session.add(
            QuarantinedEmail(
                mailbox_id=first.id, imap_uid=100 + n, imap_uidvalidity=1, raw=b"y", error="E"
            )
        )
    db.session.commit()
    large = {url: _queries(client, url) for url in urls}
    assert large == small
    assert max(large.values()) <= 10, large
