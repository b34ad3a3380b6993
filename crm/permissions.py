"""Who may do what: one decorator per route, one scope per kind of record.

Every view declares a permission with @requires(...) or @public; a test walks
the URL map and fails on a view that declares neither. Every query that returns
records starts from a visible_*() scope, and single records are fetched with
get_or_404_for(), so that another user's id gives a 404 rather than a leak.
"""

from functools import wraps

from flask import abort
from flask_login import current_user
from sqlalchemy import Select, false, select

from crm.extensions import db, login_manager
from crm.models import (
    Activity,
    Company,
    Contact,
    Deal,
    EmailMessage,
    Event,
    Incident,
    Intervention,
    Task,
    TechnicianBooking,
    User,
)

ADMIN, MANAGER, SALES, SUPPORT, TECHNICIAN = "admin", "manager", "sales", "support", "technician"
EVERYONE = frozenset({ADMIN, MANAGER, SALES, SUPPORT, TECHNICIAN})
OFFICE = frozenset({ADMIN, MANAGER, SALES, SUPPORT})

# The default policy of DESIGN.md §4. Technicians get records only through the
# interventions they are booked on (see the scopes below).
POLICY: dict[str, frozenset[str]] = {
    "home.view": EVERYONE,
    "account.settings": EVERYONE,
    "search.use": EVERYONE,
    "contacts.list": OFFICE,
    "contacts.view": EVERYONE,
    "contacts.create": OFFICE,
    "contacts.edit": OFFICE,
    "contacts.assign": frozenset({ADMIN, MANAGER}),
    "contacts.delete": frozenset({ADMIN, MANAGER}),
    "activities.log": EVERYONE,
    "deals.view": frozenset({ADMIN, MANAGER, SALES}),
    "deals.edit": frozenset({ADMIN, MANAGER, SALES}),
    "deals.assign": frozenset({ADMIN, MANAGER}),
    "deals.delete": frozenset({ADMIN, MANAGER}),
    "forecast.view": frozenset({ADMIN, MANAGER, SALES}),
    "quotas.manage": frozenset({ADMIN, MANAGER}),
    "products.view": frozenset({ADMIN, MANAGER, SALES}),
    "products.manage": frozenset({ADMIN, MANAGER}),
    "pipelines.manage": frozenset({ADMIN}),
    "agenda.view": EVERYONE,
    # Record rules on top (crm/permissions.py can_edit_event): organizers, their
    # team's manager and admins change an event; attendees only answer.
    "agenda.edit": EVERYONE,
    # Plan for others: team view planning, team calendar feeds.
    "agenda.plan_team": frozenset({ADMIN, MANAGER}),
    "tasks.use": EVERYONE,
    "notifications.view": EVERYONE,
    # Sales read the incidents of their customers (visible_incidents); support works them.
    "incidents.view": OFFICE,
    # One incident's page (visible_incidents decides which): technicians read those
    # of their interventions, as they read their customers' records (contacts.view).
    "incidents.read": EVERYONE,
    "incidents.edit": frozenset({ADMIN, MANAGER, SUPPORT}),
    # Service levels, business hours, holidays, canned responses.
    "support.configure": frozenset({ADMIN, MANAGER}),
    "interventions.view": frozenset({ADMIN, MANAGER, SUPPORT, TECHNICIAN}),
    "interventions.plan": frozenset({ADMIN, MANAGER, SUPPORT}),
    # Status and report on site: technicians on their own bookings (can_work_intervention).
    "interventions.work": frozenset({ADMIN, MANAGER, SUPPORT, TECHNICIAN}),
    "reports.view": frozenset({ADMIN, MANAGER}),
    "dashboards.view": EVERYONE,
    "users.manage": frozenset({ADMIN}),
    "security.manage": frozenset({ADMIN}),
    "audit.view": frozenset({ADMIN}),
    # Field level: support works with customers but never sees what deals are worth.
    "deals.see_amounts": frozenset({ADMIN, MANAGER, SALES}),
    # Personal data (GDPR): a copy of all we hold on a person, and erasure on request.
    "contacts.export_personal_data": frozenset({ADMIN, MANAGER}),
    "contacts.erase": frozenset({ADMIN, MANAGER}),
    # Email (visible_emails decides which messages): read, write and send from the CRM.
    "email.view": OFFICE,
    "email.send": OFFICE,
    # Shared mailboxes (support@, sales@) and the worker's health: admins. Each office
    # user connects their own mailbox.
    "mailboxes.manage": frozenset({ADMIN}),
    "mailboxes.own": OFFICE,
    "system.view": frozenset({ADMIN}),
    # Leads: the hot list, the scoring and routing rules, the public web forms.
    "leads.view": frozenset({ADMIN, MANAGER, SALES}),
    "leads.rules": frozenset({ADMIN, MANAGER}),
    "custom_fields.manage": frozenset({ADMIN}),
    "imports.run": frozenset({ADMIN, MANAGER}),
    # Export a filtered list (what the list shows to this user: no amounts for support).
    "records.export": OFFICE,
    "records.merge": frozenset({ADMIN, MANAGER}),
    # Campaigns mail many customers at once and show revenue across reps: managers and admins.
    "campaigns.manage": frozenset({ADMIN, MANAGER}),
    # Segments read the shared address book (deal conditions within visible_deals): sales too.
    "segments.use": frozenset({ADMIN, MANAGER, SALES}),
}

