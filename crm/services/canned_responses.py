"""Canned responses: email templates with {{contact.first_name}}-style placeholders,
filled in for one incident.

A placeholder without a value is never replaced by nothing: it stays in the text as
typed, and is reported, so the agent sees the gap and fills it before sending (the
reply route refuses a text that still holds one).
"""

import re
from dataclasses import dataclass

from sqlalchemy import select

from crm.extensions import db
from crm.models import EmailTemplate, Incident, User
from crm.models.search_keys import fold

PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)\.([a-z_]+)\s*\}\}")
USAGES = ("support", "sales", "all")


def _company_name(incident: Incident) -> str | None:
    company = incident.company or (incident.contact.company if incident.contact else None)
    return company.name if company else None


# What a template may ask for, and where each value comes from.
FIELDS = {
    ("contact", "first_name"): lambda i, u: i.contact and i.contact.first_name,
    ("contact", "last_name"): lambda i, u: i.contact and i.contact.last_name,
    ("contact", "name"): lambda i, u: i.contact and i.contact.name,
    ("company", "name"): lambda i, u: _company_name(i),
    ("incident", "reference"): lambda i, u: i.reference,
    ("incident", "subject"): lambda i, u: i.subject,
    ("user", "name"): lambda i, u: u.name,
}
KNOWN = tuple(f"{{{{{obj}.{attr}}}}}" for obj, attr in FIELDS)


@dataclass(frozen=True)
class Rendered:
    subject: str
    body: str
    missing: tuple[str, ...]  # the placeholders left as typed, e.g. "{{contact.first_name}}"


def render_text(text: str, incident: Incident, user: User) -> tuple[str, list[str]]:
    missing: list[str] = []

    def fill(match: re.Match) -> str:
        getter = FIELDS.get((match.group(1), match.group(2)))
        value = getter(incident, user) if getter else None
        if value:
            return str(value)
        placeholder = f"{{{{{match.group(1)}.{match.group(2)}}}}}"
        if placeholder not in missing:
            missing.append(placeholder)
        return placeholder

    return PLACEHOLDER.sub(fill, text or ""), missing


def render(template: EmailTemplate, incident: Incident, user: User) -> Rendered:
    subject, missing_subject = render_text(template.subject, incident, user)
    body, missing_body = render_text(template.body, incident, user)
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


def support_templates() -> list[EmailTemplate]:
    """What the composer offers: templates meant for support or for everyone."""
    query = select(EmailTemplate).where(EmailTemplate.usage.in_(("support", "all")))
    return list(db.session.scalars(query.order_by(EmailTemplate.name)))


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
