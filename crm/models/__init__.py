"""All models, imported here so that Alembic and the app see one metadata."""

from crm.models.activities import Activity
from crm.models.agenda import (
    CalendarFeed,
    Event,
    EventAttendee,
    Notification,
    Reminder,
    Task,
)
from crm.models.audit import AuditLog
from crm.models.campaigns import Campaign, CampaignRecipient, Segment
from crm.models.contacts import Company, Contact, Tag, contact_tag
from crm.models.deals import Deal, DealLine, DealStageHistory, Pipeline, Product, Quota, Stage
from crm.models.leads import (
    CustomFieldDefinition,
    DataImport,
    ImportRow,
    LeadForm,
    RoutingRule,
    ScoringRule,
)
from crm.models.mail import EmailAttachment, EmailMessage, EmailThread, Mailbox, QuarantinedEmail
from crm.models.security import RecoveryCode, SecuritySetting, UserSession
from crm.models.support import (
    BusinessHours,
    EmailTemplate,
    Holiday,
    Incident,
    IncidentMessage,
    Intervention,
    SlaPolicy,
    SupportCalendar,
    TechnicianBooking,
)
from crm.models.users import Team, User

__all__ = [
    "Campaign",
    "CampaignRecipient",
    "Segment",
    "CustomFieldDefinition",
    "DataImport",
    "ImportRow",
    "LeadForm",
    "RoutingRule",
    "ScoringRule",
    "EmailAttachment",
    "EmailMessage",
    "EmailThread",
    "Mailbox",
    "QuarantinedEmail",
    "TechnicianBooking",
    "SupportCalendar",
    "SlaPolicy",
    "Intervention",
    "IncidentMessage",
    "Incident",
    "Holiday",
    "EmailTemplate",
    "BusinessHours",
    "Activity",
    "CalendarFeed",
    "Event",
    "EventAttendee",
    "Notification",
    "Reminder",
    "Task",
    "AuditLog",
    "Company",
    "Contact",
    "Deal",
    "DealLine",
    "DealStageHistory",
    "Pipeline",
    "Product",
    "Quota",
    "RecoveryCode",
    "SecuritySetting",
    "Stage",
    "Tag",
    "Team",
    "User",
    "UserSession",
    "contact_tag",
]
