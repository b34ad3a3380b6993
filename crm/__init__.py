"""The CRM application factory."""

from urllib.parse import urlsplit

from flask import Flask, render_template, request
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from sqlalchemy import event
from sqlalchemy.engine import Engine

from crm import htmx as hx
from crm import schema
from crm.config import Config
from crm.extensions import babel, csrf, db, htmx_requests, limiter, login_manager


def create_app(config_class: type[Config] = Config, **overrides) -> Flask:
    config_class.check()
    app = Flask(__name__, instance_path=config_class.INSTANCE_PATH)
    app.config.from_object(config_class)
    app.config.update(overrides)
    _name_secure_cookies(app)
    if app.config["TRUSTED_PROXIES"]:
        # Behind a reverse proxy that terminates TLS: trust its X-Forwarded-For/-Proto
        # (client address for rate limits and the audit log, https for HSTS and cookies).
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)

    _init_extensions(app)
    _register_blueprints(app)
    _register_error_pages(app)
    _register_template_helpers(app)
    app.before_request(_refuse_nul_characters)
    app.after_request(hx.apply_headers)
    app.after_request(_security_headers)

    from crm.cli import register_commands

    register_commands(app)
    return app


def _name_secure_cookies(app: Flask) -> None:
    """Cookies sent over HTTPS only also carry the __Host- prefix: browsers then refuse them
    unless set by this very host, secure, for the whole site, so a sibling subdomain cannot
    plant or overwrite a session (ASVS 5.0 3.3.1)."""
    for secure, name in (
        ("SESSION_COOKIE_SECURE", "SESSION_COOKIE_NAME"),
        ("REMEMBER_COOKIE_SECURE", "REMEMBER_COOKIE_NAME"),
    ):
        value = app.config.get(name) or (
            "session" if name.startswith("SESSION") else "remember_token"
        )
        if app.config.get(secure) and not value.startswith("__Host-"):
            app.config[name] = f"__Host-{value}"


def _init_extensions(app: Flask) -> None:
    from crm import i18n, models  # noqa: F401  (models register their tables)
    from crm.queues import redis_connection, redis_url_for_clients
    from crm.services import audit  # noqa: F401  (writes the audit log after each flush)

    db.init_app(app)
    app.cli.add_command(schema.migration_commands)
    csrf.init_app(app)
    htmx_requests.init_app(app)
    babel.init_app(app, locale_selector=i18n.select_locale, timezone_selector=i18n.select_timezone)

    with app.app_context():
        app.config.setdefault("RATELIMIT_STORAGE_URI", redis_url_for_clients(redis_connection()))
        if app.config["SQL_QUERY_COUNTING"]:
            from crm import sql_counter

            sql_counter.install(app, db.engine)
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    limiter.init_app(app)

    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = None
    login_manager.session_protection = "basic"

    @login_manager.user_loader
    def load_user(session_token: str):
        from crm.services import sessions

        return sessions.load(session_token)

    @login_manager.unauthorized_handler
    def unauthorized():
        from flask import url_for

        # Under htmx the request may be for a fragment: come back to the page the user was on.
        current = urlsplit(request.headers.get("HX-Current-URL", "")) if hx.is_htmx() else None
        here = (
            (current.path + (f"?{current.query}" if current.query else ""))
            if current and current.path
            else None
        )
        return hx.full_reload(url_for("auth.login", next=here or request.full_path.rstrip("?")))


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, connection_record):
    """WAL for concurrent readers, enforced foreign keys, and waiting rather than failing on a lock."""
    module = type(dbapi_connection).__module__
    if not module.startswith("sqlite3"):
        return
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _register_blueprints(app: Flask) -> None:
    from crm.blueprints.account.routes import bp as account_bp
    from crm.blueprints.admin.routes import bp as admin_bp
    from crm.blueprints.agenda.routes import bp as agenda_bp
    from crm.blueprints.auth.routes import bp as auth_bp
    from crm.blueprints.campaigns.routes import bp as campaigns_bp
    from crm.blueprints.companies.routes import bp as companies_bp
    from crm.blueprints.contacts.routes import bp as contacts_bp
    from crm.blueprints.custom_fields.routes import bp as custom_fields_bp
    from crm.blueprints.dashboards.routes import bp as dashboards_bp
    from crm.blueprints.deals import bp as deals_bp
    from crm.blueprints.email.routes import bp as email_bp
    from crm.blueprints.exports.routes import bp as exports_bp
    from crm.blueprints.feeds.routes import bp as feeds_bp
    from crm.blueprints.imports.routes import bp as imports_bp
    from crm.blueprints.incidents.routes import bp as incidents_bp
    from crm.blueprints.interventions.routes import bp as interventions_bp
    from crm.blueprints.leads.routes import bp as leads_bp
    from crm.blueprints.mailboxes.routes import bp as mailboxes_bp
    from crm.blueprints.main.routes import bp as main_bp
    from crm.blueprints.merge.routes import bp as merge_bp
    from crm.blueprints.notifications.routes import bp as notifications_bp
    from crm.blueprints.products.routes import bp as products_bp
    from crm.blueprints.reports.routes import bp as reports_bp
    from crm.blueprints.search.routes import bp as search_bp
    from crm.blueprints.tasks.routes import bp as tasks_bp

    blueprints = (
        main_bp,
        auth_bp,
        contacts_bp,
        companies_bp,
        deals_bp,
        products_bp,
        search_bp,
        agenda_bp,
        tasks_bp,
        notifications_bp,
        feeds_bp,
        incidents_bp,
        interventions_bp,
        account_bp,
        admin_bp,
        email_bp,
        mailboxes_bp,
        leads_bp,
        custom_fields_bp,
        imports_bp,
        exports_bp,
        merge_bp,
        dashboards_bp,
        reports_bp,
        campaigns_bp,
    )
    for blueprint in blueprints:
        app.register_blueprint(blueprint)


