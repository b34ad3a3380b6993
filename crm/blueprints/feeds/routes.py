"""Calendar feeds: the secret .ics address calendar clients fetch, and managing those addresses."""

from flask import Blueprint, abort, current_app, make_response, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from werkzeug.routing import BuildError

from crm import htmx as hx
from crm.extensions import db
from crm.models import CalendarFeed, Intervention, Task, Team
from crm.permissions import public, requires
from crm.services import calendar_feed
from crm.services.recurrence import occurrence_key

bp = Blueprint("feeds", __name__)

PANEL_PARTIALS = {"calendar-feeds": "panel"}


# ---- the feed itself ---------------------------------------------------------------


@bp.route("/feeds/<token>.ics")
@public
def feed(token: str):
    """The agenda as iCalendar for subscribing clients; the token is the only key."""
    found = calendar_feed.find_by_token(token)
    if found is None:
        abort(404)
    version = calendar_feed.feed_version(found)
    if calendar_feed.record_fetch(found):
        db.session.commit()
    if version.etag in request.if_none_match:
        body = b""  # answered 304 below: nothing to build
    else:
        domain = request.host.split(":")[0]
        body = calendar_feed.cached_body(
            found, version, lambda: calendar_feed.build_feed(found, _absolute_link, domain).body
        )
    response = make_response(body)
    response.mimetype = "text/calendar"
    response.charset = "utf-8"
    response.headers["Content-Disposition"] = 'inline; filename="agenda.ics"'
    # Private: the address is a secret; no shared cache may keep the agenda. Clients
    # come back with If-None-Match and get a 304 while nothing changed.
    response.headers["Cache-Control"] = "private, max-age=300"
    response.set_etag(version.etag)
    response.last_modified = version.last_modified
    response.headers["X-Robots-Tag"] = "noindex"
    return response.make_conditional(request)


def _absolute_link(record) -> str:
    """The address of an event or task in the CRM, for the calendar entry's description."""
    if isinstance(record, Task):
        return _first_url(("tasks.show", {"task_id": record.id}))
    if isinstance(record, Intervention):
        return _first_url(("interventions.show", {"intervention_id": record.id}))
    if record.parent_id is not None and record.recurrence_id is not None:
        key = occurrence_key(record.parent_id, record.recurrence_id)
    else:
        key = occurrence_key(record.id, None)
    return _first_url(
        ("agenda.show_event", {"key": key}),
        ("agenda.index", {"date": record.starts_at.date().isoformat()}),
    )


def _first_url(*candidates) -> str:
    """The first address the app can build: the agenda and task pages are other blueprints."""
    for endpoint, values in candidates:
        try:
            return url_for(endpoint, _external=True, **values)
        except BuildError:
            continue
    return url_for("main.home", _external=True)


# ---- managing the addresses --------------------------------------------------------


def _feed_url(feed: CalendarFeed | None) -> str | None:
    if feed is None:
        return None
    return url_for("feeds.feed", token=feed.token, _external=True)


def _webcal(url: str | None) -> str | None:
    """webcal:// opens the system's calendar app on a subscription dialog."""
    if url is None:
        return None
    return "webcal://" + url.split("://", 1)[1]


def _visible_teams() -> list[tuple[Team, bool]]:
    """(team, may manage its feed) for the teams whose feed address the user may see."""
    if current_user.role == "admin":
        teams = list(db.session.scalars(select(Team).order_by(Team.name)))
    elif current_user.team_id is not None:
        teams = [db.session.get(Team, current_user.team_id)]
    else:
        teams = []
    return [(team, calendar_feed.can_manage_team(current_user, team.id)) for team in teams]


def _panel_context() -> dict:
    mine = calendar_feed.active_feed_for_user(current_user)
    teams = []
    for team, manageable in _visible_teams():
        feed = calendar_feed.active_feed_for_team(team)
        url = _feed_url(feed)
        teams.append(
            {"team": team, "feed": feed, "url": url, "webcal": _webcal(url), "manage": manageable}
        )
    my_url = _feed_url(mine)
    return {"mine": mine, "my_url": my_url, "my_webcal": _webcal(my_url), "teams": teams}


def _panel():
    return hx.render("feeds/manage.html", PANEL_PARTIALS, **_panel_context())


def _after_change():
    """The panel again (under htmx), or back to the page the form was on."""
    if hx.is_partial():
        return hx.render_fragment("feeds/manage.html", "panel", **_panel_context())
    return hx.location(url_for("feeds.manage"))


@bp.route("/feeds")
@requires("agenda.view")
def manage():
    """My feed and my team's: a page of its own, and a section of the settings page."""
    return _panel()


@bp.route("/feeds/mine", methods=["POST"])
@requires("agenda.view")
def create_mine():
    calendar_feed.create_user_feed(current_user)
    db.session.commit()
    hx.toast(_("Your calendar address is ready. Add it to your calendar app."))
    return _after_change()


@bp.route("/feeds/teams/<int:team_id>", methods=["POST"])
@requires("agenda.plan_team")
def create_team(team_id: int):
    team = db.session.get(Team, team_id)
    if team is None or not calendar_feed.can_manage_team(current_user, team.id):
        abort(404)
    calendar_feed.create_team_feed(team, current_user)
    db.session.commit()
    hx.toast(_("The calendar address of team %(name)s is ready.", name=team.name))
    return _after_change()


def _manageable_feed(feed_id: int) -> CalendarFeed:
    feed = db.session.get(CalendarFeed, feed_id)
    if feed is None or feed.revoked_at is not None:
        abort(404)
    if not calendar_feed.can_manage(current_user, feed):
        abort(404)  # another person's feed: not even its existence is told
    return feed


@bp.route("/feeds/<int:feed_id>/regenerate", methods=["POST"])
@requires("agenda.view")
def regenerate(feed_id: int):
    feed = _manageable_feed(feed_id)
    calendar_feed.regenerate(feed, current_user)
    db.session.commit()
    hx.toast(_("New address created; the old one no longer works. Subscribe again with it."))
    return _after_change()


@bp.route("/feeds/<int:feed_id>/revoke", methods=["POST"])
@requires("agenda.view")
def revoke(feed_id: int):
    feed = _manageable_feed(feed_id)
    calendar_feed.revoke(feed)
    db.session.commit()
    hx.toast(_("Address revoked: calendar apps subscribed to it stop receiving the agenda."))
    current_app.logger.info("calendar feed %s revoked by user %s", feed.id, current_user.id)
    return _after_change()


from crm.blueprints.feeds import invitations  # noqa: E402, F401  (its routes join bp)
