"""Every route declares who may use it, and every role gets exactly that.

A new route without @requires or @public fails the first test; the matrix walks
every route with every role and checks allowed versus forbidden.
"""

import pytest

from crm.extensions import db
from crm.models import DealLine
from crm.models.users import ROLES
from crm.permissions import POLICY, PUBLIC
from crm.services import calendar_feed
from tests.factories import (
    make_company,
    make_contact,
    make_deal,
    make_event,
    make_incident,
    make_intervention,
    make_product,
    make_task,
    make_team,
    make_user,
    start_session,
)

SKIP_ENDPOINTS = {"static"}


# Walked last: they end the session the walk runs in.
SESSION_ENDING = {"auth.logout", "auth.logout_everywhere"}


def _rules(app):
    rules = [rule for rule in app.url_map.iter_rules() if rule.endpoint not in SKIP_ENDPOINTS]
    return sorted(rules, key=lambda rule: (rule.endpoint in SESSION_ENDING, rule.rule))


def test_every_route_declares_a_permission(app):
    missing = [
        rule.rule
        for rule in _rules(app)
        if getattr(app.view_functions[rule.endpoint], "permission", None) is None
    ]
    assert missing == [], f"routes without @requires or @public: {missing}"


def test_declared_permissions_exist(app):
    for rule in _rules(app):
        permission = app.view_functions[rule.endpoint].permission
        assert permission == PUBLIC or permission in POLICY, rule.rule


def test_every_route_parameter_is_walked_with_a_real_record(app):
    """A route added later with a new parameter must get a record in the walks: walked
    with an id nobody has, it would only ever answer 404 and prove nothing."""
    from collections import defaultdict

    ids = defaultdict(lambda: 1)
    unknown = {
        f"{rule.rule}: {arg}"
        for rule in _rules(app)
        for arg in rule.arguments
        if arg not in _values(rule, ids) and arg not in WITHOUT_RECORD
    }
    assert unknown == set()


def _notification(user):
    from crm.models.agenda import Notification

    notification = Notification(user=user, title="Reminder", url="/tasks")
    db.session.add(notification)
    db.session.flush()
    return notification


def _email_template():
    from crm.models import EmailTemplate

    template = EmailTemplate(name="Thanks", body="Hello {{contact.first_name}}", usage="support")
    db.session.add(template)
    db.session.flush()
    return template


def _holiday():
    from datetime import date

    from crm.services import support_settings

    calendar = support_settings.ensure_calendar(today=date(2030, 1, 1))
    return calendar.holidays[0]


def _mail_records(user) -> dict:
    """A shared mailbox with a quarantined message, and a public message with an attachment."""
    from crm.models import EmailAttachment, EmailMessage, Mailbox, QuarantinedEmail

    mailbox = Mailbox(name="Support", address="support@walk.example", purpose="support")
    message = EmailMessage(
        direction="in",
        message_id="<walk@example.com>",
        message_id_key="walk@example.com",
        subject="Hello",
        from_address="someone@example.com",
        mailbox=mailbox,
        owner=user,
    )
    attachment = EmailAttachment(message=message, filename="a.txt", size=1, content=b"a")
    quarantined = QuarantinedEmail(
        mailbox=mailbox, imap_uid=1, imap_uidvalidity=1, raw=b"x", error="unreadable"
    )
    db.session.add_all([mailbox, message, attachment, quarantined])
    db.session.flush()
    return {
        "mailbox": mailbox.id,
        "message": message.id,
        "attachment": attachment.id,
        "quarantine": quarantined.id,
    }


def _lead_records() -> dict:
    """A custom field, a scoring rule, a routing rule and a web form."""
    from crm.models import CustomFieldDefinition, LeadForm, RoutingRule, ScoringRule

    field = CustomFieldDefinition(entity="contact", key="size", label="Size", field_type="text")
    scoring = ScoringRule(name="Big", condition={"type": "inactive", "days": 30}, points=-5)
    routing = RoutingRule(name="France", conditions={"countries": ["FR"]}, team=make_team())
    form = LeadForm(name="Site", token="walk-form-token")
    db.session.add_all([field, scoring, routing, form])
    db.session.flush()
    return {"field": field.id, "field_key": field.key, "rule": scoring.id, "form": form.id}


def _data_import(user) -> int:
    from crm.models import DataImport

    data_import = DataImport(
        entity="contacts", filename="c.csv", content=b"Email\n", created_by=user
    )
    db.session.add(data_import)
    db.session.flush()
    return data_import.id


def _campaign_records(user) -> dict:
    """A shared segment of `user`, a draft campaign to it, and a second contact and company
    that the merge screens may merge into the first ones (a walked merge removes only them)."""
    from crm.models import Campaign, EmailTemplate, Segment

    segment = Segment(
        name="Walk leads",
        owner_id=user.id,
        filters=[{"field": "stage", "op": "in", "value": ["lead"]}],
    )
    template = EmailTemplate(name="Walk offer", subject="Offer", body="Hello", usage="sales")
    campaign = Campaign(
        name="Walk campaign",
        segment=segment,
        template=template,
        owner_id=user.id,
        subject="Offer",
        body="Hello {{contact.first_name}}",
    )
    db.session.add_all([segment, template, campaign])
    db.session.flush()
    return {
        "segment": segment.id,
        "campaign": campaign.id,
        "other_contact": make_contact().id,
        "other_company": make_company().id,
    }


