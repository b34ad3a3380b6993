"""One URL: a full page when loaded directly, the asked-for fragment under htmx."""

from crm.extensions import db
from tests.factories import make_contact


def test_direct_load_boost_and_history_restore_get_the_whole_page(as_role):
    client, _ = as_role("sales")
    make_contact("Anne", "A")
    db.session.commit()
    for headers in (
        {},
        {
            "HX-Request": "true",
            "HX-Boosted": "true",
            "HX-Request-Type": "full",
            "HX-Target": "body",
        },
        {"HX-Request": "true", "HX-History-Restore-Request": "true", "HX-Request-Type": "full"},
        # Even a partial request for a target the route does not know gets the page.
        {"HX-Request": "true", "HX-Request-Type": "partial", "HX-Target": "div#elsewhere"},
    ):
        response = client.get("/contacts", headers=headers)
        assert "<html" in response.text, headers


def test_partial_request_gets_the_block_and_vary_keeps_caches_apart(as_role):
    client, _ = as_role("sales")
    response = client.get(
        "/contacts",
        headers={
            "HX-Request": "true",
            "HX-Request-Type": "partial",
            "HX-Target": "tbody#contact-rows",
        },
    )
    assert "<html" not in response.text
    assert {"HX-Request", "HX-Request-Type"} <= set(response.vary)


def test_security_headers_forbid_inline_script(as_role):
    client, _ = as_role("sales")
    response = client.get("/contacts")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "<script>" not in response.text and " onclick=" not in response.text


def test_body_carries_the_csrf_header_for_every_htmx_request(as_role):
    client, _ = as_role("sales")
    page = client.get("/").text
    assert '<body hx-headers:inherited=\'{"X-CSRFToken": "' in page


def test_toast_event_is_sent_as_hx_trigger_json(as_role):
    import json

    client, _ = as_role("sales")
    response = client.post(
        "/contacts",
        data={"first_name": "T", "email": "t@example.com"},
        headers={"HX-Request": "true", "HX-Request-Type": "partial", "HX-Target": "form#quick-add"},
    )
    event = json.loads(response.headers["HX-Trigger"])["crm:toast"]
    assert event == {"message": "T added.", "level": "success"}


def test_no_request_relies_on_an_inherited_target():
    """htmx 4 inherits nothing implicitly: a button with hx-post inside a form that says
    hx-target sends its answer to itself, not to the form's target. Every element that
    makes a request inside an element naming a (non-inherited) target must name its own."""
    from html.parser import HTMLParser
    from pathlib import Path

    requests = {"hx-get", "hx-post", "hx-put", "hx-patch", "hx-delete"}
    void = {"input", "img", "br", "hr", "meta", "link", "source", "area", "col", "wbr"}

    class Walk(HTMLParser):
        def __init__(self):
            super().__init__()
            self.stack, self.found = [], []

        def handle_starttag(self, tag, attrs):
            names = {name for name, _value in attrs}
            targeted = "hx-target" in names
            if names & requests and not targeted and any(self.stack):
                self.found.append(f"<{tag} {' '.join(sorted(names & requests))}>")
            if tag not in void:
                self.stack.append(targeted)

        def handle_endtag(self, tag):
            if tag not in void and self.stack:
                self.stack.pop()

    root = Path(__file__).resolve().parent.parent / "crm" / "templates"
    offenders = []
    for template in root.rglob("*.html"):
        walk = Walk()
        walk.feed(template.read_text())
        offenders += [f"{template.relative_to(root)}: {tag}" for tag in walk.found]
    assert offenders == [], offenders
