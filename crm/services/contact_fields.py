"""Editing one field of a contact, as the inline editor does."""

from sqlalchemy import select

from crm.extensions import db
from crm.models import Contact, User
from crm.services.companies import find_or_create_company
from crm.services.contacts import set_owner, set_tags

OWNER_ROLES = ("admin", "manager", "sales", "support")


def possible_owners() -> list[User]:
    query = (
        select(User).where(User.active.is_(True), User.role.in_(OWNER_ROLES)).order_by(User.name)
    )
    return list(db.session.scalars(query))


def current_value(contact: Contact, name: str) -> str:
    """The value the editor starts from."""
    if name == "company":
        return contact.company.name if contact.company else ""
    if name == "owner":
        return str(contact.owner_id or "")
    if name == "tags":
        return ", ".join(tag.name for tag in contact.tags)
    return getattr(contact, name) or ""


class FieldRefused(ValueError):
    """The value is valid on its own but breaks a rule of the record."""


def apply_value(actor: User, contact: Contact, name: str, value: str) -> None:
    value = (value or "").strip()
    if name in ("first_name", "last_name"):
        other = contact.last_name if name == "first_name" else contact.first_name
        if not value and not other:
            raise FieldRefused("name_required")
        setattr(contact, name, value)
    elif name == "company":
        contact.company = find_or_create_company(actor, value) if value else None
    elif name == "owner":
        set_owner(actor, contact, db.session.get(User, int(value)) if value else None)
    elif name == "tags":
        set_tags(contact, value.split(","))
    else:
        setattr(contact, name, value or None)
    if name in ("email", "phone") and not value and not (contact.email or contact.phone):
        raise FieldRefused("reach_required")
