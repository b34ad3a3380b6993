"""Companies and contacts: the shared address book and its 360° records."""

from datetime import datetime

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    String,
    Table,
    Text,
    event,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm.extensions import db
from crm.models.audit import audited
from crm.models.search_keys import email_key, fold, phone_key
from crm.models.types import UTCDateTime, utcnow
from crm.models.users import User

# A lead becomes a prospect, then a customer: the same row moves along, so its
# whole history stays attached.
STAGES = ("lead", "prospect", "customer", "former")
CONSENT_STATUSES = ("unknown", "granted", "refused")
# What erasing a contact removes (crm.services.personal_data): everything that names or
# reaches the person. The business record (stage, owner, company, deals, timeline) stays.
PERSONAL_FIELDS = (
    "first_name",
    "last_name",
    "title",
    "email",
    "phone",
    "linkedin_url",
    "twitter_url",
    "street",
    "postcode",
    "city",
    "country",
)

contact_tag = Table(
    "contact_tag",
    db.metadata,
    Column("contact_id", ForeignKey("contact.id", ondelete="CASCADE"), primary_key=True),
    Column("tag_id", ForeignKey("tag.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class Tag(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(60), unique=True)


class PostalAddress:
    """Where to send a letter or a technician."""

    street: Mapped[str | None] = mapped_column(String(200))
    postcode: Mapped[str | None] = mapped_column(String(20))
    city: Mapped[str | None] = mapped_column(String(120))
    country: Mapped[str | None] = mapped_column(String(80))


class Timestamps:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


@audited(exclude=("name_key",))
class Company(PostalAddress, Timestamps, db.Model):
    __table_args__ = (CheckConstraint(f"stage IN {STAGES!r}", name="stage"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    name_key: Mapped[str] = mapped_column(String(200), index=True)
    stage: Mapped[str] = mapped_column(String(20), default="lead")
    industry: Mapped[str | None] = mapped_column(String(120))
    employees: Mapped[int | None]
    website: Mapped[str | None] = mapped_column(String(300))
    linkedin_url: Mapped[str | None] = mapped_column(String(300))
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(40))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"), index=True)
    custom_fields: Mapped[dict | None] = mapped_column(JSON, default=dict)

    owner: Mapped[User | None] = relationship()
    contacts: Mapped[list["Contact"]] = relationship(
        back_populates="company", order_by="Contact.sort_name"
    )

    def __str__(self) -> str:
        return self.name


@audited(exclude=("sort_name", "email_key", "phone_key", "search_text", "last_activity_at"))
class Contact(PostalAddress, Timestamps, db.Model):
    __table_args__ = (
        CheckConstraint(f"stage IN {STAGES!r}", name="stage"),
        CheckConstraint(f"consent_status IN {CONSENT_STATUSES!r}", name="consent_status"),
        # Keyset pagination walks these (sort value, id) pairs.
        Index("ix_contact_sort_name_id", "sort_name", "id"),
        Index("ix_contact_last_activity_id", "last_activity_at", "id"),
        Index("ix_contact_created_id", "created_at", "id"),
        # The start page: my leads, the least recently touched first.
        Index("ix_contact_owner_activity", "owner_id", "last_activity_at"),
        # The hot leads, best score first: everyone's, and one owner's.
        Index("ix_contact_score_id", "score", "id"),
        Index("ix_contact_owner_score_id", "owner_id", "score", "id"),
        # Sorted by company, the contacts without one come first, by id: read through this
        # index whatever their share (crm.services.contacts._ids_by_company).
        Index(
            "ix_contact_without_company",
            "id",
            postgresql_where=text("company_id IS NULL"),
            sqlite_where=text("company_id IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    first_name: Mapped[str] = mapped_column(String(100), default="")
    last_name: Mapped[str] = mapped_column(String(100), default="")
    title: Mapped[str | None] = mapped_column(String(120))
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(40))
    stage: Mapped[str] = mapped_column(String(20), default="lead", index=True)
    source: Mapped[str | None] = mapped_column(String(60))
    score: Mapped[int] = mapped_column(default=0)
    company_id: Mapped[int | None] = mapped_column(
        ForeignKey("company.id", ondelete="SET NULL"), index=True
    )
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"), index=True)
    linkedin_url: Mapped[str | None] = mapped_column(String(300))
    twitter_url: Mapped[str | None] = mapped_column(String(300))
    last_activity_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Consent to be contacted for marketing, and an opt-out that wins over everything.
    consent_status: Mapped[str] = mapped_column(String(10), default="unknown")
    consent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set when the person's data was erased on request: the row stays for the business records.
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Values of the admin's custom fields ({key: value}), validated by crm/services/custom_fields.py.
    custom_fields: Mapped[dict | None] = mapped_column(JSON, default=dict)
    # Lead scoring (crm/services/lead_scoring.py): the rules that made the score, and when.
    score_reasons: Mapped[list | None] = mapped_column(JSON)
    score_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Why the owner was chosen (lead routing), shown on the contact.
    routing_reason: Mapped[str | None] = mapped_column(String(300))
    # The campaign that brought this contact in (first touch), for acquisition figures.
    campaign_id: Mapped[int | None] = mapped_column(
        ForeignKey("campaign.id", ondelete="SET NULL"), index=True
    )

    # Derived keys, kept in step by the listener below.
    sort_name: Mapped[str] = mapped_column(String(210), default="")
    email_key: Mapped[str] = mapped_column(String(254), default="", index=True)
    phone_key: Mapped[str] = mapped_column(String(20), default="", index=True)
    # Folded name, email, phone digits and company name: what the search box matches.
    search_text: Mapped[str] = mapped_column(Text, default="")

    company: Mapped[Company | None] = relationship(back_populates="contacts")
    owner: Mapped[User | None] = relationship()
    tags: Mapped[list[Tag]] = relationship(secondary=contact_tag, order_by=Tag.name)

    @property
    def name(self) -> str:
        return display_name(self.first_name, self.last_name, self.email, self.phone)

    def __str__(self) -> str:
        return self.name

    def refresh_keys(self) -> None:
        company_name = self.company.name if self.company else ""
        self.sort_name = fold(f"{self.last_name} {self.first_name}")[:210]
        self.email_key = email_key(self.email)
        self.phone_key = phone_key(self.phone)
        digits = "".join(ch for ch in (self.phone or "") if ch.isdigit())
        self.search_text = " ".join(
            part
            for part in (
                fold(self.first_name),
                fold(self.last_name),
                self.email_key,
                digits,
                self.phone_key,
                fold(company_name),
            )
            if part
        )


@event.listens_for(Contact, "before_insert")
@event.listens_for(Contact, "before_update")
def _contact_keys(mapper, connection, contact: Contact) -> None:
    contact.refresh_keys()


@event.listens_for(Company, "before_insert")
@event.listens_for(Company, "before_update")
def _company_keys(mapper, connection, company: Company) -> None:
    company.name_key = fold(company.name)


def display_name(first_name: str, last_name: str, email: str | None, phone: str | None) -> str:
    """A contact's name, or how else to call someone we only have an address or number of."""
    return f"{first_name} {last_name}".strip() or (email or phone or "?")
