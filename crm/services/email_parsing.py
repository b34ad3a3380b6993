"""Reading a received message: raw bytes in, what the CRM keeps of it out.

parse_message() never trusts the sender: headers that do not parse fall back to their
raw text, unknown or broken charsets decode with replacement characters, attachments
over the size limits are dropped (and said so in the body), and HTML goes through nh3
before anyone sees it, with remote images turned off until the reader asks for them.
It raises UnreadableMessage only for bytes that are no mail at all; the sync quarantines
those.
"""

import hashlib
import html
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.headerregistry import Address
from email.message import EmailMessage as MimeMessage
from email.utils import getaddresses, parsedate_to_datetime
from html.parser import HTMLParser

import nh3
from flask import current_app, has_app_context, has_request_context
from flask_babel import force_locale, get_locale
from flask_babel import gettext as _

from crm.i18n import office_language
from crm.models.types import utcnow

DEFAULT_ATTACHMENT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_MESSAGE_MAX_BYTES = 25 * 1024 * 1024
SNIPPET_LENGTH = 200
# Column sizes of EmailMessage: a long header is cut rather than failing the whole message.
_HEADER_LENGTH = 998
_ADDRESS_LENGTH = 254

_MSGID = re.compile(r"<([^<>]+)>")
_SPACES = re.compile(r"\s+")


class UnreadableMessage(ValueError):
    """Bytes that hold no mail at all (no header); the sync quarantines them."""


@dataclass
class ParsedAttachment:
    filename: str
    content_type: str
    content: bytes

    @property
    def size(self) -> int:
        return len(self.content)


@dataclass
class ParsedEmail:
    message_id: str  # as written, "<abc@host>", or generated from the bytes when missing
    message_id_key: str  # normalize_message_id(message_id): what dedup and threading compare
    in_reply_to: str | None  # the first Message-ID of the header, "<...>"
    references: list[str]  # oldest first, each "<...>"
    subject: str
    from_name: str | None
    from_address: str
    to: list[str]  # "Name <address>" or "address"
    cc: list[str]
    date: datetime  # aware UTC
    text: str
    html: str | None  # sanitized
    snippet: str
    attachments: list[ParsedAttachment] = field(default_factory=list)
    dropped: list[tuple[str, int]] = field(default_factory=list)  # (filename, size) not kept
    # An auto-reply, a bounce or bulk mail: kept on the timeline, never opens anything.
    automatic: bool = False


# ---- Message-IDs -------------------------------------------------------------------


def normalize_message_id(value: str | None) -> str:
    """The comparable form of a Message-ID: no <>, no whitespace, the domain lowercased.

    The local part keeps its case: RFC 5322 lets two ids differ only by it."""
    if not value:
        return ""
    found = _MSGID.search(value)
    text = found.group(1) if found else value
    text = _SPACES.sub("", text).strip("<>")
    local, at, domain = text.rpartition("@")
    if not at:
        return text[:_HEADER_LENGTH]
    return f"{local}@{domain.lower()}"[:_HEADER_LENGTH]


def message_ids(value: str | None) -> list[str]:
    """Every "<id>" of an In-Reply-To or References header, in order, once each."""
    if not value:
        return []
    found = [f"<{_SPACES.sub('', m)}>" for m in _MSGID.findall(value)]
    if not found:  # some clients forget the brackets
        found = [f"<{token.strip('<>')}>" for token in value.split() if "@" in token]
    return list(dict.fromkeys(found))


def generated_message_id(raw: bytes) -> str:
    """A stable id for a message that has none: the same bytes always get the same id,
    so a resync finds the row it stored the first time."""
    return f"<{hashlib.sha256(raw).hexdigest()[:40]}@no-message-id.invalid>"


# ---- headers -----------------------------------------------------------------------


def _header(message, name: str) -> str:
    """A header as text, decoded when it can be, else as received; never raises."""
    try:
        value = message.get(name)
    except Exception:  # noqa: BLE001  (the parser's own bugs on hostile headers)
        value = None
        for key, raw in message.raw_items():
            if key.lower() == name.lower():
                value = raw
                break
    if value is None:
        return ""
    return _SPACES.sub(" ", str(value)).replace("\x00", "").strip()


