"""Email templates with {{contact.first_name}}-style placeholders, filled in for a record.

The same renderer serves the support composer (canned responses on an incident) and the
email composer (a contact, company, deal or incident): a PlaceholderContext gathers the
records a message is about and the sender, and every placeholder reads one value from it.

A placeholder without a value is never replaced by nothing: it stays in the text as
typed, and is reported, so the writer sees the gap and fills it before sending (the
reply route and the outbox refuse a text that still holds one).
"""

import re
from dataclasses import dataclass

from babel.numbers import format_currency
from sqlalchemy import select

from crm.extensions import db
from crm.i18n import office_language
from crm.models import Company, Contact, Deal, EmailTemplate, Incident, User
from crm.models.search_keys import fold

PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)\.([a-z_]+)\s*\}\}")
USAGES = ("support", "sales", "all")
# Countries written to in French: the recipient reads "1 234,50 €" there.
FRENCH_COUNTRIES = frozenset(
    {"fr", "france", "be", "belgique", "belgium", "lu", "luxembourg", "mc", "monaco"}
)


@dataclass
class PlaceholderContext:
    """The records a message is about, its sender, and the language its values are written in."""

    user: User | None = None
    contact: Contact | None = None
    company: Company | None = None
    deal: Deal | None = None
    incident: Incident | None = None
    locale: str | None = None

    @property
    def recipient_locale(self) -> str:
        if self.locale:
            return self.locale
        for record in (self.contact, self.company):
            country = fold(getattr(record, "country", None) or "").strip()
            if country in FRENCH_COUNTRIES:
                return "fr"
        if self.user is not None and self.user.locale:
            return self.user.locale
        return office_language()


def context_for(record, user: User | None, locale: str | None = None) -> PlaceholderContext:
    """What a message about `record` (a contact, company, deal or incident) can say."""
    context = PlaceholderContext(user=user, locale=locale)
    if isinstance(record, PlaceholderContext):
        return record
    if isinstance(record, Incident):
        context.incident = record
        context.contact = record.contact
        context.company = record.company
    elif isinstance(record, Deal):
        context.deal = record
        context.contact = record.contact
        context.company = record.company
    elif isinstance(record, Contact):
        context.contact = record
    elif isinstance(record, Company):
        context.company = record
    if context.company is None and context.contact is not None:
        context.company = context.contact.company
    return context


def _deal_amount(c: PlaceholderContext) -> str | None:
    deal = c.deal
    if deal is None or deal.amount is None:
        return None
    return format_currency(deal.amount, deal.currency or "EUR", locale=c.recipient_locale)


def _attr(name: str, attr: str):
    def read(c: PlaceholderContext):
        record = getattr(c, name)
        return getattr(record, attr, None) if record is not None else None

    return read


# What a template may ask for, and where each value comes from.
FIELDS = {
    ("contact", "first_name"): _attr("contact", "first_name"),
    ("contact", "last_name"): _attr("contact", "last_name"),
    # Contact.name falls back on the address or phone: a greeting wants a real name.
    ("contact", "name"): lambda c: (
        c.contact and f"{c.contact.first_name} {c.contact.last_name}".strip()
    ),
    ("contact", "email"): _attr("contact", "email"),
    ("company", "name"): _attr("company", "name"),
    ("deal", "title"): _attr("deal", "title"),
    ("deal", "amount"): _deal_amount,
    ("deal", "stage"): lambda c: c.deal and c.deal.stage and c.deal.stage.name,
    ("incident", "reference"): lambda c: c.incident and c.incident.reference,
    ("incident", "subject"): _attr("incident", "subject"),
    ("user", "name"): _attr("user", "name"),
    ("user", "email"): _attr("user", "email"),
}
KNOWN = tuple(f"{{{{{obj}.{attr}}}}}" for obj, attr in FIELDS)


@dataclass(frozen=True)
class Rendered:
    subject: str
    body: str
    missing: tuple[str, ...]  # the placeholders left as typed, e.g. "{{contact.first_name}}"


def _context(record, user: User | None) -> PlaceholderContext:
    if isinstance(record, PlaceholderContext):
        return record
    return context_for(record, user)


def render_text(text: str, record, user: User | None = None) -> tuple[str, list[str]]:
    """`text` with its placeholders filled for `record` (or a PlaceholderContext), and the
    placeholders left as typed because nothing fills them (unknown ones included)."""
    context = _context(record, user)
    missing: list[str] = []

    def fill(match: re.Match) -> str:
        getter = FIELDS.get((match.group(1), match.group(2)))
        value = getter(context) if getter else None
        if value not in (None, ""):
            return str(value)
        placeholder = f"{{{{{match.group(1)}.{match.group(2)}}}}}"
        if placeholder not in missing:
            missing.append(placeholder)
        return placeholder

    return PLACEHOLDER.sub(fill, text or ""), missing


def render(template: EmailTemplate, record, user: User | None = None) -> Rendered:
    return render_subject_body(template.subject, template.body, record, user)


def render_subject_body(subject: str, body: str, record, user: User | None = None) -> Rendered:
    context = _context(record, user)
    subject, missing_subject = render_text(subject, context)
    body, missing_body = render_text(body, context)
    missing = tuple(dict.fromkeys(missing_subject + missing_body))
    return Rendered(subject, body, missing)


def unfilled(text: str) -> list[str]:
    """The placeholders still in a text about to be sent."""
    return list(dict.fromkeys(m.group(0) for m in PLACEHOLDER.finditer(text or "")))


def unknown_placeholders(text: str) -> list[str]:
    """Placeholders a template may not use (a typo would stay a gap in every reply)."""
    return [
        m.group(0)
        for m in PLACEHOLDER.finditer(text or "")
        if (m.group(1), m.group(2)) not in FIELDS
    ]


# ---- the templates ---------------------------------------------------------


# What the support composer offers: templates meant for support or for everyone
# (crm.services.incidents.page_choices reads their names with the page's agents).
SUPPORT_USAGES = ("support", "all")


def all_templates() -> list[EmailTemplate]:
    return list(db.session.scalars(select(EmailTemplate).order_by(EmailTemplate.name)))


def name_taken(name: str, exclude_id: int | None = None) -> bool:
    query = select(EmailTemplate.id, EmailTemplate.name)
    return any(
        fold(existing) == fold(name) and template_id != exclude_id
        for template_id, existing in db.session.execute(query)
    )


def save_template(
    actor: User, template: EmailTemplate | None, *, name: str, subject: str, body: str, usage: str
) -> EmailTemplate:
    if template is None:
        template = EmailTemplate(created_by_id=actor.id)
        db.session.add(template)
    template.name = name.strip()
    template.subject = (subject or "").strip()
    template.body = body.strip()
    template.usage = usage if usage in USAGES else "all"
    return template