PUBLIC = "public"


def has_permission(user, permission: str) -> bool:
    if permission not in POLICY:
        raise KeyError(f"unknown permission {permission!r}")
    return bool(user and user.is_authenticated and user.role in POLICY[permission])


def requires(permission: str):
    """Route decorator: the signed-in user's role must hold `permission`."""
    if permission not in POLICY:
        raise KeyError(f"unknown permission {permission!r}")

    def decorator(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if not has_permission(current_user, permission):
                abort(403)
            return view(*args, **kwargs)

        wrapped.permission = permission
        return wrapped

    return decorator


def public(view):
    """Route decorator for the few pages anybody may open (login, invitations)."""
    view.permission = PUBLIC
    return view


def can(permission: str, record=None) -> bool:
    """For templates: hide what the user may not do. The routes check again."""
    if not has_permission(current_user, permission):
        return False
    if record is None:
        return True
    return is_visible(current_user, record)


# ---- record scopes ---------------------------------------------------------


def _booked_intervention_ids(user: User):
    """The interventions a technician is (or was) booked on."""
    return select(TechnicianBooking.intervention_id).where(
        TechnicianBooking.technician_id == user.id
    )


def visible_contacts(user: User) -> Select:
    """Everybody in the office shares the address book; a technician sees the
    customers of the interventions they are booked on, and no one else."""
    query = select(Contact)
    if user.role == TECHNICIAN:
        booked = select(Intervention.contact_id).where(
            Intervention.id.in_(_booked_intervention_ids(user))
        )
        return query.where(Contact.id.in_(booked))
    return query


def visible_companies(user: User) -> Select:
    query = select(Company)
    if user.role == TECHNICIAN:
        booked = select(Intervention.company_id).where(
            Intervention.id.in_(_booked_intervention_ids(user))
        )
        return query.where(Company.id.in_(booked))
    return query


def visible_incidents(user: User) -> Select:
    """Support, managers and admins see every incident; a rep those of their own
    customers (read-only); a technician those of their interventions."""
    query = select(Incident)
    if user.role in (ADMIN, MANAGER, SUPPORT):
        return query
    if user.role == SALES:
        own_contacts = select(Contact.id).where(Contact.owner_id == user.id)
        own_companies = select(Company.id).where(Company.owner_id == user.id)
        return query.where(
            Incident.contact_id.in_(own_contacts) | Incident.company_id.in_(own_companies)
        )
    if user.role == TECHNICIAN:
        booked = select(Intervention.incident_id).where(
            Intervention.id.in_(_booked_intervention_ids(user))
        )
        return query.where(Incident.id.in_(booked))
    return query.where(false())


def visible_interventions(user: User) -> Select:
    query = select(Intervention)
    if user.role in (ADMIN, MANAGER, SUPPORT):
        return query
    if user.role == TECHNICIAN:
        return query.where(Intervention.id.in_(_booked_intervention_ids(user)))
    return query.where(false())


def visible_deals(user: User) -> Select:
    """Admins see every deal, managers their team's, reps their own; others none."""
    query = select(Deal)
    if user.role == ADMIN:
        return query
    if user.role == MANAGER:
        team_members = select(User.id).where(User.team_id == user.team_id)
        if user.team_id is None:
            return query.where(Deal.owner_id == user.id)
        return query.where((Deal.owner_id.in_(team_members)) | (Deal.owner_id.is_(None)))
    if user.role == SALES:
        return query.where(Deal.owner_id == user.id)
    return query.where(false())


def visible_activities(user: User) -> Select:
    query = select(Activity)
    if user.role == TECHNICIAN:
        return query.where(Activity.author_id == user.id)
    return query


def _team_member_ids(user: User):
    return select(User.id).where(User.team_id == user.team_id)


def visible_events(user: User) -> Select:
    """The agenda is shared: everybody sees every event's time.

    What an event says is another matter: see event_details_visible().
    """
    return select(Event)


def event_details_visible(user: User, event: Event) -> bool:
    """Title, place and people of a private event are for its attendees only."""
    if not event.private:
        return True
    root = event.parent or event
    if root.organizer_id == user.id:
        return True
    return any(attendee.user_id == user.id for attendee in root.attendees)


def can_edit_event(user: User, event: Event) -> bool:
    """The organizer, the organizer's team manager and admins change an event."""
    if not has_permission(user, "agenda.edit"):
        return False
    root = event.parent or event
    if user.role == ADMIN or root.organizer_id == user.id:
        return True
    if user.role == MANAGER and user.team_id is not None and root.organizer is not None:
        return root.organizer.team_id == user.team_id
    return False


def visible_tasks(user: User) -> Select:
    """Admins see every task, managers their team's, others what is theirs."""
    query = select(Task)
    if user.role == ADMIN:
        return query
    mine = (Task.assignee_id == user.id) | (Task.created_by_id == user.id)
    if user.role == MANAGER and user.team_id is not None:
        return query.where(mine | Task.assignee_id.in_(_team_member_ids(user)))
    return query.where(mine)


def visible_emails(user: User) -> Select:
    """Public messages for the office; "team" ones for the owner's team; private ones for
    their owner or author only (admins included: private means private). A technician
    reads what they wrote."""
    query = select(EmailMessage)
    mine = (EmailMessage.owner_id == user.id) | (EmailMessage.author_id == user.id)
    if user.role == TECHNICIAN:
        return query.where(mine)
    team = false()
    if user.team_id is not None:
        team = (EmailMessage.privacy == "team") & EmailMessage.owner_id.in_(_team_member_ids(user))
    return query.where((EmailMessage.privacy == "public") | team | mine)


SCOPES = {
    EmailMessage: visible_emails,
    Contact: visible_contacts,
    Deal: visible_deals,
    Company: visible_companies,
    Activity: visible_activities,
    Event: visible_events,
    Task: visible_tasks,
    Incident: visible_incidents,
    Intervention: visible_interventions,
}


def get_or_404_for(user: User, model, record_id: int, *options):
    """The record if `user` may see it, else 404; `options`: eager loads to come with it."""
    query = SCOPES[model](user).where(model.id == record_id).options(*options)
    # unique(): a collection joined in repeats the record's row.
    record = db.session.scalars(query).unique().one_or_none()
    if record is None:
        abort(404)
    return record


def is_visible(user: User, record) -> bool:
    model = type(record)
    if model not in SCOPES:
        return True
    query = SCOPES[model](user).where(model.id == record.id).with_only_columns(model.id)
    return db.session.scalar(query) is not None
