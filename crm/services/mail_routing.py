"""Where new mail goes, by the purpose of the mailbox it came to, and why.

- support: a message in a thread tied to an incident adds to that incident (a customer
  reply puts a waiting incident back to work); any other opens an incident for the
  mailbox's team, given round-robin to an agent.
- sales: a known sender's mail stays on their timeline and tells their owner; an
  unknown sender becomes a lead, routed to an owner by the lead routing rules.
- personal and other mailboxes: the timeline only.
Auto-replies, bounces and bulk mail never open anything: timeline only.

The decision is kept on the message (EmailMessage.routing: codes and ids, no personal
data) and told in the reader's language by describe().
"""

import re

from flask import has_request_context
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from crm.extensions import db
from crm.i18n import office_language, writing_for
from crm.models import Contact, EmailMessage, Incident, IncidentMessage, User
from crm.models.search_keys import email_key
from crm.services import incidents as incident_service
from crm.services.email_timeline import own_addresses
from crm.services.notifications import notify
from crm.services.reminders import now

# The reference the outbox writes into reply subjects: "Re: Printer [#12]".
_SUBJECT_REFERENCE = re.compile(r"\[#(\d{1,12})\]")
_NO_SUBJECT = _l("(no subject)")
_NOTIFY_LENGTH = 120


def route(message: EmailMessage, *, automatic: bool = False) -> dict:
    """Act on a new inbound message of a synced mailbox; store and return the reason."""
    mailbox = message.mailbox
    purpose = mailbox.purpose if mailbox is not None else "other"
    sender = email_key(message.from_address)
    if not sender or sender in own_addresses():
        # Our own mail coming back (a copy, a forward between our mailboxes): never a customer.
        routing = {"rule": "own_address", "purpose": purpose}
    elif message.campaign_id is not None and not automatic:
        # A reply in a campaign's thread (threading set campaign_id): a task for the
        # person who answers it, whatever the mailbox it came to.
        routing = _route_campaign_reply(message)
    elif purpose == "support":
        routing = _route_support(message, automatic)
    elif purpose == "sales":
        routing = _route_sales(message, automatic)
    else:
        routing = {"rule": "timeline_only", "purpose": purpose}
    message.routing = routing
    return routing


# ---- support ---------------------------------------------------------------------


def _route_support(message: EmailMessage, automatic: bool) -> dict:
    incident = _incident_of(message)
    if automatic:
        return {
            "rule": "automatic",
            "purpose": "support",
            **({"incident_id": incident.id} if incident else {}),
        }
    if incident is not None and incident.status != "closed":
        return _add_to_incident(message, incident)
    return _open_incident(message, reopened_from=incident.id if incident else None)


def _incident_of(message: EmailMessage) -> Incident | None:
    """The incident of the thread; else the one named in the subject ("[#12]") when the
    sender is that incident's customer, for mail clients that drop the thread headers."""
    thread = message.thread
    if thread is not None and thread.incident_id is not None:
        return db.session.get(Incident, thread.incident_id)
    found = _SUBJECT_REFERENCE.search(message.subject or "")
    if found is None:
        return None
    incident = db.session.get(Incident, int(found.group(1)))
    if incident is None or incident.contact is None:
        return None
    if incident.contact.email_key != email_key(message.from_address):
        return None
    if thread is not None and thread.incident_id is None:
        thread.incident_id = incident.id
    return incident


def _add_to_incident(message: EmailMessage, incident: Incident) -> dict:
    message.incident_id = incident.id
    db.session.add(
        IncidentMessage(
            incident=incident,
            kind="inbound",
            body=message.text_body or message.snippet or "",
            email=message,
            created_at=now(),
        )
    )
    reopened = None
    # The customer answered: the clock that stopped while waiting on them runs again.
    if incident.status in ("waiting", "resolved"):
        reopened = incident.status
        incident_service.change_status(incident, "open")
    if incident.assignee is not None:
        with _language_of(incident.assignee):
            title = _(
                "The customer replied on %(ref)s: %(subject)s",
                ref=incident.reference,
                subject=incident.subject,
            )
        notify(
            incident.assignee,
            title,
            kind="incident_reply",
            body=(message.snippet or "")[:300],
            url=incident_service.incident_path(incident),
        )
    routing = {"rule": "incident_reply", "incident_id": incident.id}
    if reopened:
        routing["reopened_from"] = reopened
    return routing


def _open_incident(message: EmailMessage, reopened_from: int | None) -> dict:
    mailbox = message.mailbox
    contact, created = _customer(message)
    incident = incident_service.create_incident(
        None,
        subject=(message.subject or "").strip()[:200] or _subject_fallback(),
        description=message.text_body or message.snippet,
        channel="email",
        contact=contact,
        team=mailbox.team if mailbox is not None else None,
        round_robin=True,
    )
    message.incident_id = incident.id
    if message.thread is not None:
        message.thread.incident_id = incident.id
    routing = {
        "rule": "incident_opened",
        "incident_id": incident.id,
        "contact_id": contact.id,
        "contact_created": created,
    }
    if reopened_from:
        routing["closed_incident_id"] = reopened_from
    return routing


def _subject_fallback() -> str:
    with force_locale(office_language()):
        return str(_NO_SUBJECT)


def find_contact(address: str | None) -> Contact | None:
    """The contact with this address (erased people are nobody), the oldest first."""
    key = email_key(address)
    if not key:
        return None
    return db.session.scalars(
        select(Contact)
        .where(Contact.email_key == key, Contact.erased_at.is_(None))
        .order_by(Contact.id)
        .limit(1)
    ).first()


