"""Leads: custom fields, scoring and routing rules, web forms, and imports.

A lead is a Contact at the "lead" stage (crm/models/contacts.py): capture, scoring and
routing change that row, never copy it, so its history stays attached.
"""

from datetime import datetime

from sqlalchemy import (
    JSON,
    CheckConstraint,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, deferred, mapped_column, relationship

from crm.extensions import db
from crm.models.audit import audited
from crm.models.types import UTCDateTime, utcnow
from crm.models.users import Team, User

CUSTOM_FIELD_ENTITIES = ("contact", "company", "deal", "incident")
CUSTOM_FIELD_TYPES = ("text", "number", "date", "choice", "multichoice", "boolean", "url")
IMPORT_ENTITIES = ("contacts", "companies", "notes")
IMPORT_STATUSES = ("uploaded", "queued", "running", "done", "failed", "undoing", "undone")
DUPLICATE_POLICIES = ("skip", "update", "create")
IMPORT_OUTCOMES = ("created", "updated", "skipped", "rejected")
# Where a lead came from, for acquisition reports (Contact.source holds one of these or
# free text from an import).
LEAD_SOURCES = ("manual", "web_form", "email", "import", "campaign", "referral")


@audited()
class CustomFieldDefinition(db.Model):
    """A field an admin added to contacts, companies, deals or incidents.

    Values live in the record's `custom_fields` JSON under `key`, validated on the server
    by crm/services/custom_fields.py against this definition.
    """

    __table_args__ = (
        CheckConstraint(f"entity IN {CUSTOM_FIELD_ENTITIES!r}", name="entity"),
        CheckConstraint(f"field_type IN {CUSTOM_FIELD_TYPES!r}", name="field_type"),
        UniqueConstraint("entity", "key", name="uq_custom_field_entity_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    entity: Mapped[str] = mapped_column(String(10))
    key: Mapped[str] = mapped_column(String(60))
    label: Mapped[str] = mapped_column(String(120))
    field_type: Mapped[str] = mapped_column(String(12), default="text")
    # choice / multichoice: the allowed values, in order.
    choices: Mapped[list | None] = mapped_column(JSON)
    required: Mapped[bool] = mapped_column(default=False)
    position: Mapped[int] = mapped_column(default=0)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


@audited()
class ScoringRule(db.Model):
    """Points a lead earns or loses: a field condition, an activity, or a silence.

    condition examples (crm/services/lead_scoring.py reads them):
      {"type": "field", "field": "company.employees", "op": "gt", "value": 50}
      {"type": "field", "field": "custom.budget", "op": "eq", "value": "high"}
      {"type": "activity", "kind": "email_opened", "within_days": 90}
      {"type": "inactive", "days": 30}
    """

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    condition: Mapped[dict] = mapped_column(JSON)
    points: Mapped[int]
    active: Mapped[bool] = mapped_column(default=True)
    position: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


@audited()
class RoutingRule(db.Model):
    """Who gets a new lead: the first active rule (by position) whose conditions all match.

    conditions (crm/services/lead_routing.py): {"countries": ["FR"], "regions": [...],
    "postcode_prefixes": ["69", "38"], "min_employees": 50, "max_employees": null,
    "min_score": 30}. The rule names an owner, or a team whose available members take
    turns (round-robin, fair over time, skipping absent users).
    """

    __table_args__ = (
        CheckConstraint("owner_id IS NOT NULL OR team_id IS NOT NULL", name="target"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    conditions: Mapped[dict] = mapped_column(JSON, default=dict)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("team.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(default=0)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    owner: Mapped[User | None] = relationship()
    team: Mapped[Team | None] = relationship()


@audited(exclude=("token",))
class LeadForm(db.Model):
    """A public, embeddable web form that creates leads: /forms/<token>."""

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    token: Mapped[str] = mapped_column(String(64), unique=True)
    source: Mapped[str] = mapped_column(String(60), default="web_form")
    # Where the visitor lands after sending (their own site), else our thank-you page.
    redirect_url: Mapped[str | None] = mapped_column(String(500))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DataImport(db.Model):
    """One CSV file being imported: its mapping, its progress and its report.

    The file is kept (size-limited) so that the worker reads it, and every row's outcome
    is an ImportRow so that the report names each rejected row and undo knows what to undo.
    """

    __table_args__ = (
        CheckConstraint(f"entity IN {IMPORT_ENTITIES!r}", name="entity"),
        CheckConstraint(f"status IN {IMPORT_STATUSES!r}", name="status"),
        CheckConstraint(f"duplicate_policy IN {DUPLICATE_POLICIES!r}", name="duplicate_policy"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    entity: Mapped[str] = mapped_column(String(10))
    filename: Mapped[str] = mapped_column(String(255))
    content: Mapped[bytes] = deferred(mapped_column(LargeBinary))
    encoding: Mapped[str] = mapped_column(String(20), default="utf-8")
    delimiter: Mapped[str] = mapped_column(String(1), default=",")
    # {"CSV column header": "field name" | "custom.<key>" | ""}
    mapping: Mapped[dict | None] = mapped_column(JSON)
    duplicate_policy: Mapped[str] = mapped_column(String(6), default="skip")
    status: Mapped[str] = mapped_column(String(10), default="uploaded")
    total_rows: Mapped[int] = mapped_column(default=0)
    processed_rows: Mapped[int] = mapped_column(default=0)
    created_count: Mapped[int] = mapped_column(default=0)
    updated_count: Mapped[int] = mapped_column(default=0)
    skipped_count: Mapped[int] = mapped_column(default=0)
    rejected_count: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    undone_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    created_by: Mapped[User | None] = relationship()


class ImportRow(db.Model):
    """What one line of an import did: created, updated (with the values before), skipped
    or rejected (with the reason)."""

    __table_args__ = (
        CheckConstraint(f"outcome IN {IMPORT_OUTCOMES!r}", name="outcome"),
        UniqueConstraint("import_id", "row_number", name="uq_import_row_number"),
        Index("ix_import_row_outcome", "import_id", "outcome"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    import_id: Mapped[int] = mapped_column(ForeignKey("data_import.id", ondelete="CASCADE"))
    row_number: Mapped[int]
    outcome: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str | None] = mapped_column(String(500))
    record_type: Mapped[str | None] = mapped_column(String(10))
    record_id: Mapped[int | None]
    # For undo of an update: the fields as they were before this row changed them.
    before: Mapped[dict | None] = mapped_column(JSON)
