"""What the browser gets: every text a user typed comes back escaped, the security headers,
the cookie flags, and templates that need neither inline script nor eval (ASVS V3)."""

import re
from pathlib import Path

import pytest

from crm import create_app
from crm.config import TestConfig
from crm.extensions import db
from crm.models import Company, Contact, Deal, Product
from tests.conftest import htmx_headers
from tests.factories import make_activity, make_deal, make_product, make_user, start_session

TEMPLATES = Path(__file__).resolve().parents[2] / "crm" / "templates"

PAYLOADS = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "'><svg onload=alert(1)>",
    "</textarea><script>alert(1)</script>",
    "{{ 7*7 }}<b>bold</b>",
]
RAW = re.compile(r"<script>alert|<img src=x|<svg onload|<b>bold</b>")


def _filled(model, payload) -> dict:
    """Every free-text column of `model` set to `payload`, cut to the column's length."""
    lengths = {c.key: getattr(c.type, "length", None) for c in model.__table__.columns}
    return {name: payload[: lengths[name] or None] for name in _text_columns(model)}


def _text_columns(model) -> list[str]:
    from sqlalchemy import String, Text

    skip = {
        "name_key",
        "title_key",
        "sort_name",
        "email_key",
        "phone_key",
        "search_text",
        "currency",
        "stage",
        "kind",
        "consent_status",
        "email",
        "linkedin_url",
        "twitter_url",
        "website",
        "code",
        "token_hash",
        "password_hash",
    }
    return [
        c.key
        for c in model.__table__.columns
        if isinstance(c.type, String | Text) and c.key not in skip and c.type.length != 3
    ]


@pytest.mark.parametrize("payload", PAYLOADS, ids=range(len(PAYLOADS)))
def test_every_text_field_is_rendered_escaped(as_role, payload):
    client, admin = as_role("admin")
    rep = make_user(role="sales", name=payload)
    contact = Contact(owner=rep, **_filled(Contact, payload))
    company = Company(owner=rep, **_filled(Company, payload))
    contact.company = company
    db.session.add_all([contact, company])
    deal = make_deal(owner=rep, contact=contact, company=company, **_filled(Deal, payload))
    deal.stage.name = payload[:80]
    deal.pipeline.name = payload[:120]
    product = make_product(**_filled(Product, payload))
    make_activity(contact, kind="note", subject=payload, body=payload, author=rep)
    from crm.services.contacts import set_tags

    set_tags(contact, [payload[:60]])
    db.session.commit()
    pages = [
        f"/contacts/{contact.id}",
        "/contacts",
        f"/contacts?q={payload}",
        f"/companies/{company.id}",
        "/companies",
        f"/deals/{deal.id}",
        "/deals?view=list",
        "/deals",
        f"/search?q={payload}",
        f"/search?q={contact.first_name[:4]}",
        "/products",
        "/admin/users",
        "/admin/audit",
        "/admin/security",
        "/admin/pipelines",
        "/deals/forecast",
        "/",
    ]
    for path in pages:
        for headers in ({}, htmx_headers()):
            response = client.get(path, headers=headers)
            assert response.status_code == 200, path
            assert not RAW.search(response.text), f"unescaped payload on {path}"
    assert (
        "&lt;script&gt;" in client.get(f"/contacts/{contact.id}").text
        or "&lt;" in client.get(f"/contacts/{contact.id}").text
    )
    assert product.id


def test_links_only_to_web_addresses(as_role):
    client, _ = as_role("sales")
    contact = Contact(first_name="A", email="a@example.com")
    db.session.add(contact)
    db.session.commit()
    for url in ("javascript://example.com/%0Aalert(1)", "data://example.com/text"):
        response = client.post(f"/contacts/{contact.id}/fields/linkedin_url", data={"value": url})
        assert (
            response.status_code == 422 and "Only http:// or https:// addresses." in response.text
        )
    assert (
        client.post(
            f"/contacts/{contact.id}/fields/linkedin_url",
            data={"value": "https://linkedin.com/in/a"},
        ).status_code
        == 303
    )


# ---- headers -------------------------------------------------------------------------------


