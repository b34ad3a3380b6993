"""Reading received mail: headers, charsets, bodies, attachments and limits, and the HTML
sanitizer run against a corpus of hostile markup (tests/fixtures/mail/xss/)."""

import html
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from html.parser import HTMLParser
from pathlib import Path

import pytest
from flask import current_app

from crm.models.types import utcnow
from crm.services.email_parsing import (
    UnreadableMessage,
    generated_message_id,
    message_ids,
    normalize_message_id,
    parse_message,
    sanitize_html,
)

XSS = sorted((Path(__file__).parent.parent / "fixtures" / "mail" / "xss").glob("*.html"))
pytestmark = pytest.mark.usefixtures("ctx")


def _latin1_message() -> bytes:
    head = (
        "From: =?iso-8859-1?q?Ren=E9e_L=E9ger?= <Renee.Leger@Example.FR>\r\n"
        "To: support@example.com, =?utf-8?b?SsOpcsO0bWU=?= <jerome@example.com>\r\n"
        "Cc: boss@example.com\r\n"
        "Subject: =?iso-8859-1?q?Probl=E8me_d'imprimante?= =?utf-8?b?4oCUIHVyZ2VudA==?=\r\n"
        "Message-ID: <AbC.123@Mail.Example.FR>\r\n"
        "Date: Tue, 3 Mar 2026 10:00:00 +0100\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=iso-8859-1\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
    )
    return head.encode("ascii") + "L'imprimante a cessé de répondre. Renée\r\n".encode("latin-1")


def test_a_latin1_body_and_encoded_word_headers_are_decoded():
    parsed = parse_message(_latin1_message())

    assert parsed.subject == "Problème d'imprimante— urgent"
    assert parsed.from_name == "Renée Léger"
    assert parsed.from_address == "Renee.Leger@Example.FR"
    assert parsed.to == ["support@example.com", "Jérôme <jerome@example.com>"]
    assert parsed.cc == ["boss@example.com"]
    assert parsed.text == "L'imprimante a cessé de répondre. Renée"
    assert parsed.snippet == parsed.text
    assert parsed.html is None
    assert parsed.date == datetime(2026, 3, 3, 9, 0, tzinfo=UTC)
    assert parsed.message_id == "<AbC.123@Mail.Example.FR>"
    assert parsed.message_id_key == "AbC.123@mail.example.fr"
    assert not parsed.automatic


def test_unknown_and_broken_charsets_decode_with_replacement_never_crash():
    raw = (
        b"From: someone@example.com\r\n"
        b"Subject: =?x-klingon?q?caf=E9?= and =?utf-8?b?!!not-base64?=\r\n"
        b"Content-Type: text/plain; charset=x-klingon\r\n\r\n"
        b"caf\xe9 \xff\xfe ok\r\n"
    )
    parsed = parse_message(raw)

    assert parsed.subject.startswith("caf")
    assert "ok" in parsed.text and "\ufffd" in parsed.text

    with_nul = parse_message(b"From: a@example.com\r\nSubject: a\x00b\r\n\r\nc\x00d\r\n")
    assert (with_nul.subject, with_nul.text) == ("ab", "cd")  # PostgreSQL refuses NUL in text

    utf8_lie = b"From: a@example.com\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nbad \xe9\xe8 bytes\r\n"
    assert parse_message(utf8_lie).text == "bad \ufffd\ufffd bytes"


def test_message_ids_are_normalized_and_generated_when_missing():
    assert normalize_message_id(" <Foo.Bar@EXAMPLE.com> ") == "Foo.Bar@example.com"
    assert normalize_message_id("<a\r\n b@Host>") == "ab@host"
    assert normalize_message_id("no-brackets@Host.Example") == "no-brackets@host.example"
    assert normalize_message_id(None) == ""
    assert message_ids("<a@x> <b@y>\r\n <a@x> junk") == ["<a@x>", "<b@y>"]
    assert message_ids("c@z") == ["<c@z>"]

    raw = b"From: a@example.com\r\nSubject: no id\r\n\r\nbody\r\n"
    parsed = parse_message(raw)
    assert parsed.message_id == generated_message_id(raw)
    assert parse_message(raw).message_id_key == parsed.message_id_key  # stable: dedup holds
    assert parse_message(raw + b"more\r\n").message_id_key != parsed.message_id_key


