"""The bell and the notification list.

The bell's count is part of every full page (one indexed COUNT on
ix_notification_user_read) and polls /notifications/count; the dropdown loads
its list when it opens. Opening a notification is a POST that marks it read and
goes to its page in the same click.
"""

from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from crm import htmx as hx
from crm.extensions import db
from crm.models.agenda import Notification
from crm.permissions import has_permission, requires
from crm.services import notifications

bp = Blueprint("notifications", __name__, url_prefix="/notifications")

PAGE_SIZE = 30
# Whoever acts on notifications tells the bell to ask for its count again.
REFRESH_EVENT = "crm:notifications"


@bp.app_context_processor
def _bell_context():
    def unread_notifications() -> int:
        if not has_permission(current_user, "notifications.view"):
            return 0
        # Counted with the session as the request began (crm.services.sessions.load); the
        # routes that change it answer with a fresh count or send the browser on.
        counted = getattr(current_user, "unread_notifications", None)
        return notifications.unread_count(current_user) if counted is None else counted

    return {
        "unread_notifications": unread_notifications,
        "notification_poll_seconds": current_app.config["NOTIFICATION_POLL_SECONDS"],
    }


@bp.route("")
@requires("notifications.view")
def index():
    before = request.args.get("before", type=int)
    items = notifications.recent(current_user, PAGE_SIZE + 1, before_id=before)
    more = len(items) > PAGE_SIZE
    return hx.render(
        "notifications/index.html",
        {"notification-rows": "rows", "load-more": "rows"},
        entries=items[:PAGE_SIZE],
        more=more,
    )


@bp.route("/count")
@requires("notifications.view")
def count():
    return render_template(
        "notifications/_count.html", unread=notifications.unread_count(current_user)
    )


@bp.route("/menu")
@requires("notifications.view")
def menu():
    return render_template(
        "notifications/_menu.html",
        entries=notifications.recent(current_user),
        unread=notifications.unread_count(current_user),
    )


def _safe_target(url: str | None) -> str:
    """Only paths inside the app: a notification never sends anyone elsewhere."""
    parts = urlsplit(url or "")
    if parts.scheme or parts.netloc or not parts.path.startswith("/"):
        return url_for("notifications.index")
    return url


@bp.route("/<int:notification_id>/open", methods=["POST"])
@requires("notifications.view")
def open_one(notification_id: int):
    notification = db.session.get(Notification, notification_id)
    if notification is None or notification.user_id != current_user.id:
        abort(404)
    notifications.mark_read(current_user, notification_id)
    db.session.commit()
    return hx.location(_safe_target(notification.url))


@bp.route("/<int:notification_id>/read", methods=["POST"])
@requires("notifications.view")
def read_one(notification_id: int):
    notification = db.session.get(Notification, notification_id)
    if notification is None or notification.user_id != current_user.id:
        abort(404)
    notifications.mark_read(current_user, notification_id)
    db.session.commit()
    hx.trigger(REFRESH_EVENT)
    if not hx.is_htmx():
        return hx.location(url_for("notifications.index"))
    return render_template("notifications/_item.html", notification=notification)


@bp.route("/read-all", methods=["POST"])
@requires("notifications.view")
def read_all():
    changed = notifications.mark_read(current_user)
    db.session.commit()
    hx.trigger(REFRESH_EVENT)
    if changed:
        hx.toast(_("All notifications marked as read."))
    if hx.is_partial() and hx.target_id() == "bell-panel":
        return render_template(
            "notifications/_menu.html", entries=notifications.recent(current_user), unread=0
        )
    return hx.location(url_for("notifications.index"))
