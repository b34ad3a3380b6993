"""Lead routing: which owner a new lead goes to, and why.

Owned by the leads work; email (sales mailbox) and imports call route_lead().
"""

from dataclasses import dataclass

from crm.models import Contact, RoutingRule, User


@dataclass
class RoutingDecision:
    owner: User | None
    rule: RoutingRule | None
    reason: str  # shown to the user (in the language of the request or of the owner)


def decide(contact: Contact) -> RoutingDecision:
    """Where `contact` would go, and why, without changing anything (the dry run)."""
    raise NotImplementedError


def route_lead(contact: Contact, actor: User | None = None) -> RoutingDecision:
    """Give the lead its owner (rules, else round-robin), record the reason on the contact,
    give the owner a task and a notification. The caller commits."""
    raise NotImplementedError
