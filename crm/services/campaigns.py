"""Mailing campaigns: prepare, send at a controlled rate, track, and count what they brought.

The CampaignRecipient rows are the truth of a send. start() writes one row per contact of
the segment, "pending" or "skipped" with its reason; send_batch() (the worker's job, every
minute) claims at most rate_per_minute pending rows with a compare-and-set (pending ->
queued) and queues one outbox message for each in the same transaction, so a run killed
anywhere either queued a row and its message or neither: nobody is ever mailed twice, and
a lost chain of jobs is restarted by the sweeper (crm/jobs/campaigns.py) from the rows.

Placeholders a contact cannot fill ({{contact.first_name}} without a first name): such a
recipient is skipped with the reason "missing_value" rather than mailed a gap; how many
is shown on the campaign before "Send", with an example contact, so the sender can fix
the text (or the data) first.

Who sees what: figures on revenue read the user's visible_deals; recipients and leads are
contacts (visible_contacts). Campaigns themselves are for "campaigns.manage".
"""

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, case, event, func, or_, select, update
from sqlalchemy.orm import joinedload

from crm.extensions import db
from crm.i18n import writing_for
from crm.models import (
    Campaign,
    CampaignRecipient,
    Contact,
    Deal,
    EmailMessage,
    EmailTemplate,
    Mailbox,
    Segment,
    Stage,
    User,
)
from crm.models.search_keys import email_key
from crm.models.types import utcnow
from crm.permissions import visible_contacts, visible_deals
from crm.services import canned_responses, outbox, segments

REPLY_TARGETS = ("contact_owner", "campaign_owner")
SKIP_REASONS = (
    "no_email",
    "unsubscribed",
    "consent_refused",
    "duplicate_email",
    "missing_value",
    "cancelled",
)
SKIP_LABELS = {
    "no_email": _l("No email address"),
    "unsubscribed": _l("Unsubscribed"),
    "consent_refused": _l("Refused marketing"),
    "duplicate_email": _l("Same address as another recipient"),
    "missing_value": _l("A placeholder without a value"),
    "cancelled": _l("Campaign cancelled"),
}
# The pace is counted over this window: a run claims rate_per_minute minus what left in it.
RATE_WINDOW = timedelta(seconds=60)
MAX_RATE = 1000
BATCH = 500


class CampaignError(ValueError):
    """An action the campaign's state refuses; the message is for the user."""


# ---- what a campaign can use -----------------------------------------------------------------


def templates() -> list[EmailTemplate]:
    """Templates meant for sales or for everyone (support's canned answers are not mailings)."""
    query = select(EmailTemplate).where(EmailTemplate.usage.in_(("sales", "all")))
    return list(db.session.scalars(query.order_by(EmailTemplate.name)))


def sender_mailboxes() -> list[Mailbox]:
    """Shared mailboxes: a campaign speaks for the company, never from someone's own box."""
    query = select(Mailbox).where(Mailbox.active.is_(True), Mailbox.owner_id.is_(None))
    return list(db.session.scalars(query.order_by(Mailbox.name)))


def visible_campaigns(user: User):
    return select(Campaign)


def get_for(user: User, campaign_id: int) -> Campaign | None:
    return db.session.scalars(
        visible_campaigns(user)
        .where(Campaign.id == campaign_id)
        .options(
            joinedload(Campaign.segment),
            joinedload(Campaign.template),
            joinedload(Campaign.mailbox),
            joinedload(Campaign.owner),
        )
    ).first()


# ---- writing a campaign ---------------------------------------------------------------------