def test_security_headers_on_every_page(as_role, client):
    signed_in, _ = as_role("sales")
    for response in (client.get("/login"), signed_in.get("/contacts"), signed_in.get("/nowhere")):
        headers = response.headers
        csp = dict(
            part.strip().split(" ", 1) for part in headers["Content-Security-Policy"].split(";")
        )
        assert csp["script-src"] == "'self'" and csp["style-src"] == "'self'"
        assert csp["object-src"] == "'none'" and csp["frame-ancestors"] == "'none'"
        assert csp["base-uri"] == "'none'" and csp["form-action"] == "'self'"
        assert "unsafe-inline" not in headers["Content-Security-Policy"]
        assert "unsafe-eval" not in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
        assert headers["X-Frame-Options"] == "DENY"
        assert "Strict-Transport-Security" not in headers  # plain http: no HSTS


def test_signed_in_pages_are_not_cached(as_role, client):
    signed_in, _ = as_role("sales")
    assert signed_in.get("/contacts").headers["Cache-Control"] == "no-store"
    assert "no-store" not in client.get("/static/css/app.css").headers.get("Cache-Control", "")


def test_hsts_over_https(client):
    response = client.get("/login", base_url="https://crm.example")
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


def test_https_behind_a_trusted_proxy(app):
    proxied = create_app(TestConfig, WTF_CSRF_ENABLED=False, TRUSTED_PROXIES=1)
    response = proxied.test_client().get("/login", headers={"X-Forwarded-Proto": "https"})
    assert "Strict-Transport-Security" in response.headers
    untrusted = app.test_client().get("/login", headers={"X-Forwarded-Proto": "https"})
    assert "Strict-Transport-Security" not in untrusted.headers


def test_cookie_flags_in_production(app, ctx):
    production = create_app(
        TestConfig, SESSION_COOKIE_SECURE=True, REMEMBER_COOKIE_SECURE=True, WTF_CSRF_ENABLED=False
    )
    user = make_user(email="rep@example.com")
    db.session.commit()
    response = production.test_client().post(
        "/login",
        data={"email": "rep@example.com", "password": "correct horse battery", "remember": "y"},
        base_url="https://crm.example",
    )
    cookies = response.headers.getlist("Set-Cookie")
    assert len(cookies) >= 2
    for cookie in cookies:
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie, cookie
        # Bound to this host and the whole site: no sibling subdomain can set or replace it.
        assert cookie.startswith("__Host-") and "Path=/;" in cookie, cookie
        assert "Domain=" not in cookie, cookie
    # Signed in with them: the next page is served.
    assert response.status_code in (302, 303)
    assert user.id


def test_default_config_sets_httponly_and_samesite():
    assert TestConfig.SESSION_COOKIE_HTTPONLY and TestConfig.REMEMBER_COOKIE_HTTPONLY
    assert TestConfig.SESSION_COOKIE_SAMESITE == "Lax" == TestConfig.REMEMBER_COOKIE_SAMESITE


def test_the_qr_code_is_served_as_svg_with_the_csp(as_role):
    client, user = as_role("sales")
    client.post("/settings/two-factor/start")
    response = client.get("/settings/two-factor/qr.svg")
    assert response.mimetype == "image/svg+xml"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert start_session  # (the factory signs the user in)


# ---- templates need no inline script and no eval ---------------------------------------------

FORBIDDEN = [
    (re.compile(r"<script(?![^>]*\bsrc=)[^>]*>"), "inline <script>"),
    (re.compile(r"\son[a-z]+\s*="), "inline event handler"),
    (re.compile(r"\bstyle\s*="), "style attribute"),
    (re.compile(r"hx-on[:-]"), "hx-on (htmx runs it with new Function)"),
    (re.compile(r"(?:hx-[a-z:-]+)\s*=\s*[\"'][^\"']*\bjs:"), "js: value (eval)"),
    (re.compile(r"hx-trigger\s*=\s*[\"'][^\"']*\["), "hx-trigger filter (eval)"),
    (re.compile(r"javascript:"), "javascript: URL"),
]


