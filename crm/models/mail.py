"""Email: mailboxes, the messages that came in or went out, and what could not be read.

One EmailMessage row is both the archive of a message and, when it goes out, its outbox
row: it gets its Message-ID when it is written, before any attempt, so a message sent
again after a crash is the same message to every mail client (DESIGN.md §6).
"""

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
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
from crm.models.contacts import Company, Contact, Timestamps
from crm.models.types import UTCDateTime, utcnow
from crm.models.users import Team, User

# What the sync does with new mail in a mailbox (crm/services/mail_routing.py).
MAILBOX_PURPOSES = ("support", "sales", "personal", "other")
SECURITY_MODES = ("ssl", "starttls", "none")
DIRECTIONS = ("in", "out")
# in: received. out: queued -> sending -> sent | failed (retried while queued).
DELIVERY_STATUSES = ("received", "draft", "queued", "sending", "sent", "failed")
# private: the mailbox owner (or author) only; team: their team too; public: everyone
# who may see the linked records.
PRIVACY_LEVELS = ("private", "team", "public")


@audited(
    exclude=(
        "imap_password",
        "smtp_password",
        "uidvalidity",
        "last_uid",
        "last_sync_at",
        "last_sync_error",
        "last_sync_error_at",
        "sync_started_at",
    )
)
class Mailbox(Timestamps, db.Model):
    """A shared mailbox (support@, sales@) when owner_id is empty, else a user's own."""

    __table_args__ = (
        CheckConstraint(f"purpose IN {MAILBOX_PURPOSES!r}", name="purpose"),
        CheckConstraint(f"imap_security IN {SECURITY_MODES!r}", name="imap_security"),
        CheckConstraint(f"smtp_security IN {SECURITY_MODES!r}", name="smtp_security"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    address: Mapped[str] = mapped_column(String(254), unique=True)
    purpose: Mapped[str] = mapped_column(String(12), default="other")
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"))
    # Support mail opens incidents for this team; sales leads are routed within it.
    team_id: Mapped[int | None] = mapped_column(ForeignKey("team.id", ondelete="SET NULL"))
    active: Mapped[bool] = mapped_column(default=True)

    imap_host: Mapped[str | None] = mapped_column(String(255))
    imap_port: Mapped[int] = mapped_column(default=993)
    imap_security: Mapped[str] = mapped_column(String(10), default="ssl")
    imap_username: Mapped[str | None] = mapped_column(String(254))
    # Fernet tokens (crm/services/secrets_box.py), never the password itself.
    imap_password: Mapped[str | None] = mapped_column(Text)
    imap_folder: Mapped[str] = mapped_column(String(200), default="INBOX")

    smtp_host: Mapped[str | None] = mapped_column(String(255))
    smtp_port: Mapped[int] = mapped_column(default=465)
    smtp_security: Mapped[str] = mapped_column(String(10), default="ssl")
    smtp_username: Mapped[str | None] = mapped_column(String(254))
    smtp_password: Mapped[str | None] = mapped_column(Text)

    # The sync watermark: UIDs above last_uid under this UIDVALIDITY are new.
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    sync_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_sync_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_sync_error: Mapped[str | None] = mapped_column(Text)
    last_sync_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    owner: Mapped[User | None] = relationship(foreign_keys=[owner_id])
    team: Mapped[Team | None] = relationship()

    @property
    def shared(self) -> bool:
        return self.owner_id is None

    def __str__(self) -> str:
        return f"{self.name} <{self.address}>"


class EmailThread(db.Model):
    """Messages that answer each other (In-Reply-To, References), and what they are about."""

    id: Mapped[int] = mapped_column(primary_key=True)
    subject: Mapped[str] = mapped_column(String(300), default="")
    incident_id: Mapped[int | None] = mapped_column(
        ForeignKey("incident.id", ondelete="SET NULL"), index=True
    )
    deal_id: Mapped[int | None] = mapped_column(
        ForeignKey("deal.id", ondelete="SET NULL"), index=True
    )
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contact.id", ondelete="SET NULL"), index=True
    )
    last_message_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    messages: Mapped[list["EmailMessage"]] = relationship(
        back_populates="thread", order_by="EmailMessage.id"
    )


class EmailMessage(db.Model):
    __table_args__ = (
        CheckConstraint(f"direction IN {DIRECTIONS!r}", name="direction"),
        CheckConstraint(f"status IN {DELIVERY_STATUSES!r}", name="status"),
        CheckConstraint(f"privacy IN {PRIVACY_LEVELS!r}", name="privacy"),
        # Dedup: one row per normalized Message-ID in a mailbox (NULL mailbox: sent
        # without one, e.g. the development mail drop).
        UniqueConstraint("mailbox_id", "message_id_key", name="uq_email_message_mailbox_msgid"),
        # Threading looks messages up by Message-ID across mailboxes.
        Index("ix_email_message_msgid_key", "message_id_key"),
        # The outbox sweeper: what is due to go out.
        Index("ix_email_message_outbox", "status", "next_attempt_at"),
        Index("ix_email_message_contact_time", "contact_id", "sent_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    mailbox_id: Mapped[int | None] = mapped_column(ForeignKey("mailbox.id", ondelete="SET NULL"))
    thread_id: Mapped[int | None] = mapped_column(
        ForeignKey("email_thread.id", ondelete="SET NULL"), index=True
    )
    direction: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(10), default="received")
    privacy: Mapped[str] = mapped_column(String(10), default="public")

    # As written in the header (<abc@host>), and normalized (crm/services/email_parsing.py).
    message_id: Mapped[str] = mapped_column(String(998))
    message_id_key: Mapped[str] = mapped_column(String(998))
    in_reply_to: Mapped[str | None] = mapped_column(String(998))
    references: Mapped[str | None] = mapped_column(Text)

    subject: Mapped[str] = mapped_column(String(998), default="")
    from_address: Mapped[str] = mapped_column(String(254), default="")
    from_name: Mapped[str | None] = mapped_column(String(254))
    to_addresses: Mapped[list] = mapped_column(JSON, default=list)
    cc_addresses: Mapped[list] = mapped_column(JSON, default=list)
    text_body: Mapped[str | None] = deferred(mapped_column(Text))
    # Inbound HTML as received is never shown: this is the nh3-sanitized copy.
    html_body: Mapped[str | None] = deferred(mapped_column(Text))
    snippet: Mapped[str] = mapped_column(String(300), default="")
    # When it was written (Date header, or queued) and when it reached us or left.
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    received_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    # Where the sync found it.
    imap_uid: Mapped[int | None] = mapped_column(BigInteger)
    imap_uidvalidity: Mapped[int | None] = mapped_column(BigInteger)

    # Outbox: attempts, the next one, and the last error (a clear message when failed).
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    # Open tracking: only when asked for and the recipient did not refuse it.
    track_opens: Mapped[bool] = mapped_column(default=False)
    tracking_token: Mapped[str | None] = mapped_column(String(64), unique=True)
    first_opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    open_count: Mapped[int] = mapped_column(default=0)

    # What it is about, and who wrote or owns it.
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contact.id", ondelete="SET NULL"), index=True
    )
    company_id: Mapped[int | None] = mapped_column(
        ForeignKey("company.id", ondelete="SET NULL"), index=True
    )
    deal_id: Mapped[int | None] = mapped_column(
        ForeignKey("deal.id", ondelete="SET NULL"), index=True
    )
    incident_id: Mapped[int | None] = mapped_column(
        ForeignKey("incident.id", ondelete="SET NULL"), index=True
    )
    author_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    # For privacy: whose message it is (the personal mailbox's owner or the author).
    owner_id: Mapped[int | None] = mapped_column(
        ForeignKey("user.id", ondelete="SET NULL"), index=True
    )
    # A campaign's mail, and the replies threaded to it (routed to a person as a task).
    campaign_id: Mapped[int | None] = mapped_column(
        ForeignKey("campaign.id", ondelete="SET NULL"), index=True
    )
    # Why the sync sent it where it went ({"rule": "support_mailbox", ...}), shown in the UI.
    routing: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    mailbox: Mapped[Mailbox | None] = relationship()
    thread: Mapped[EmailThread | None] = relationship(back_populates="messages")
    contact: Mapped[Contact | None] = relationship()
    company: Mapped[Company | None] = relationship()
    deal: Mapped["Deal | None"] = relationship()  # noqa: F821  (crm.models.deals)
    incident: Mapped["Incident | None"] = relationship()  # noqa: F821  (crm.models.support)
    author: Mapped[User | None] = relationship(foreign_keys=[author_id])
    owner: Mapped[User | None] = relationship(foreign_keys=[owner_id])
    attachments: Mapped[list["EmailAttachment"]] = relationship(
        back_populates="message", order_by="EmailAttachment.id", cascade="all, delete-orphan"
    )


class EmailAttachment(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("email_message.id", ondelete="CASCADE"), index=True
    )
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(127), default="application/octet-stream")
    size: Mapped[int] = mapped_column(default=0)
    content: Mapped[bytes] = deferred(mapped_column(LargeBinary))

    message: Mapped[EmailMessage] = relationship(back_populates="attachments")


class QuarantinedEmail(db.Model):
    """A message the sync could not read: kept as received for the admin; the sync goes on."""

    id: Mapped[int] = mapped_column(primary_key=True)
    mailbox_id: Mapped[int] = mapped_column(
        ForeignKey("mailbox.id", ondelete="CASCADE"), index=True
    )
    imap_uid: Mapped[int] = mapped_column(BigInteger)
    imap_uidvalidity: Mapped[int] = mapped_column(BigInteger)
    raw: Mapped[bytes] = deferred(mapped_column(LargeBinary))
    error: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    mailbox: Mapped[Mailbox] = relationship()