def _addresses(message, name: str) -> list[tuple[str, str]]:
    """(name, address) pairs of an address header, each address non-empty."""
    pairs: list[tuple[str, str]] = []
    try:
        header = message.get(name)
        groups = getattr(header, "addresses", None) if header is not None else ()
        for address in groups or ():
            if isinstance(address, Address) and address.addr_spec and "@" in address.addr_spec:
                pairs.append((address.display_name or "", address.addr_spec))
    except Exception:  # noqa: BLE001  (fall back to the lenient parser below)
        pairs = []
    if not pairs:
        pairs = [(n, a) for n, a in getaddresses([_header(message, name)]) if "@" in a]
    return [
        (n.replace("\x00", "").strip()[:_ADDRESS_LENGTH], a.strip()[:_ADDRESS_LENGTH])
        for n, a in pairs
        if "\x00" not in a
    ]


_SPECIALS = re.compile(r'[()<>@,;:\\".\[\]]')


def _formatted(pairs: list[tuple[str, str]]) -> list[str]:
    """Each as "Name <address>" in Unicode (formataddr writes encoded words), quoted if needed."""
    out = []
    for name, address in pairs:
        if name and _SPECIALS.search(name):
            name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
        out.append(f"{name} <{address}>" if name else address)
    return out


def _date(message) -> datetime:
    value = _header(message, "Date")
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return utcnow()
    if moment.tzinfo is None:  # "-0000": a time in UTC whose zone is unknown
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


_AUTOMATIC_PRECEDENCE = {"bulk", "auto_reply", "junk", "list"}
_DAEMONS = {"mailer-daemon", "postmaster"}


def _is_automatic(message, from_address: str) -> bool:
    """RFC 3834 auto-replies, delivery reports and bulk mail."""
    auto = _header(message, "Auto-Submitted").lower()
    if auto and not auto.startswith("no"):
        return True
    if _header(message, "Precedence").lower() in _AUTOMATIC_PRECEDENCE:
        return True
    if _header(message, "X-Autoreply") or _header(message, "X-Autorespond"):
        return True
    if from_address.split("@")[0].lower() in _DAEMONS:
        return True
    return message.get_content_type() == "multipart/report"


# ---- bodies and attachments --------------------------------------------------------


def _decoded_text(part) -> str:
    """A text part's content; unknown or broken charsets decode with replacement."""
    try:
        return part.get_content()
    except (LookupError, UnicodeError, AssertionError, ValueError):
        payload = part.get_payload(decode=True) or b""
        charset = part.get_content_charset() or "utf-8"
        try:
            return payload.decode(charset, errors="replace")
        except LookupError:
            return payload.decode("utf-8", errors="replace")


def _is_attachment(part) -> bool:
    if part.get_content_disposition() == "attachment" or part.get_filename():
        return True
    return part.get_content_maintype() not in ("text", "multipart")


def _leaves(message):
    """The parts that hold content, without looking inside attached messages."""
    if message.is_multipart() and message.get_content_maintype() == "multipart":
        for part in message.get_payload():
            yield from _leaves(part)
    else:
        yield message


def _attachment_bytes(part) -> bytes:
    if part.get_content_type() == "message/rfc822":
        inner = part.get_payload()
        inner = inner[0] if isinstance(inner, list) and inner else inner
        return inner.as_bytes() if hasattr(inner, "as_bytes") else b""
    return part.get_payload(decode=True) or b""


def _filename(part, index: int) -> str:
    try:
        name = part.get_filename()
    except Exception:  # noqa: BLE001  (a broken RFC 2231 parameter)
        name = None
    if not name:
        subtype = part.get_content_subtype() or "bin"
        name = (
            "message.eml"
            if part.get_content_type() == "message/rfc822"
            else f"part-{index}.{subtype}"
        )
    return _SPACES.sub(" ", name).strip().replace("/", "_").replace("\\", "_")[:255]


def _limits() -> tuple[int, int]:
    config = current_app.config if has_app_context() else {}
    return (
        int(config.get("MAIL_ATTACHMENT_MAX_BYTES", DEFAULT_ATTACHMENT_MAX_BYTES)),
        int(config.get("MAIL_MESSAGE_MAX_BYTES", DEFAULT_MESSAGE_MAX_BYTES)),
    )