def save(
    actor: User,
    campaign: Campaign | None,
    *,
    name: str,
    segment: Segment,
    template: EmailTemplate | None,
    mailbox: Mailbox | None,
    rate_per_minute: int,
    track_opens: bool,
    replies_to: str,
    cost: Decimal | None,
    currency: str,
    subject: str | None = None,
    body: str | None = None,
) -> Campaign:
    """A new draft (its text copied from the template), or a draft changed. The text can
    be edited afterwards; choosing another template copies that one's text again."""
    if campaign is None:
        campaign = Campaign(owner_id=actor.id, status="draft")
        db.session.add(campaign)
    elif campaign.status != "draft":
        raise CampaignError(_l("Only a draft can be changed."))
    template_changed = template is not None and campaign.template_id != template.id
    campaign.name = name.strip()[:160]
    campaign.segment = segment
    campaign.template = template
    campaign.mailbox = mailbox
    campaign.rate_per_minute = max(1, min(MAX_RATE, int(rate_per_minute)))
    campaign.track_opens = bool(track_opens)
    campaign.replies_to = replies_to if replies_to in REPLY_TARGETS else "contact_owner"
    campaign.cost = cost if cost is not None else Decimal("0")
    campaign.currency = (currency or "EUR").upper()[:3]
    if template_changed or (not campaign.subject and not campaign.body and template):
        campaign.subject, campaign.body = template.subject or "", template.body or ""
    else:
        campaign.subject = (subject if subject is not None else campaign.subject or "").strip()
        campaign.body = (body if body is not None else campaign.body or "").strip()
    return campaign


def unknown_placeholders(campaign: Campaign) -> list[str]:
    return canned_responses.unknown_placeholders(f"{campaign.subject}\n{campaign.body}")


# ---- the text each person gets ----------------------------------------------------------------


def unsubscribe_url(token: str) -> str:
    return f"{current_app.config['BASE_URL'].rstrip('/')}/u/{token}"


def _context(campaign: Campaign, contact: Contact) -> canned_responses.PlaceholderContext:
    return canned_responses.PlaceholderContext(
        user=campaign.owner, contact=contact, company=contact.company
    )


def render_for(campaign: Campaign, contact: Contact) -> canned_responses.Rendered:
    """The campaign's subject and body filled for `contact`; `missing`: the gaps."""
    return canned_responses.render_subject_body(
        campaign.subject or "", campaign.body or "", _context(campaign, contact)
    )


def footer(campaign: Campaign, contact: Contact, token: str) -> tuple[str, str]:
    """The unsubscribe line of the text part, and the link's words for the HTML part, in
    the recipient's language."""
    with force_locale(_context(campaign, contact).recipient_locale):
        return (
            _("To stop receiving these emails: %(url)s", url=unsubscribe_url(token)),
            _("Unsubscribe"),
        )


@dataclass
class Preview:
    contact: Contact | None
    subject: str = ""
    body: str = ""
    footer: str = ""
    missing: tuple[str, ...] = ()


def preview(campaign: Campaign, user: User, contact_id: int | None = None) -> Preview:
    """The mail as one real recipient gets it: the contact asked for if in the segment,
    else the first of the segment that has an email address."""
    contact = None
    query = _audience_query(campaign, user)
    if query is None:
        return Preview(None)
    if contact_id:
        contact = db.session.scalars(query.where(Contact.id == contact_id)).first()
    if contact is None:
        contact = db.session.scalars(
            query.where(Contact.email.is_not(None), Contact.email != "")
            .order_by(Contact.sort_name, Contact.id)
            .limit(1)
        ).first()
    if contact is None:
        return Preview(None)
    rendered = render_for(campaign, contact)
    return Preview(
        contact,
        rendered.subject,
        rendered.body,
        footer(campaign, contact, "…")[0],
        rendered.missing,
    )


def preview_contacts(campaign: Campaign, user: User) -> list[Contact]:
    """Recipients to pick for the preview: the first of the segment with an address."""
    query = _audience_query(campaign, user)
    if query is None:
        return []
    query = query.where(Contact.email.is_not(None), Contact.email != "")
    return list(
        db.session.scalars(
            query.order_by(Contact.sort_name, Contact.id).limit(segments.PREVIEW_SIZE)
        )
    )


# ---- who gets it ----------------------------------------------------------------------------


def _audience_query(campaign: Campaign, user: User):
    if campaign.segment is None:
        return None
    draft = segments.from_segment(campaign.segment)
    if not draft.valid:
        return None
    return segments.contacts_query(user, draft.conditions).options(joinedload(Contact.company))


