"""The bell: the count on every page, its poll, the menu, opening and marking read."""

from sqlalchemy import select

from crm.extensions import db
from crm.models.agenda import Notification
from tests.conftest import htmx_headers
from tests.factories import make_user


def _notify(user, title="Weekly review at 14:30", url="/agenda?date=2030-01-07", read=False):
    from crm.services.reminders import now

    notification = Notification(user=user, title=title, url=url, read_at=now() if read else None)
    db.session.add(notification)
    db.session.flush()
    return notification


def test_bell_shows_the_unread_count_and_polls(as_role):
    client, me = as_role("sales")
    _notify(me)
    _notify(me)
    _notify(me, read=True)
    _notify(make_user())
    db.session.commit()
    page = client.get("/tasks").text
    assert 'id="bell-count"' in page and 'data-unread="2"' in page
    assert 'hx-trigger="every 30s, crm:notifications from:body"' in page
    count = client.get("/notifications/count", headers=htmx_headers("span#bell-count"))
    assert (
        count.status_code == 200 and "<html" not in count.text and 'data-unread="2"' in count.text
    )


def test_count_query_is_one_indexed_count(as_role, app):
    client, me = as_role("sales")
    for _ in range(30):
        _notify(me)
    db.session.commit()
    response = client.get("/notifications/count")
    # The user's session lookup and the count; nothing per notification.
    assert int(response.headers["X-SQL-Queries"]) <= 3


def test_menu_lists_recent_and_opening_marks_read_and_goes_there(as_role):
    client, me = as_role("sales")
    first = _notify(me, title="Call Anne at 09:00")
    db.session.commit()
    menu = client.get("/notifications/menu", headers=htmx_headers("div#bell-panel"))
    assert "Call Anne at 09:00" in menu.text and "Mark all as read" in menu.text
    opened = client.post(f"/notifications/{first.id}/open", headers=htmx_headers())
    assert '"path": "/agenda?date=2030-01-07"' in opened.headers["HX-Location"]
    db.session.expire_all()
    assert first.read_at is not None


def test_open_never_leaves_the_app(as_role):
    client, me = as_role("sales")
    outside = _notify(me, url="https://evil.example/")
    db.session.commit()
    response = client.post(f"/notifications/{outside.id}/open")
    assert response.headers["Location"] == "/notifications"


def test_mark_one_and_all_read(as_role):
    client, me = as_role("sales")
    one, two = _notify(me), _notify(me)
    db.session.commit()
    response = client.post(
        f"/notifications/{one.id}/read", headers=htmx_headers(f"li#notification-{one.id}")
    )
    assert (
        "crm:notifications" in response.headers["HX-Trigger"]
        and "unread" not in response.text.split('"')[3]
    )
    client.post("/notifications/read-all", headers=htmx_headers("div#bell-panel"))
    db.session.expire_all()
    assert all(n.read_at for n in db.session.scalars(select(Notification)))
    assert two.read_at is not None


def test_someone_elses_notification_is_a_404(as_role):
    client, _me = as_role("sales")
    theirs = _notify(make_user())
    db.session.commit()
    assert client.post(f"/notifications/{theirs.id}/open").status_code == 404
    assert client.post(f"/notifications/{theirs.id}/read").status_code == 404


def test_page_lists_and_pages_back(as_role):
    client, me = as_role("sales")
    for n in range(35):
        _notify(me, title=f"Reminder number {n}")
    db.session.commit()
    page = client.get("/notifications").text
    assert (
        "Reminder number 34" in page
        and "Reminder number 4<" not in page
        and "Older notifications" in page
    )
    before = db.session.scalars(select(Notification.id).order_by(Notification.id.desc())).all()[29]
    more = client.get(f"/notifications?before={before}", headers=htmx_headers("li#load-more"))
    assert (
        "<html" not in more.text
        and "Reminder number 4<" in more.text
        and "Reminder number 0<" in more.text
    )