def _next_monday_nine():
    from datetime import UTC, datetime, timedelta

    today = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0)
    return today + timedelta(days=7 - today.weekday())


# Route parameters walked with a made-up value on purpose: a background job's id (an
# unknown one is the case to handle: the job expired).
WITHOUT_RECORD = {"job_id"}


def _values(rule, ids) -> dict:
    """A value for each route parameter: the id of a record made for the walk."""
    return {
        "contact_id": ids["contact"],
        "company_id": ids["company"],
        "user_id": ids["user"],
        "deal_id": ids["deal"],
        "line_id": ids["line"],
        "product_id": ids["product"],
        "pipeline_id": ids["pipeline"],
        "stage_id": ids["stage"],  # holds the deal: deleting it is refused, never done
        "session_id": ids["session"],  # another user's session: must be a 404, never revoked
        "name": "phone",
        "token": "not-a-token",
        "feed_id": ids["feed"],  # the user's own calendar feed
        "team_id": ids["team"],
        "key": ids["event"],  # an event the user organizes (deleted on the way: then 404)
        "task_id": ids["task"],  # the user's own task (deleted on the way: then 404)
        "notification_id": ids["notification"],  # the user's own notification
        "incident_id": ids["incident"],  # of a customer the user owns (sales read it)
        "template_id": ids["template"],  # a canned response (deleted on the way: then 404)
        "what": "task",  # a complaint follow-up (refused: the incident is no complaint)
        "intervention_id": ids["intervention"],  # booked on the user (technicians see it)
        "holiday_id": ids["holiday"],  # a support holiday (removed on the way: then 404)
        "mailbox_id": ids["mailbox"],  # a shared mailbox (no server: checks and syncs fail cleanly)
        "message_id": ids["message"],  # a public message of a shared mailbox
        "attachment_id": ids["attachment"],
        "quarantine_id": ids["quarantine"],
        "field_id": ids["field"],
        "field_key": ids["field_key"],
        "rule_id": ids["rule"],  # a scoring rule (a routing rule of that id may not exist: 404)
        "form_id": ids["form"],
        "import_id": ids["import"],
        "entity": "contacts",
        "format": "csv",
        "segment_id": ids["segment"],
        "campaign_id": ids["campaign"],  # a draft (sent, paused or cancelled on the way)
        # A second record of the route's kind: a walked merge removes it, never the first.
        "other_id": ids["other_company" if "/companies/" in rule.rule else "other_contact"],
    }


def _url(rule, ids) -> str:
    values = _values(rule, ids)
    path = rule.rule
    for arg in rule.arguments:
        # A parameter without a record here gets an id nobody has: allowed roles get a 404.
        value = str(values.get(arg, 999999))
        path = path.replace(f"<int:{arg}>", value).replace(f"<{arg}>", value)
    return path


@pytest.mark.parametrize("role", ROLES)
def test_route_role_matrix(app, as_role, role):
    client, user = as_role(role)
    deal = make_deal(owner=user)  # in every allowed role's scope: its own deal
    line = DealLine(deal=deal, description="Line", quantity=1, unit_price=10)
    db.session.add(line)
    db.session.flush()
    other = make_user(role="sales")
    start_session(other)
    ids = {
        "contact": make_contact().id,
        "company": make_company().id,
        "user": other.id,
        "session": other.current_session.id,
        "deal": deal.id,
        "line": line.id,
        "product": make_product().id,
        "pipeline": deal.pipeline_id,
        "stage": deal.stage_id,
        "feed": calendar_feed.create_user_feed(user).id,
        "team": make_team().id,
        "event": make_event(user).id,
        "task": make_task(user).id,
        "notification": _notification(user).id,
        "incident": make_incident(make_contact(owner=user)).id,
        "template": _email_template().id,
        "intervention": make_intervention(technicians=[user], start=_next_monday_nine()).id,
        "holiday": _holiday().id,
        **_mail_records(user),
        **_lead_records(),
        "import": _data_import(user),
        **_campaign_records(user),
    }
    db.session.commit()
    checked = 0
    for rule in _rules(app):
        permission = app.view_functions[rule.endpoint].permission
        if permission == PUBLIC:
            continue
        allowed = role in POLICY[permission]
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = client.open(_url(rule, ids), method=method, data={})
            checked += 1
            if allowed:
                assert response.status_code != 403, f"{role} refused {method} {rule.rule}"
                assert response.status_code < 500, (
                    f"{role} {method} {rule.rule}: {response.status_code}"
                )
            else:
                assert response.status_code == 403, (
                    f"{role} got {response.status_code} on {method} {rule.rule}, expected 403"
                )
    assert checked > 20


@pytest.mark.parametrize("path", ["/", "/contacts", "/contacts/1", "/admin/users", "/settings"])
def test_anonymous_is_sent_to_login(client, path):
    response = client.get(path)
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/login?next=")


def test_anonymous_htmx_request_gets_a_full_reload_to_login(client):
    response = client.get("/contacts", headers={"HX-Request": "true", "HX-Request-Type": "partial"})
    assert response.headers["HX-Redirect"].startswith("/login?next=")


def test_an_expired_htmx_fragment_request_returns_to_the_page_after_login(client):
    response = client.get(
        "/contacts/1/fields/phone/edit",
        headers={
            "HX-Request": "true",
            "HX-Request-Type": "partial",
            "HX-Current-URL": "http://localhost/contacts/1?tab=x",
        },
    )
    assert response.headers["HX-Redirect"] == "/login?next=/contacts/1?tab%3Dx"