def _size_text(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def _dropped_note(dropped: list[tuple[str, int]]) -> str:
    """Written into the stored body: in the request's language, else the site's."""
    locale = None if has_request_context() else office_language()
    with force_locale(locale or get_locale()):
        lines = [
            _("Attachment not kept (too large): %(name)s, %(size)s", name=n, size=_size_text(s))
            for n, s in dropped
        ]
    return "\n".join(f"[{line}]" for line in lines)


# ---- HTML --------------------------------------------------------------------------

_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "center", "cite", "code", "col",
    "colgroup", "dd", "del", "div", "dl", "dt", "em", "font", "h1", "h2", "h3", "h4", "h5",
    "h6", "hr", "i", "img", "ins", "kbd", "li", "ol", "p", "pre", "q", "s", "small", "span",
    "strike", "strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr",
    "tt", "u", "ul",
}  # fmt: skip
_CELL = {"align", "valign", "colspan", "rowspan", "width", "height", "bgcolor", "style"}
_ATTRIBUTES = {
    "*": {"style", "title", "dir", "lang", "align"},
    "a": {"href", "name"},
    "img": {"src", "alt", "width", "height", "border", "data-remote-src"},
    "font": {"color", "face", "size"},
    "table": {"width", "border", "cellpadding", "cellspacing", "bgcolor", "align"},
    "td": _CELL,
    "th": _CELL,
    "tr": {"align", "valign", "bgcolor"},
    "col": {"span", "width"},
    "colgroup": {"span", "width"},
    "ol": {"start", "type"},
}
_URL_SCHEMES = {"http", "https", "mailto", "tel"}
# Layout and typography only: nothing that positions over the page or loads a URL.
_STYLE_PROPERTIES = {
    "background-color", "border", "border-bottom", "border-collapse", "border-color",
    "border-left", "border-radius", "border-right", "border-spacing", "border-style",
    "border-top", "border-width", "color", "direction", "display", "font", "font-family",
    "font-size", "font-style", "font-variant", "font-weight", "height", "letter-spacing",
    "line-height", "list-style-type", "margin", "margin-bottom", "margin-left",
    "margin-right", "margin-top", "max-width", "min-width", "padding", "padding-bottom",
    "padding-left", "padding-right", "padding-top", "text-align", "text-decoration",
    "text-indent", "text-transform", "vertical-align", "white-space", "width", "word-break",
}  # fmt: skip
# Values that could load something or run script in some engine, whatever the property.
_UNSAFE_STYLE = re.compile(r"url\s*\(|expression|javascript|behavior|binding|@import|\\|/\*", re.I)


def _attribute_filter(tag: str, attribute: str, value: str) -> str | None:
    if attribute == "style":
        kept = [d for d in value.split(";") if d.strip() and not _UNSAFE_STYLE.search(d)]
        return ";".join(kept) or None
    remote = value.strip().lower().startswith(("http:", "https:"))
    if tag == "img" and attribute in ("src", "data-remote-src") and not remote:
        return None  # cid:, data: and relative sources show nothing useful here
    return value


# Relative links point at whatever serves the message (our own pages): denied, like
# every scheme that is not a web page, a mail address or a phone number.
_CLEANER = nh3.Cleaner(
    tags=_TAGS,
    clean_content_tags={"script", "style", "title", "head", "template", "noscript"},
    attributes=_ATTRIBUTES,
    attribute_filter=_attribute_filter,
    url_schemes=_URL_SCHEMES,
    url_relative="deny",
    filter_style_properties=_STYLE_PROPERTIES,
    link_rel="noopener noreferrer nofollow",
    strip_comments=True,
)


def _clean(markup: str) -> str:
    return _CLEANER.clean(markup)


class _RemoteImages(HTMLParser):
    """Re-emits nh3's output with each remote <img src> moved to data-remote-src."""

    def __init__(self):
        super().__init__(convert_charrefs=False)
        self.out: list[str] = []

    def _tag(self, tag, attrs, closing: str) -> None:
        if tag != "img" or not any(name == "src" for name, _value in attrs):
            self.out.append(self.get_starttag_text())
            return
        parts = []
        for name, value in attrs:
            name = "data-remote-src" if name == "src" else name
            if name == "data-remote-src" and any(n == "data-remote-src" for n, _v in attrs):
                continue  # the sender's own data-remote-src never survives next to a src
            parts.append(f' {name}="{html.escape(value or "", quote=True)}"')
        self.out.append(f"<img{''.join(parts)}{closing}>")

    def handle_starttag(self, tag, attrs):
        self._tag(tag, attrs, "")

    def handle_startendtag(self, tag, attrs):
        self._tag(tag, attrs, " /")

    def handle_endtag(self, tag):
        self.out.append(f"</{tag}>")

    def handle_data(self, data):
        self.out.append(data)

    def handle_entityref(self, name):
        self.out.append(f"&{name};")

    def handle_charref(self, name):
        self.out.append(f"&#{name};")