def test_reply_headers_date_fallbacks_and_the_sender_header():
    raw = (
        b"Sender: list@example.com\r\nSubject: Re: x\r\nDate: not a date\r\n"
        b"In-Reply-To: <Parent@Example.COM> (sent by Alice)\r\n"
        b"References: <root@example.com>\r\n <Parent@Example.COM>\r\n\r\nbody\r\n"
    )
    before = utcnow()
    parsed = parse_message(raw)

    assert parsed.in_reply_to == "<Parent@Example.COM>"
    assert parsed.references == ["<root@example.com>", "<Parent@Example.COM>"]
    assert parsed.from_address == "list@example.com"
    assert before <= parsed.date <= utcnow()
    naive = b"From: a@example.com\r\nDate: Tue, 3 Mar 2026 10:00:00 -0000\r\n\r\nx"
    assert parse_message(naive).date == datetime(2026, 3, 3, 10, 0, tzinfo=UTC)


def test_bytes_without_any_header_are_unreadable():
    with pytest.raises(UnreadableMessage):
        parse_message(b"\x00\x01\x02 this is not a mail at all")


def _rich_message(big: int) -> bytes:
    message = EmailMessage()
    message["From"] = "Alice <alice@example.com>"
    message["To"] = "sales@example.com"
    message["Subject"] = "Offer"
    message.set_content("See the attached offer.")
    message.add_alternative(
        '<p>See the <b>attached</b> offer.<img src="https://cdn.test/logo.png" alt="Logo"></p>',
        subtype="html",
    )
    message.add_attachment(
        b"%PDF-1.4 small", maintype="application", subtype="pdf", filename="offer.pdf"
    )
    message.add_attachment(b"z" * big, maintype="application", subtype="zip", filename="huge.zip")
    forwarded = EmailMessage()
    forwarded["From"] = "bob@example.com"
    forwarded["Subject"] = "Inner"
    forwarded.set_content("inner text must not become the body")
    message.add_attachment(forwarded)
    return message.as_bytes(policy=SMTP)


def test_attachments_over_the_limit_are_not_kept_and_the_body_says_so(monkeypatch):
    monkeypatch.setitem(current_app.config, "MAIL_ATTACHMENT_MAX_BYTES", 1000)
    parsed = parse_message(_rich_message(big=5000))

    assert [(a.filename, a.content_type) for a in parsed.attachments] == [
        ("offer.pdf", "application/pdf"),
        ("message.eml", "message/rfc822"),
    ]
    assert parsed.attachments[0].content == b"%PDF-1.4 small"
    assert b"inner text must not become the body" in parsed.attachments[1].content
    assert parsed.dropped == [("huge.zip", 5000)]
    assert parsed.text.startswith("See the attached offer.")
    assert "Attachment not kept (too large): huge.zip" in parsed.text
    assert "huge.zip" in parsed.snippet
    assert parsed.html.startswith("<p>See the <b>attached</b> offer.")
    assert 'data-remote-src="https://cdn.test/logo.png"' in parsed.html


def test_the_message_limit_counts_every_attachment_together(monkeypatch):
    monkeypatch.setitem(current_app.config, "MAIL_ATTACHMENT_MAX_BYTES", 10_000)
    monkeypatch.setitem(current_app.config, "MAIL_MESSAGE_MAX_BYTES", 6000)
    parsed = parse_message(_rich_message(big=5990))

    # huge.zip alone is under the per-attachment limit, but not with offer.pdf before it.
    assert [a.filename for a in parsed.attachments] == ["offer.pdf", "message.eml"]
    assert [name for name, _size in parsed.dropped] == ["huge.zip"]


def test_html_only_mail_gets_a_text_body_without_markup_or_script():
    raw = (
        b"From: a@example.com\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        b"<html><head><title>T</title><style>p{color:red}</style></head><body>"
        b"<p>Hello&nbsp;&amp; welcome</p><div>line two<br>line three</div>"
        b"<script>alert(1)</script></body></html>"
    )
    parsed = parse_message(raw)

    assert parsed.text == "Hello & welcome\n\nline two\nline three"
    assert "<script" not in parsed.html and "alert" not in parsed.html
    assert parsed.snippet == "Hello & welcome line two line three"