def _register_error_pages(app: Flask) -> None:
    from flask_babel import gettext as _

    messages = {
        400: lambda: _("The request could not be understood. Please reload the page."),
        403: lambda: _("You do not have access to this. Ask an administrator if you need it."),
        404: lambda: _("This page does not exist, or you do not have access to it."),
        405: lambda: _("This action is not allowed here."),
        409: lambda: _("This record was changed by someone else. Reload to see their changes."),
        413: lambda: _("The file is too large."),
        429: lambda: _("Too many attempts. Please wait a few minutes and try again."),
        500: lambda: _("Something went wrong on our side. The error has been logged."),
    }

    def handle(error):
        status = getattr(error, "code", 500) or 500
        message = messages.get(status, messages[500])()
        if isinstance(error, CSRFError):
            message = _("Your session expired or the form is stale. Please reload the page.")
        if hx.is_htmx():
            return hx.error_response(status, message)
        return render_template("error.html", status=status, message=message), status

    for status in messages:
        app.register_error_handler(status, handle)
    app.register_error_handler(CSRFError, handle)

    from sqlalchemy.exc import DataError
    from werkzeug.exceptions import BadRequest

    def refuse_bad_data(error):
        # A value the database cannot hold (an id beyond its integer range...) comes from
        # the request: the request is wrong, not the server. Nothing of it is kept.
        db.session.rollback()
        return handle(BadRequest())

    app.register_error_handler(DataError, refuse_bad_data)
    app.register_error_handler(OverflowError, refuse_bad_data)  # SQLite's way of saying it


def _register_template_helpers(app: Flask) -> None:
    from crm import formatting, labels
    from crm.permissions import can, can_edit_event, event_details_visible

    app.jinja_env.globals.update(
        can=can, can_edit_event=can_edit_event, event_details_visible=event_details_visible
    )
    app.jinja_env.filters.update(formatting.FILTERS)
    app.jinja_env.add_extension("jinja2.ext.do")

    app.jinja_env.globals.update(
        sidebar_links=labels.sidebar_links,
        admin_areas=labels.admin_areas,
        area_labels=labels.AREA_LABELS,
        stage_labels=labels.STAGE_LABELS,
        activity_labels=labels.ACTIVITY_LABELS,
        call_outcome_labels=labels.CALL_OUTCOME_LABELS,
        role_labels=labels.ROLE_LABELS,
        system_event_text=labels.system_event_text,
        incident_kind_labels=labels.INCIDENT_KIND_LABELS,
        priority_labels=labels.PRIORITY_LABELS,
        incident_status_labels=labels.INCIDENT_STATUS_LABELS,
        channel_labels=labels.CHANNEL_LABELS,
        intervention_status_labels=labels.INTERVENTION_STATUS_LABELS,
    )

    @app.context_processor
    def _layout_context():
        from flask_babel import get_locale

        return {"current_user": current_user, "current_locale": str(get_locale() or "en")}


def _refuse_nul_characters():
    """No field needs a NUL character and PostgreSQL refuses one in text: a 400, not a 500."""
    from flask import abort

    for values in (request.args, request.form):
        if any("\x00" in value for _, value in values.items(multi=True)):
            abort(400)


def _security_headers(response):
    # No inline script, no eval: htmx is configured through a <meta> tag, our code lives in
    # static/js/app.js, and no template uses hx-on, js: values or trigger filters (which
    # htmx runs with new Function()). A test checks the templates for them.
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'",
    )
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    response.headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
    if request.is_secure:
        response.headers.setdefault(
            "Strict-Transport-Security", "max-age=31536000; includeSubDomains"
        )
    # Pages of a signed-in user hold customer data: no copy in shared or browser caches.
    if request.endpoint != "static" and current_user and current_user.is_authenticated:
        response.headers.setdefault("Cache-Control", "no-store")
    return response