def split_name(display_name: str | None) -> tuple[str, str]:
    """ "Alice Martin" -> ("Alice", "Martin"); "Martin, Alice" -> ("Alice", "Martin")."""
    name = " ".join((display_name or "").replace('"', " ").split())
    if "@" in name:
        return "", ""  # a client that shows the address as the name
    if "," in name:
        last, _comma, first = name.partition(",")
        return first.strip()[:100], last.strip()[:100]
    first, _space, last = name.partition(" ")
    return first[:100], last[:100]


def _customer(message: EmailMessage) -> tuple[Contact, bool]:
    contact = find_contact(message.from_address)
    if contact is not None:
        return contact, False
    first, last = split_name(message.from_name)
    contact = Contact(first_name=first, last_name=last, email=message.from_address, source="email")
    db.session.add(contact)
    db.session.flush()
    return contact, True


# ---- campaigns -------------------------------------------------------------------


def _route_campaign_reply(message: EmailMessage) -> dict:
    """The recipient marked replied and a task for the contact's owner or the campaign's
    (Campaign.replies_to); a stranger answering (a forwarded mailing) becomes a lead
    attributed to the campaign."""
    from crm.services import campaigns

    contact = find_contact(message.from_address)
    created = False
    if contact is None:
        contact = _lead_from_sender(message, "campaign")
        contact.campaign_id = message.campaign_id
        created = True
    message.contact = contact
    routing = campaigns.record_reply(message, contact)
    routing["contact_created"] = created
    return routing


# ---- sales -----------------------------------------------------------------------


def _route_sales(message: EmailMessage, automatic: bool) -> dict:
    contact = find_contact(message.from_address)
    if contact is not None:
        message.contact = contact
        if contact.owner is not None and not automatic:
            with _language_of(contact.owner):
                title = _(
                    "New email from %(name)s: %(subject)s",
                    name=contact.name,
                    subject=(message.subject or "")[:_NOTIFY_LENGTH],
                )
            notify(
                contact.owner,
                title,
                kind="email",
                body=(message.snippet or "")[:300],
                url=f"/contacts/{contact.id}",
            )
        return {
            "rule": "known_sender",
            "purpose": "sales",
            "contact_id": contact.id,
            "owner_notified": bool(contact.owner_id and not automatic),
        }
    if automatic:
        return {"rule": "automatic", "purpose": "sales"}
    contact = _lead_from_sender(message, "email")
    message.contact = contact
    return {"rule": "new_lead", "purpose": "sales", "contact_id": contact.id}


def _lead_from_sender(message: EmailMessage, source: str):
    """A new lead for the stranger who wrote, routed to an owner like any other lead."""
    from crm.services.leads import capture_lead

    first, last = split_name(message.from_name)
    return capture_lead(
        source=source,
        first_name=first,
        last_name=last,
        email=message.from_address,
        message=message.text_body or message.snippet,
        route=True,
    )


def _language_of(user: User):
    """Text stored for someone (a notification) is in their language."""
    return writing_for(user)


# ---- telling why -----------------------------------------------------------------

_PURPOSES = {
    "support": _l("the support mailbox"),
    "sales": _l("the sales mailbox"),
    "personal": _l("a personal mailbox"),
    "other": _l("a shared mailbox"),
}


def describe(routing: dict | None) -> str:
    """Why the message went where it went, in the reader's language (the request's; the
    site's outside a request); "" when not routed."""
    if not routing:
        return ""
    if not has_request_context():
        with force_locale(office_language()):
            return _describe(routing)
    return _describe(routing)


def _describe(routing: dict) -> str:
    rule = routing.get("rule")
    mailbox = str(_PURPOSES.get(routing.get("purpose") or "", _PURPOSES["other"]))
    ref = f"#{routing['incident_id']}" if routing.get("incident_id") else ""
    if rule == "incident_opened":
        if routing.get("closed_incident_id"):
            return _(
                "Opened incident %(ref)s (a reply to incident #%(closed)s, which is closed)",
                ref=ref,
                closed=routing["closed_incident_id"],
            )
        return _(
            "Opened incident %(ref)s (mail to the support mailbox from an unknown thread)",
            ref=ref,
        )
    if rule == "incident_reply":
        if routing.get("reopened_from") == "waiting":
            return _(
                "Added to incident %(ref)s (a reply in its thread); it was waiting on the "
                "customer and is open again",
                ref=ref,
            )
        if routing.get("reopened_from") == "resolved":
            return _(
                "Added to incident %(ref)s (a reply in its thread); it was resolved and is "
                "open again",
                ref=ref,
            )
        return _("Added to incident %(ref)s (a reply in its thread)", ref=ref)
    if rule == "automatic":
        return _(
            "Kept on the timeline only: an automatic reply, a bounce or bulk mail to "
            "%(mailbox)s opens nothing",
            mailbox=mailbox,
        )
    if rule == "known_sender":
        if routing.get("owner_notified"):
            return _(
                "Kept on the timeline of a known contact (mail to the sales mailbox); their "
                "owner was notified"
            )
        return _("Kept on the timeline of a known contact (mail to the sales mailbox)")
    if rule == "new_lead":
        return _(
            "New lead (mail to the sales mailbox from an unknown sender), given an owner by "
            "the lead routing rules"
        )
    if rule == "campaign_reply":
        if routing.get("assigned_to") == "contact_owner":
            return _("A reply to a campaign: a task for the contact's owner, as the campaign asks")
        if routing.get("assigned_to") == "campaign_owner":
            return _("A reply to a campaign: a task for the campaign's owner")
        return _("A reply to a campaign: nobody active to hand it to")
    if rule == "own_address":
        return _("Kept on the timeline only: it comes from one of our own addresses")
    return _("Kept on the timeline only (mail to %(mailbox)s)", mailbox=mailbox)
