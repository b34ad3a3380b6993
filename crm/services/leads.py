"""Lead capture: one way in for the quick-add, the web forms, the sales mailbox and imports.

Owned by the leads work.
"""

from crm.models import Contact, User


def capture_lead(
    *,
    source: str,
    first_name: str = "",
    last_name: str = "",
    email: str | None = None,
    phone: str | None = None,
    company_name: str | None = None,
    message: str | None = None,
    custom_fields: dict | None = None,
    actor: User | None = None,
    route: bool = True,
) -> Contact:
    """A new contact at the "lead" stage with its source (or the existing contact with that
    email, untouched but for a timeline entry), its company found or created by name, the
    message as a note on its timeline, scored, and routed when `route`. The caller commits."""
    raise NotImplementedError