def sanitize_html(markup: str) -> str:
    """Mail HTML safe to show in a sandboxed frame: no script, no active content, no
    event handlers, no javascript:/data: links, styles limited to layout and type, and
    remote images kept as <img data-remote-src> (not loaded until the reader asks)."""
    cleaned = _clean(markup or "")
    rewriter = _RemoteImages()
    rewriter.feed(cleaned)
    rewriter.close()
    # Once more through nh3: whatever the rewrite produced is held to the same list.
    return _clean("".join(rewriter.out))


_BLOCKS = {"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "table", "hr"}  # fmt: skip


class _TextOfHtml(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style", "head", "title"):
            self.skipping += 1
        elif tag in _BLOCKS:
            self.out.append("\n")

    def handle_endtag(self, tag):
        if tag in ("script", "style", "head", "title"):
            self.skipping = max(0, self.skipping - 1)
        elif tag in _BLOCKS:
            self.out.append("\n")

    def handle_data(self, data):
        if not self.skipping:
            self.out.append(_SPACES.sub(" ", data))


def html_to_text(markup: str) -> str:
    parser = _TextOfHtml()
    parser.feed(markup)
    parser.close()
    lines = (line.strip() for line in "".join(parser.out).splitlines())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def snippet_of(text: str) -> str:
    flat = _SPACES.sub(" ", text).strip()
    return flat if len(flat) <= SNIPPET_LENGTH else flat[: SNIPPET_LENGTH - 1].rstrip() + "…"


# ---- the whole message -------------------------------------------------------------


def parse_message(raw: bytes) -> ParsedEmail:
    """Read `raw` (as fetched from IMAP); raises UnreadableMessage when it is no mail."""
    message: MimeMessage = message_from_bytes(raw, policy=policy.default)
    if not list(message.keys()):
        raise UnreadableMessage("no header: this is not an email message")

    message_id = _header(message, "Message-ID")
    if not normalize_message_id(message_id) or "@" not in message_id:
        message_id = generated_message_id(raw)
    else:
        found = _MSGID.search(message_id)
        message_id = f"<{_SPACES.sub('', found.group(1))}>" if found else f"<{message_id}>"
    senders = _addresses(message, "From") or _addresses(message, "Sender")
    from_name, from_address = senders[0] if senders else ("", "")

    max_attachment, max_message = _limits()
    text = html_body = None
    attachments: list[ParsedAttachment] = []
    dropped: list[tuple[str, int]] = []
    kept = 0
    for index, part in enumerate(_leaves(message), start=1):
        content_type = part.get_content_type()
        if not _is_attachment(part):
            if content_type == "text/plain" and text is None:
                text = _decoded_text(part)
                continue
            if content_type == "text/html" and html_body is None:
                html_body = _decoded_text(part)
                continue
            if content_type not in ("text/plain", "text/html"):
                continue  # text/calendar and friends: shown by nothing here
            if part.get_content_disposition() != "attachment":
                continue  # a second alternative of the same body
        content = _attachment_bytes(part)
        name = _filename(part, index)
        if len(content) > max_attachment or kept + len(content) > max_message:
            dropped.append((name, len(content)))
            continue
        kept += len(content)
        attachments.append(ParsedAttachment(name, content_type[:127], content))

    if text is None or not text.strip():
        text = html_to_text(html_body) if html_body else (text or "")
    # PostgreSQL text holds no NUL character; no reader misses one.
    text = text.replace("\r\n", "\n").replace("\x00", "").strip()
    if dropped:
        text = f"{text}\n\n{_dropped_note(dropped)}".strip()

    references = message_ids(_header(message, "References"))
    in_reply_to = next(iter(message_ids(_header(message, "In-Reply-To"))), None)
    return ParsedEmail(
        message_id=message_id[:_HEADER_LENGTH],
        message_id_key=normalize_message_id(message_id),
        in_reply_to=in_reply_to[:_HEADER_LENGTH] if in_reply_to else None,
        references=references,
        subject=_header(message, "Subject")[:_HEADER_LENGTH],
        from_name=from_name or None,
        from_address=from_address,
        to=_formatted(_addresses(message, "To")),
        cc=_formatted(_addresses(message, "Cc")),
        date=_date(message),
        text=text,
        html=sanitize_html(html_body.replace("\x00", "")) if html_body else None,
        snippet=snippet_of(text),
        attachments=attachments,
        dropped=dropped,
        automatic=_is_automatic(message, from_address),
    )