def skip_reason(contact: Contact, seen: set[str] | None = None) -> str | None:
    """Why this contact gets nothing (in this order), or None."""
    key = email_key(contact.email)
    if not key or contact.erased_at is not None:
        return "no_email"
    if contact.unsubscribed_at is not None:
        return "unsubscribed"
    if contact.consent_status == "refused":
        return "consent_refused"
    if seen is not None:
        if key in seen:
            return "duplicate_email"
        seen.add(key)
    return None


@dataclass
class Plan:
    """Who the campaign would reach now, and who not and why."""

    to_send: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    example_missing: Contact | None = None
    missing: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        return self.to_send + sum(self.skipped.values())


def _walk(campaign: Campaign, user: User):
    """(contact, reason or None) for every contact of the segment, by id, in batches."""
    query = _audience_query(campaign, user)
    if query is None:
        return
    seen: set[str] = set()
    last_id = 0
    while True:
        batch = list(
            db.session.scalars(query.where(Contact.id > last_id).order_by(Contact.id).limit(BATCH))
        )
        if not batch:
            return
        for contact in batch:
            reason = skip_reason(contact, seen)
            if reason is None and render_for(campaign, contact).missing:
                reason = "missing_value"
            yield contact, reason
        last_id = batch[-1].id


def plan(campaign: Campaign, user: User) -> Plan:
    result = Plan()
    for contact, reason in _walk(campaign, user):
        if reason is None:
            result.to_send += 1
            continue
        result.skipped[reason] = result.skipped.get(reason, 0) + 1
        if reason == "missing_value" and result.example_missing is None:
            result.example_missing = contact
            result.missing = render_for(campaign, contact).missing
    return result


def start(campaign: Campaign, actor: User) -> int:
    """Write the recipients and set the campaign sending; the caller commits, then has the
    worker started (crm.jobs.campaigns.ensure_chain). Returns how many will be mailed."""
    if campaign.status != "draft":
        raise CampaignError(_l("This campaign was sent already."))
    if campaign.segment is None:
        raise CampaignError(_l("Choose a segment."))
    if not segments.from_segment(campaign.segment).valid:
        raise CampaignError(_l("The segment has a condition that no longer applies: fix it."))
    if not (campaign.subject or "").strip() or not (campaign.body or "").strip():
        raise CampaignError(_l("Write a subject and a text."))
    if unknown_placeholders(campaign):
        raise CampaignError(
            _l("Unknown placeholders: %(list)s", list=", ".join(unknown_placeholders(campaign)))
        )
    pending = 0
    rows = []
    for contact, reason in _walk(campaign, actor):
        rows.append(
            {
                "campaign_id": campaign.id,
                "contact_id": contact.id,
                "email": (contact.email or "")[:254],
                "status": "skipped" if reason else "pending",
                "skip_reason": reason,
                "unsubscribe_token": secrets.token_urlsafe(24),
                "created_at": utcnow(),
            }
        )
        pending += reason is None
        if len(rows) >= BATCH:
            db.session.execute(CampaignRecipient.__table__.insert(), rows)
            rows = []
    if rows:
        db.session.execute(CampaignRecipient.__table__.insert(), rows)
    if pending == 0:
        raise CampaignError(_l("Nobody in this segment can be mailed."))
    campaign.status = "sending"
    campaign.started_at = utcnow()
    campaign.owner = campaign.owner or actor
    return pending


def pause(campaign: Campaign) -> None:
    if campaign.status != "sending":
        raise CampaignError(_l("Only a campaign being sent can be paused."))
    campaign.status = "paused"


def resume(campaign: Campaign) -> None:
    if campaign.status != "paused":
        raise CampaignError(_l("Only a paused campaign can be resumed."))
    campaign.status = "sending"


def cancel(campaign: Campaign) -> int:
    """Stop for good: who was still waiting is skipped ("cancelled"); returns how many."""
    if campaign.status not in ("sending", "paused"):
        raise CampaignError(_l("Only a campaign being sent can be cancelled."))
    result = db.session.execute(
        update(CampaignRecipient)
        .where(CampaignRecipient.campaign_id == campaign.id, CampaignRecipient.status == "pending")
        .values(status="skipped", skip_reason="cancelled")
        .execution_options(synchronize_session=False)
    )
    campaign.status = "cancelled"
    campaign.finished_at = utcnow()
    return result.rowcount