def test_templates_need_neither_inline_script_nor_eval():
    problems = []
    for path in TEMPLATES.rglob("*.html"):
        text = path.read_text()
        for pattern, what in FORBIDDEN:
            for match in pattern.finditer(text):
                problems.append(f"{path.relative_to(TEMPLATES)}: {what}: {match.group(0)!r}")
    assert problems == []


def test_htmx_is_configured_without_eval():
    base = (TEMPLATES / "base.html").read_text()
    config = re.search(r'<meta name="htmx-config" content=\'([^\']+)\'>', base).group(1)
    assert '"includeIndicatorCSS": false' in config  # no style sheet built by script
    vendor = Path(__file__).resolve().parents[2] / "crm" / "static" / "js" / "app.js"
    assert "eval(" not in vendor.read_text() and "new Function" not in vendor.read_text()


@pytest.mark.parametrize("payload", PAYLOADS, ids=range(len(PAYLOADS)))
def test_text_of_the_later_records_is_rendered_escaped(as_role, payload):
    """Email, leads, custom fields, imports, segments and campaigns: what people type there
    comes back escaped too, on their lists, their pages and the contact's page."""
    from crm.models import (
        Campaign,
        CustomFieldDefinition,
        DataImport,
        EmailMessage,
        EmailTemplate,
        LeadForm,
        Mailbox,
        RoutingRule,
        ScoringRule,
        Segment,
        Team,
    )
    from tests.factories import make_contact, make_event, make_incident, make_task

    client, admin = as_role("admin")
    team = Team(name=payload[:80])
    field = CustomFieldDefinition(entity="contact", key="note", label=payload[:120])
    contact = make_contact("Xavier", payload[:80], custom_fields={"note": payload})
    segment = Segment(name=payload[:120], owner_id=admin.id, filters=[])
    template = EmailTemplate(name=payload[:120], subject=payload, body=payload, usage="sales")
    campaign = Campaign(
        name=payload[:160], segment=segment, template=template, subject=payload, body=payload
    )
    mailbox = Mailbox(name=payload[:120], address="sales@xss.example", purpose="sales")
    message = EmailMessage(
        direction="in",
        message_id="<xss@example.com>",
        message_id_key="xss@example.com",
        subject=payload,
        from_address="someone@example.com",
        from_name=payload,
        snippet=payload,
        text_body=payload,
        mailbox=mailbox,
        contact=contact,
    )
    lead_form = LeadForm(name=payload[:120], token="xss-form-token")
    routing = RoutingRule(name=payload[:120], conditions={"countries": ["FR"]}, team=team)
    scoring = ScoringRule(name=payload[:120], condition={"type": "inactive", "days": 30}, points=5)
    data_import = DataImport(
        entity="contacts", filename=payload[:255], content=b"Email\n", created_by=admin
    )
    db.session.add_all(
        [team, field, segment, template, campaign, mailbox, message, lead_form, routing]
    )
    db.session.add_all([scoring, data_import])
    incident = make_incident(contact, subject=payload)
    task = make_task(admin, title=payload[:200])
    event = make_event(admin, title=payload[:200], location=payload[:200])
    db.session.commit()
    pages = [
        f"/contacts/{contact.id}",
        "/admin/fields",
        f"/admin/fields/{field.id}/edit",
        "/segments",
        f"/segments/{segment.id}",
        "/campaigns",
        f"/campaigns/{campaign.id}",
        "/incidents/templates",
        "/admin/mailboxes",
        f"/email/messages/{message.id}",
        "/leads/forms",
        "/leads/f/xss-form-token",
        "/leads/routing",
        "/leads/scoring",
        "/imports",
        f"/imports/{data_import.id}",
        "/incidents",
        f"/incidents/{incident.id}",
        "/tasks",
        f"/tasks/{task.id}",
        f"/agenda/events/{event.id}",
        "/agenda?view=week",
        "/admin/users",
        "/dashboard",
        f"/search?q={payload}",
    ]
    for path in pages:
        for headers in ({}, htmx_headers()):
            response = client.get(path, headers=headers)
            assert response.status_code == 200, path
            assert not RAW.search(response.text), f"unescaped payload on {path}"