def test_a_long_body_makes_a_short_snippet():
    raw = b"From: a@example.com\r\n\r\n" + b"word " * 200
    parsed = parse_message(raw)
    assert len(parsed.snippet) <= 200 and parsed.snippet.endswith("…")


@pytest.mark.parametrize(
    ("headers", "automatic"),
    [
        ({"Auto-Submitted": "auto-replied"}, True),
        ({"Auto-Submitted": "no"}, False),
        ({"Precedence": "bulk"}, True),
        ({"Precedence": "auto_reply"}, True),
        ({"X-Autoreply": "yes"}, True),
        ({"From": "MAILER-DAEMON@mx.example.com"}, True),
        ({}, False),
    ],
)
def test_auto_replies_bounces_and_bulk_mail_are_recognized(headers, automatic):
    lines = {"From": "Alice <alice@example.com>", "Subject": "Out of office", **headers}
    raw = "".join(f"{k}: {v}\r\n" for k, v in lines.items()).encode() + b"\r\nbody\r\n"
    assert parse_message(raw).automatic is automatic


# ---- the sanitizer ----------------------------------------------------------------

_FORBIDDEN_TAGS = {
    "script", "style", "iframe", "frame", "frameset", "object", "embed", "applet", "param",
    "form", "input", "button", "textarea", "select", "meta", "base", "link", "svg", "math",
    "noscript", "video", "audio", "source", "marquee", "body", "html", "head", "template",
}  # fmt: skip


class _Elements(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, {name: value or "" for name, value in attrs}))

    handle_startendtag = handle_starttag


def _elements(markup: str) -> list[tuple[str, dict]]:
    parser = _Elements()
    parser.feed(markup)
    parser.close()
    return parser.elements


@pytest.mark.parametrize("sample", XSS, ids=[p.stem for p in XSS])
def test_the_xss_corpus_is_neutralized(sample):
    clean = sanitize_html(sample.read_text())

    for tag, attributes in _elements(clean):
        assert tag not in _FORBIDDEN_TAGS, clean
        for name, value in attributes.items():
            assert not name.startswith("on"), clean
            unescaped = html.unescape(value).lower().replace("\t", "").replace(" ", "")
            assert "javascript:" not in unescaped, clean
            assert not unescaped.startswith(("data:", "vbscript:")), clean
            assert name not in ("src", "srcdoc", "background", "formaction", "action"), clean
            if name == "style":
                assert "expression" not in unescaped and "url(" not in unescaped, clean
                assert "binding" not in unescaped and "behavior" not in unescaped, clean
            if name == "href":
                assert unescaped.startswith(("http:", "https:", "mailto:", "tel:")), clean
    assert sanitize_html(clean) == clean  # nothing left for a second pass to remove


def test_remote_images_wait_for_a_click_and_harmless_markup_survives():
    clean = sanitize_html((XSS[0].parent / "remote_images.html").read_text())
    images = [attrs for tag, attrs in _elements(clean) if tag == "img"]

    assert images[0] == {
        "data-remote-src": "https://tracker.test/open.gif?u=42&c=7",
        "alt": "Logo",
        "width": "120",
    }
    assert images[1] == {"data-remote-src": "http://img.test/b.png"}
    assert images[2] == {}  # cid: parts are not served: the image is dropped
    assert "tracker.test/bg.gif" not in clean and "td.gif" not in clean

    kept = sanitize_html(
        '<p style="color: red; position: fixed">Hi <a href="https://ok.test/?a=1&amp;b=2" '
        'target="_blank">link</a></p><table><tr><td colspan="2">cell</td></tr></table>'
    )
    assert kept == (
        '<p style="color:red">Hi <a href="https://ok.test/?a=1&amp;b=2" '
        'rel="noopener noreferrer nofollow">link</a></p>'
        '<table><tbody><tr><td colspan="2">cell</td></tr></tbody></table>'
    )


def test_sanitizing_keeps_text_that_looks_like_markup_inert():
    assert sanitize_html("<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>") == (
        "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>"
    )