# ---- sending (the worker) ---------------------------------------------------------------------


@dataclass
class BatchResult:
    status: str  # the campaign's status after the run; "" when it does not exist
    queued: int = 0
    skipped: int = 0
    pending: int = 0

    @property
    def more(self) -> bool:
        return self.status == "sending" and self.pending > 0


def _recent_sends(campaign_id: int, now: datetime) -> int:
    return db.session.scalar(
        select(func.count(EmailMessage.id)).where(
            EmailMessage.campaign_id == campaign_id,
            EmailMessage.direction == "out",
            EmailMessage.created_at > now - RATE_WINDOW,
        )
    )


def _pending_count(campaign_id: int) -> int:
    return db.session.scalar(
        select(func.count(CampaignRecipient.id)).where(
            CampaignRecipient.campaign_id == campaign_id, CampaignRecipient.status == "pending"
        )
    )


def send_batch(campaign_id: int, now: datetime | None = None) -> BatchResult:
    """One run: claim at most the rate's worth of pending recipients, queue their mail, and
    close the campaign when nobody is left. Idempotent; commits."""
    now = now or utcnow()
    # The row lock makes two runs of one campaign (a chain and the sweeper's) take turns.
    campaign = db.session.scalars(
        select(Campaign)
        .where(Campaign.id == campaign_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()
    if campaign is None:
        db.session.rollback()
        return BatchResult("")
    if campaign.status != "sending":
        db.session.rollback()
        return BatchResult(campaign.status)
    budget = max(0, campaign.rate_per_minute - _recent_sends(campaign_id, now))
    ids = (
        db.session.scalars(
            select(CampaignRecipient.id)
            .where(
                CampaignRecipient.campaign_id == campaign_id, CampaignRecipient.status == "pending"
            )
            .order_by(CampaignRecipient.id)
            .limit(budget)
        ).all()
        if budget
        else []
    )
    result = BatchResult("sending")
    for recipient_id in ids:
        claimed = db.session.execute(
            update(CampaignRecipient)
            .where(CampaignRecipient.id == recipient_id, CampaignRecipient.status == "pending")
            .values(status="queued")
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:
            continue
        recipient = db.session.scalars(
            select(CampaignRecipient)
            .where(CampaignRecipient.id == recipient_id)
            .options(joinedload(CampaignRecipient.contact).joinedload(Contact.company))
            .execution_options(populate_existing=True)
        ).one()
        if _send_one(campaign, recipient):
            result.queued += 1
        else:
            result.skipped += 1
    campaign.sent_count = (campaign.sent_count or 0) + result.queued
    result.pending = _pending_count(campaign_id)
    if result.pending == 0:
        campaign.status = "sent"
        campaign.finished_at = now
        result.status = "sent"
    db.session.commit()
    return result


def _send_one(campaign: Campaign, recipient: CampaignRecipient) -> bool:
    """Queue the mail of a claimed recipient, or skip them if something changed since the
    start (unsubscribed meanwhile, address removed, a value now missing)."""
    contact = recipient.contact
    reason = "no_email" if contact is None else skip_reason(contact)
    rendered = render_for(campaign, contact) if reason is None else None
    if rendered is not None and rendered.missing:
        reason = "missing_value"
    if reason is None and email_key(contact.email) != email_key(recipient.email):
        reason = "no_email"  # the address changed: it was not the one planned
    if reason is not None:
        recipient.status, recipient.skip_reason = "skipped", reason
        return False
    line, link = footer(campaign, contact, recipient.unsubscribe_token)
    text = f"{rendered.body}\n\n-- \n{line}"
    html_body = outbox.text_to_html(rendered.body) + (
        f'<p><small><a href="{unsubscribe_url(recipient.unsubscribe_token)}">'
        f"{_html(link)}</a></small></p>"
    )
    try:
        message = _queue(campaign, recipient, contact, rendered, text, html_body)
    except outbox.OutboxRefused:
        # A text the outbox will not send as it is: this person is skipped, the others go.
        recipient.status, recipient.skip_reason = "skipped", "missing_value"
        return False
    message.campaign_id = campaign.id
    recipient.email_message_id = message.id
    return True


def _queue(campaign, recipient, contact, rendered, text, html_body) -> EmailMessage:
    from crm.services.email_compose import may_track

    return outbox.queue_message(
        campaign.owner,
        campaign.mailbox,
        [recipient.email],
        [],
        rendered.subject,
        text,
        html_body,
        contact=contact,
        track_opens=campaign.track_opens and may_track(contact),
        privacy="public",
    )


def _html(text: str) -> str:
    from markupsafe import escape

    return str(escape(text))


def list_unsubscribe_headers(message: EmailMessage) -> dict[str, str]:
    """List-Unsubscribe (and RFC 8058 one-click) for a campaign's mail; {} for any other."""
    if message.campaign_id is None or message.direction != "out":
        return {}
    token = db.session.scalar(
        select(CampaignRecipient.unsubscribe_token).where(
            CampaignRecipient.email_message_id == message.id
        )
    )
    if not token:
        return {}
    return {
        "List-Unsubscribe": f"<{unsubscribe_url(token)}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "Precedence": "bulk",
    }


def sync_recipients(campaign_id: int) -> None:
    """Copy what the outbox knows onto the recipient rows: sent or failed, when, and the
    first open (the pixel writes EmailMessage.first_opened_at)."""
    message = select(EmailMessage).where(EmailMessage.id == CampaignRecipient.email_message_id)
    for status in ("sent", "failed"):
        db.session.execute(
            update(CampaignRecipient)
            .where(
                CampaignRecipient.campaign_id == campaign_id,
                CampaignRecipient.status == "queued",
                message.where(EmailMessage.status == status).exists(),
            )
            .values(
                status=status,
                sent_at=message.with_only_columns(EmailMessage.delivered_at).scalar_subquery(),
            )
            .execution_options(synchronize_session=False)
        )
    db.session.execute(
        update(CampaignRecipient)
        .where(
            CampaignRecipient.campaign_id == campaign_id,
            CampaignRecipient.opened_at.is_(None),
            message.where(EmailMessage.first_opened_at.is_not(None)).exists(),
        )
        .values(opened_at=message.with_only_columns(EmailMessage.first_opened_at).scalar_subquery())
        .execution_options(synchronize_session=False)
    )


def campaigns_to_watch(now: datetime | None = None) -> list[tuple[int, str]]:
    """(id, status) of the campaigns the sweeper looks after: sending, and those that
    finished lately (their opens still come in)."""
    since = (now or utcnow()) - timedelta(days=30)
    query = select(Campaign.id, Campaign.status).where(
        or_(
            Campaign.status == "sending",
            and_(
                Campaign.status.in_(("sent", "paused", "cancelled")), Campaign.started_at >= since
            ),
        )
    )
    return [tuple(row) for row in db.session.execute(query.order_by(Campaign.id))]


# ---- unsubscribing --------------------------------------------------------------------------


def recipient_by_token(token: str) -> CampaignRecipient | None:
    if not token or len(token) > 64:
        return None
    return db.session.scalars(
        select(CampaignRecipient)
        .where(CampaignRecipient.unsubscribe_token == token)
        .options(joinedload(CampaignRecipient.contact), joinedload(CampaignRecipient.campaign))
    ).first()


def unsubscribe(recipient: CampaignRecipient) -> bool:
    """The person asked to receive no more: the contact's opt-out, which every later send
    honours, and an entry on their timeline naming the campaign. False if done already."""
    contact = recipient.contact
    if contact is None or contact.unsubscribed_at is not None:
        return False
    from crm.services.timeline import record_activity

    contact.unsubscribed_at = utcnow()
    record_activity(
        None,
        "system",
        contact=contact,
        data={
            "event": "unsubscribed",
            "campaign_id": recipient.campaign_id,
            "campaign": recipient.campaign.name if recipient.campaign else "",
        },
    )
    # Whoever is still waiting in a campaign being sent is skipped at claim time.
    return True


# ---- replies (crm/services/mail_routing.py) ---------------------------------------------------


def record_reply(message: EmailMessage, contact: Contact | None) -> dict:
    """A reply to a campaign's mail: the recipient marked replied, and a task (with a
    notification) for the contact's owner or the campaign's owner. Returns the routing."""
    from crm.services.notifications import notify
    from crm.services.tasks import create_task

    campaign = db.session.get(Campaign, message.campaign_id)
    recipient = None
    if contact is not None:
        recipient = db.session.scalars(
            select(CampaignRecipient).where(
                CampaignRecipient.campaign_id == message.campaign_id,
                CampaignRecipient.contact_id == contact.id,
            )
        ).first()
    if recipient is None:
        recipient = db.session.scalars(
            select(CampaignRecipient).where(
                CampaignRecipient.campaign_id == message.campaign_id,
                CampaignRecipient.email_message_id.in_(
                    select(EmailMessage.id).where(
                        EmailMessage.thread_id == message.thread_id,
                        EmailMessage.direction == "out",
                    )
                ),
            )
        ).first()
    if recipient is not None and recipient.replied_at is None:
        recipient.replied_at = message.received_at or message.sent_at or utcnow()
    routing = {"rule": "campaign_reply", "campaign_id": message.campaign_id}
    if contact is not None:
        routing["contact_id"] = contact.id
    owner, to = _reply_owner(campaign, contact)
    routing["assigned_to"] = to
    if owner is None:
        return routing
    with writing_for(owner):
        name = contact.name if contact is not None else message.from_address
        title = _(
            "Answer %(name)s (reply to the campaign %(campaign)s)",
            name=name,
            campaign=campaign.name if campaign else "",
        )
    task = create_task(
        owner,
        title[:200],
        due_at=utcnow() + timedelta(days=1),
        assignee=owner,
        notes=(message.snippet or "")[:1000] or None,
        contact=contact,
    )
    url = f"/contacts/{contact.id}" if contact is not None else "/tasks"
    notify(owner, title, kind="campaign_reply", body=(message.snippet or "")[:300], url=url)
    routing["task_id"] = task.id
    routing["user_id"] = owner.id
    return routing


def _reply_owner(campaign: Campaign | None, contact: Contact | None) -> tuple[User | None, str]:
    """Who answers: the contact's owner when the campaign says so and there is one (and
    they are active); else the campaign's owner."""
    if campaign is None:
        return None, "nobody"
    owner = contact.owner if contact is not None else None
    if campaign.replies_to == "contact_owner" and owner is not None and owner.active:
        return owner, "contact_owner"
    if campaign.owner is not None and campaign.owner.active:
        return campaign.owner, "campaign_owner"
    return None, "nobody"


# ---- attribution ------------------------------------------------------------------------------


def campaign_for_new_lead(connection, email: str | None) -> int | None:
    """The campaign a new lead with source "campaign" came from: the last one that mailed
    this address, else the last one started."""
    key = email_key(email)
    if key:
        found = connection.execute(
            select(CampaignRecipient.campaign_id)
            .where(func.lower(CampaignRecipient.email) == key)
            .order_by(CampaignRecipient.id.desc())
            .limit(1)
        ).scalar()
        if found:
            return found
    return connection.execute(
        select(Campaign.id)
        .where(Campaign.started_at.is_not(None))
        .order_by(Campaign.started_at.desc(), Campaign.id.desc())
        .limit(1)
    ).scalar()


@event.listens_for(Contact, "before_insert")
def _attribute_campaign_lead(mapper, connection, contact: Contact) -> None:
    # Web forms (and imports) whose source is "campaign": first-touch attribution.
    if contact.source == "campaign" and contact.campaign_id is None:
        contact.campaign_id = campaign_for_new_lead(connection, contact.email)


def campaign_choices() -> list[tuple[int, str]]:
    """(id, name) of campaigns that were sent, for the deal's attribution select."""
    query = select(Campaign.id, Campaign.name).where(Campaign.started_at.is_not(None))
    return [tuple(row) for row in db.session.execute(query.order_by(Campaign.started_at.desc()))]


# ---- results ----------------------------------------------------------------------------------


@dataclass
class Results:
    campaign: Campaign
    recipients: int = 0
    sent: int = 0
    queued: int = 0
    pending: int = 0
    failed: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    opened: int = 0
    replied: int = 0
    unsubscribed: int = 0
    leads: int = 0
    customers: int = 0
    deals_won: int = 0
    revenue: Decimal = Decimal("0")

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    @property
    def cost(self) -> Decimal:
        return self.campaign.cost or Decimal("0")

    @property
    def open_rate(self) -> Decimal | None:
        return _rate(self.opened, self.sent)

    @property
    def reply_rate(self) -> Decimal | None:
        return _rate(self.replied, self.sent)

    @property
    def cost_per_lead(self) -> Decimal | None:
        return _money(self.cost / self.leads) if self.leads and self.cost else None

    @property
    def cost_per_customer(self) -> Decimal | None:
        return _money(self.cost / self.customers) if self.customers and self.cost else None

    @property
    def roi(self) -> Decimal | None:
        """(revenue - cost) / cost, as a percentage; None without a cost."""
        if not self.cost:
            return None
        return ((self.revenue - self.cost) / self.cost * 100).quantize(Decimal("0.1"))


def _rate(part: int, whole: int) -> Decimal | None:
    if not whole:
        return None
    return (Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.1"))


def _money(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"))


@dataclass
class Period:
    """Customers acquired (and deals won) between start and end (aware UTC), when given."""

    start: datetime | None = None
    end: datetime | None = None

    @property
    def bounded(self) -> bool:
        return self.start is not None and self.end is not None


def results_for(user: User, campaigns: list[Campaign], period: Period | None = None) -> dict:
    """{campaign id: Results} for these campaigns, in a fixed number of grouped queries
    whatever their number (no query per campaign)."""
    period = period or Period()
    found = {c.id: Results(c) for c in campaigns}
    ids = list(found)
    if not ids:
        return found
    opened = func.coalesce(CampaignRecipient.opened_at, EmailMessage.first_opened_at)
    rows = db.session.execute(
        select(
            CampaignRecipient.campaign_id,
            CampaignRecipient.status,
            CampaignRecipient.skip_reason,
            EmailMessage.status,
            func.count(CampaignRecipient.id),
            func.count(opened),
            func.count(CampaignRecipient.replied_at),
        )
        .outerjoin(EmailMessage, EmailMessage.id == CampaignRecipient.email_message_id)
        .where(CampaignRecipient.campaign_id.in_(ids))
        .group_by(
            CampaignRecipient.campaign_id,
            CampaignRecipient.status,
            CampaignRecipient.skip_reason,
            EmailMessage.status,
        )
    )
    for campaign_id, status, reason, message_status, total, opens, replies in rows:
        result = found[campaign_id]
        result.recipients += total
        result.opened += opens
        result.replied += replies
        if status == "skipped":
            result.skipped[reason or "?"] = result.skipped.get(reason or "?", 0) + total
        elif status == "pending":
            result.pending += total
        elif message_status == "sent" or (status == "sent" and message_status is None):
            result.sent += total
        elif message_status == "failed" or status == "failed":
            result.failed += total
        else:
            result.queued += total
    _unsubscribes(found, ids)
    _leads(user, found, ids, period)
    _revenue(user, found, ids, period)
    return found


def _unsubscribes(found: dict, ids: list[int]) -> None:
    from crm.models import Activity

    campaign = Activity.data["campaign_id"].as_integer()
    rows = db.session.execute(
        select(campaign, func.count(func.distinct(Activity.contact_id)))
        .where(Activity.kind == "system", Activity.data["event"].as_string() == "unsubscribed")
        .where(campaign.in_(ids))
        .group_by(campaign)
    )
    for campaign_id, total in rows:
        if campaign_id in found:
            found[campaign_id].unsubscribed = total


def _leads(user: User, found: dict, ids: list[int], period: Period) -> None:
    """Leads: attributed contacts created once the campaign started; customers: those at
    the customer stage (acquired in the period: a won deal of theirs closed in it)."""
    contacts = visible_contacts(user).where(Contact.campaign_id.in_(ids))
    started = select(Campaign.started_at).where(Campaign.id == Contact.campaign_id)
    lead = Contact.created_at >= started.scalar_subquery()
    customer = Contact.stage == "customer"
    if period.bounded:
        won_in_period = (
            select(Deal.id)
            .join(Stage, Deal.stage_id == Stage.id)
            .where(
                Deal.contact_id == Contact.id,
                Stage.kind == "won",
                Deal.closed_at >= period.start,
                Deal.closed_at < period.end,
            )
            .exists()
        )
        customer = and_(customer, won_in_period)
    rows = db.session.execute(
        contacts.with_only_columns(
            Contact.campaign_id,
            func.sum(case((lead, 1), else_=0)),
            func.sum(case((customer, 1), else_=0)),
        ).group_by(Contact.campaign_id)
    )
    for campaign_id, leads, customers in rows:
        found[campaign_id].leads = int(leads or 0)
        found[campaign_id].customers = int(customers or 0)


def _revenue(user: User, found: dict, ids: list[int], period: Period) -> None:
    """Won deals attributed to the campaign (in the user's visible deals), in its currency:
    a deal in another currency is not added to it."""
    query = (
        visible_deals(user)
        .join(Stage, Deal.stage_id == Stage.id)
        .join(Campaign, Campaign.id == Deal.campaign_id)
        .where(Deal.campaign_id.in_(ids), Stage.kind == "won", Deal.currency == Campaign.currency)
    )
    if period.bounded:
        query = query.where(Deal.closed_at >= period.start, Deal.closed_at < period.end)
    rows = db.session.execute(
        query.with_only_columns(
            Deal.campaign_id, func.count(Deal.id), func.sum(Deal.amount)
        ).group_by(Deal.campaign_id)
    )
    for campaign_id, won, revenue in rows:
        found[campaign_id].deals_won = won
        found[campaign_id].revenue = Decimal(revenue or 0)


SORTS = {
    "started": lambda r: (
        r.campaign.started_at is not None,
        r.campaign.started_at or r.campaign.created_at,
    ),
    "name": lambda r: r.campaign.name.lower(),
    "sent": lambda r: r.sent,
    "opened": lambda r: r.open_rate or 0,
    "replied": lambda r: r.reply_rate or 0,
    "leads": lambda r: r.leads,
    "customers": lambda r: r.customers,
    "cost_per_customer": lambda r: (r.cost_per_customer is None, r.cost_per_customer or 0),
    "revenue": lambda r: r.revenue,
    "roi": lambda r: (r.roi is not None, r.roi or 0),
}


def campaign_list(
    user: User,
    *,
    sort: str = "started",
    descending: bool = True,
    period: Period | None = None,
    limit: int = 200,
) -> list[Results]:
    """Every campaign with its headline figures, sorted; with a period, only campaigns
    that acquired a customer in it, or were started in it."""
    period = period or Period()
    query = visible_campaigns(user).options(joinedload(Campaign.owner))
    campaigns = list(db.session.scalars(query.order_by(Campaign.id.desc()).limit(limit)))
    results = list(results_for(user, campaigns, period).values())
    if period.bounded:
        results = [
            r
            for r in results
            if r.customers
            or r.deals_won
            or (r.campaign.started_at and period.start <= r.campaign.started_at < period.end)
        ]
    key = SORTS.get(sort, SORTS["started"])
    if sort == "cost_per_customer":
        # Cheapest first reads best; campaigns without a customer last either way.
        results.sort(key=key, reverse=False)
        if descending:
            results = [r for r in results if r.cost_per_customer is not None][::-1] + [
                r for r in results if r.cost_per_customer is None
            ]
        return results
    results.sort(key=key, reverse=descending)
    return results


def recipients_page(campaign: Campaign, user: User, *, after_id: int = 0, size: int = 50):
    """Recipients by id after `after_id` (keyset), with contact and message, one query."""
    query = (
        select(CampaignRecipient)
        .where(CampaignRecipient.campaign_id == campaign.id, CampaignRecipient.id > after_id)
        .where(
            or_(
                CampaignRecipient.contact_id.is_(None),
                CampaignRecipient.contact_id.in_(
                    visible_contacts(user).with_only_columns(Contact.id)
                ),
            )
        )
        .options(joinedload(CampaignRecipient.contact))
        .order_by(CampaignRecipient.id)
        .limit(size + 1)
    )
    rows = list(db.session.scalars(query))
    more = len(rows) > size
    return rows[:size], (rows[size - 1].id if more else None)
