"""The admin page: invite users, change roles, deactivate."""

import re

from crm.extensions import db
from crm.models import User
from tests.conftest import htmx_headers
from tests.factories import make_team, make_user


def test_admin_invites_a_user_and_gets_a_link(as_role, client):
    admin_client, _admin = as_role("admin")
    team = make_team("Support")
    db.session.commit()
    response = admin_client.post(
        "/admin/users",
        data={
            "name": "Zoé Martin",
            "email": "zoe@example.com",
            "role": "support",
            "team": str(team.id),
        },
        headers=htmx_headers("div#users-panel"),
    )
    assert response.status_code == 200
    link = re.search(r'value="(http://[^"]+/invitation/[^"]+)"', response.text).group(1)
    user = db.session.scalars(db.select(User).where(User.email == "zoe@example.com")).one()
    assert (user.role, user.team_id, user.password_hash) == ("support", team.id, None)
    assert client.get(link.replace("http://localhost", "")).status_code == 200


def test_invite_form_errors_keep_the_input(as_role):
    admin_client, admin = as_role("admin")
    response = admin_client.post(
        "/admin/users",
        data={"name": "Dup", "email": admin.email, "role": "sales", "team": ""},
        headers=htmx_headers("div#users-panel"),
    )
    assert response.status_code == 422
    assert "A user with this email already exists." in response.text
    assert 'value="Dup"' in response.text


def test_change_role(as_role):
    admin_client, _admin = as_role("admin")
    rep = make_user(role="sales")
    db.session.commit()
    response = admin_client.post(
        f"/admin/users/{rep.id}/role", data={"role": "manager"}, headers=htmx_headers()
    )
    assert response.status_code == 200
    db.session.expire_all()
    assert db.session.get(User, rep.id).role == "manager"
    assert response.headers["HX-Trigger"]


def test_the_last_admin_cannot_be_demoted_or_deactivated(as_role):
    admin_client, admin = as_role("admin")
    response = admin_client.post(
        f"/admin/users/{admin.id}/role", data={"role": "sales"}, headers=htmx_headers()
    )
    assert response.status_code == 422
    assert "at least one active administrator" in response.text
    db.session.expire_all()
    assert db.session.get(User, admin.id).role == "admin"


def test_deactivation_ends_the_users_sessions_at_once(app, as_role, login):
    admin_client, _admin = as_role("admin")
    rep_client, rep = as_role("sales")
    assert rep_client.get("/contacts").status_code == 200
    response = admin_client.post(f"/admin/users/{rep.id}/deactivate", headers=htmx_headers())
    assert response.status_code == 200
    assert "deactivated" in response.text
    assert rep_client.get("/contacts").status_code == 303
    reactivated = admin_client.post(f"/admin/users/{rep.id}/reactivate", headers=htmx_headers())
    assert reactivated.status_code == 200
    # The old cookie stays void: reactivation does not revive ended sessions.
    assert rep_client.get("/contacts").status_code == 303


def test_admin_cannot_deactivate_themselves(as_role):
    admin_client, admin = as_role("admin")
    make_user(role="admin")
    db.session.commit()
    response = admin_client.post(f"/admin/users/{admin.id}/deactivate", headers=htmx_headers())
    assert response.status_code == 422
    assert "cannot deactivate yourself" in response.text


def test_new_sign_in_link_voids_the_old_sessions(as_role):
    admin_client, _admin = as_role("admin")
    rep_client, rep = as_role("sales")
    response = admin_client.post(f"/admin/users/{rep.id}/invitation", headers=htmx_headers())
    assert "/invitation/" in response.text
    assert rep_client.get("/contacts").status_code == 303


def test_system_page_shows_the_queues(as_role):
    admin_client, _admin = as_role("admin")
    response = admin_client.get("/admin/system")
    assert response.status_code == 200
    for queue in ("default", "mail", "imports"):
        assert f"<td>{queue}</td>" in response.text
