"""All models, imported here so that Alembic and the app see one metadata."""

from crm.models.activities import Activity
from crm.models.contacts import Company, Contact, Tag, contact_tag
from crm.models.users import Team, User

__all__ = ["Activity", "Company", "Contact", "Tag", "Team", "User", "contact_tag"]
