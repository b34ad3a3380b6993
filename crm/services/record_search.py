"""A few typed letters → the contacts, companies or deals they name, for the pickers that
link a record (a task, an incident, an event).

Matched on the folded search columns (accents and case ignored, a phone number as its
digits) that the trigram indexes serve on PostgreSQL, and only within what the user may see.
"""

from flask_babel import gettext as _
from sqlalchemy.orm import selectinload

from crm.extensions import db
from crm.models import Company, Contact, Deal
from crm.permissions import has_permission, visible_companies, visible_contacts, visible_deals
from crm.services.text_search import search_condition

KINDS = ("contact", "company", "deal")
MIN_LETTERS = 2


def find_records(user, text: str, kinds=KINDS, limit: int = 8) -> list[tuple[str, str, str]]:
    """("contact:12", "Marie Curie", "Contact") for each match, contacts first."""
    text = (text or "").strip()[:100]
    if len(text) < MIN_LETTERS:
        return []
    found = []
    if "contact" in kinds and has_permission(user, "contacts.view"):
        contacts = db.session.scalars(
            visible_contacts(user)
            .where(*search_condition(Contact.search_text, text))
            .options(selectinload(Contact.company))
            .order_by(Contact.sort_name, Contact.id)
            .limit(limit)
        )
        found += [(f"contact:{c.id}", c.name, _("Contact")) for c in contacts]
    if "company" in kinds and has_permission(user, "contacts.view"):
        companies = db.session.scalars(
            visible_companies(user)
            .where(*search_condition(Company.name_key, text))
            .order_by(Company.name_key, Company.id)
            .limit(limit)
        )
        found += [(f"company:{c.id}", c.name, _("Company")) for c in companies]
    if "deal" in kinds and has_permission(user, "deals.view"):
        deals = db.session.scalars(
            visible_deals(user)
            .where(*search_condition(Deal.title_key, text))
            .order_by(Deal.title_key, Deal.id)
            .limit(limit)
        )
        found += [(f"deal:{d.id}", d.title, _("Deal")) for d in deals]
    return found
