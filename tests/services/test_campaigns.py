"""Campaign sends through the real outbox to a real SMTP server (aiosmtpd), the suite's
real Redis and, for replies, a real IMAP server (Dovecot):

- the pace: a run sends rate_per_minute mails, the others wait for the next minute;
- who is skipped and why, before sending and at claim time;
- an unsubscribe honoured by every later send, the List-Unsubscribe header and link;
- a chain of runs lost with Redis is restarted by the sweeper, and nobody is mailed twice;
- opens and replies tracked, a reply becomes a task for the right person;
- the results page's figures equal counts made by hand.
"""

from datetime import timedelta
from decimal import Decimal

import pytest
from rq import Queue
from rq.job import Job
from rq.registry import ScheduledJobRegistry
from sqlalchemy import func, select, update

from crm.extensions import db
from crm.jobs import campaigns as campaign_jobs
from crm.models import (
    Campaign,
    CampaignRecipient,
    Contact,
    Deal,
    EmailMessage,
    EmailTemplate,
    Mailbox,
    Notification,
    Segment,
    Task,
)
from crm.models.types import utcnow
from crm.queues import redis_connection
from crm.services import campaigns, outbox
from tests import mail_servers
from tests.factories import make_company, make_contact, make_deal, make_pipeline, make_user
from tests.smtp_server import Recorder, smtp_server

dovecot, imap_user = mail_servers.dovecot, mail_servers.imap_user

TEXT = "Hello {{contact.first_name}},\n\nOur spring offer for {{company.name}}."


@pytest.fixture
def manager(ctx):
    return make_user(role="manager", name="Maud Manager", email="maud@example.com")


@pytest.fixture
def smtp():
    recorder = Recorder()
    with smtp_server(recorder) as port:
        yield recorder, port


def _mailbox(port: int, **fields) -> Mailbox:
    fields.setdefault("name", "Marketing")
    fields.setdefault("address", "news@crm.example")
    mailbox = Mailbox(
        smtp_host="127.0.0.1", smtp_port=port, smtp_security="none", purpose="sales", **fields
    )
    db.session.add(mailbox)
    db.session.flush()
    return mailbox


def _campaign(owner, mailbox, *, rate=30, body=TEXT, filters=None, **fields) -> Campaign:
    segment = Segment(name="Everyone", filters=filters or [], owner_id=owner.id)
    name = fields.pop("name", "Spring")
    template = EmailTemplate(name=name, subject="Spring offer", body=body, usage="sales")
    db.session.add_all([segment, template])
    campaign = campaigns.save(
        owner,
        None,
        name=name,
        segment=segment,
        template=template,
        mailbox=mailbox,
        rate_per_minute=rate,
        track_opens=fields.pop("track_opens", True),
        replies_to=fields.pop("replies_to", "contact_owner"),
        cost=fields.pop("cost", Decimal("0")),
        currency="EUR",
    )
    db.session.flush()
    return campaign


def _people(count: int, company=None, **fields) -> list[Contact]:
    company = company or make_company("Radium SA")
    return [
        make_contact(f"Person{n}", email=f"p{n}@customer.test", company=company, **fields)
        for n in range(count)
    ]


def _part(message, subtype: str) -> str:
    for part in message.walk():
        if part.get_content_type() == f"text/{subtype}":
            return part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8")
    return ""


def _deliver_all() -> list[str]:
    ids = db.session.scalars(
        select(EmailMessage.id).where(
            EmailMessage.status == "queued", EmailMessage.direction == "out"
        )
    ).all()
    return [outbox.deliver(i) for i in ids]


def _age_sends(campaign_id: int, seconds: int = 61) -> None:
    """The minute of the last run is over (instead of waiting for it)."""
    db.session.execute(
        update(EmailMessage)
        .where(EmailMessage.campaign_id == campaign_id)
        .values(created_at=utcnow() - timedelta(seconds=seconds))
    )
    db.session.commit()


def _statuses(campaign_id: int) -> dict:
    rows = db.session.execute(
        select(CampaignRecipient.status, func.count())
        .where(CampaignRecipient.campaign_id == campaign_id)
        .group_by(CampaignRecipient.status)
    )
    return dict(rows.all())


def test_a_run_sends_the_rate_and_the_others_wait(manager, smtp, data_app):
    recorder, port = smtp
    _people(5)
    campaign = _campaign(manager, _mailbox(port), rate=2)
    with data_app.test_request_context():
        assert campaigns.start(campaign, manager) == 5
    db.session.commit()
    assert _statuses(campaign.id) == {"pending": 5}

    first = campaigns.send_batch(campaign.id)
    assert (first.queued, first.pending, first.status) == (2, 3, "sending")
    assert _deliver_all() == ["sent", "sent"]
    assert len(recorder.messages) == 2
    # Within the same minute, a second run (a sweeper's, a duplicate) sends nothing more.
    assert campaigns.send_batch(campaign.id).queued == 0

    _age_sends(campaign.id)
    assert campaigns.send_batch(campaign.id).queued == 2
    _age_sends(campaign.id)
    last = campaigns.send_batch(campaign.id)
    assert (last.queued, last.pending, last.status) == (1, 0, "sent")
    _deliver_all()
    campaigns.sync_recipients(campaign.id)
    db.session.commit()
    assert _statuses(campaign.id) == {"sent": 5}
    assert sorted(m["To"] for m in recorder.messages) == [f"p{n}@customer.test" for n in range(5)]
    first_mail = recorder.messages[0]
    assert first_mail["Subject"] == "Spring offer"
    text = _part(first_mail, "plain")
    assert "Hello Person" in text and "Our spring offer for Radium SA." in text
    token = db.session.scalars(
        select(CampaignRecipient.unsubscribe_token).where(
            CampaignRecipient.email == first_mail["To"]
        )
    ).one()
    assert f"/u/{token}" in text
    assert first_mail["List-Unsubscribe"] == f"<http://127.0.0.1:5000/u/{token}>"
    assert first_mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert db.session.get(Campaign, campaign.id).finished_at is not None


def test_the_job_schedules_its_next_run_a_minute_later(manager, smtp, data_app, app):
    from worker import InProcessWorker, worker_connection

    _recorder, port = smtp
    _people(3)
    campaign = _campaign(manager, _mailbox(port), rate=2)
    with data_app.test_request_context():
        campaigns.start(campaign, manager)
    db.session.commit()

    job = campaign_jobs.ensure_chain(campaign.id)
    assert job is not None and campaign_jobs.ensure_chain(campaign.id) is None  # one chain
    connection = worker_connection(app)
    InProcessWorker([Queue("mail", connection=connection)], connection=connection, app=app).work(
        burst=True
    )
    assert (
        Job.fetch(job.id, connection=connection)
        .return_value()
        .startswith("sending: 2 queued, 0 skipped, 1 left")
    )
    registry = ScheduledJobRegistry("mail", connection=redis_connection())
    scheduled = registry.get_job_ids()
    assert len(scheduled) == 1 and scheduled[0].startswith(f"campaign-{campaign.id}-")
    at = registry.get_scheduled_time(scheduled[0])
    wait = at.replace(tzinfo=utcnow().tzinfo) - utcnow()
    assert timedelta(seconds=50) < wait <= timedelta(seconds=61)
    # The chain is that scheduled run: the sweeper leaves it alone.
    assert campaign_jobs.sweep_campaigns() == 0


def test_who_is_skipped_and_why(manager, smtp, data_app):
    _recorder, port = smtp
    company = make_company("Radium SA")
    make_contact("Ann", email="ann@customer.test", company=company)
    make_contact("Bob", email=None, company=company)
    make_contact("Cid", email="cid@customer.test", company=company, unsubscribed_at=utcnow())
    make_contact("Dan", email="dan@customer.test", company=company, consent_status="refused")
    make_contact("Eve", email="ANN@customer.test", company=company)  # Ann's address again
    make_contact("", "Nameless", email="fay@customer.test", company=company)  # no first name
    campaign = _campaign(manager, _mailbox(port))

    with data_app.test_request_context():
        plan = campaigns.plan(campaign, manager)
        assert plan.to_send == 1
        assert plan.skipped == {
            "no_email": 1,
            "unsubscribed": 1,
            "consent_refused": 1,
            "duplicate_email": 1,
            "missing_value": 1,
        }
        assert plan.example_missing.last_name == "Nameless"
        assert plan.missing == ("{{contact.first_name}}",)
        assert campaigns.start(campaign, manager) == 1
    db.session.commit()
    reasons = dict(
        db.session.execute(
            select(CampaignRecipient.email, CampaignRecipient.skip_reason).where(
                CampaignRecipient.campaign_id == campaign.id
            )
        ).all()
    )
    assert reasons["ann@customer.test"] is None
    assert reasons["fay@customer.test"] == "missing_value"


def test_an_unsubscribe_is_honoured_by_every_later_send(manager, smtp, data_app):
    recorder, port = smtp
    ann, bob = _people(2)
    mailbox = _mailbox(port)
    first = _campaign(manager, mailbox, rate=1, name="First")
    with data_app.test_request_context():
        campaigns.start(first, manager)
    db.session.commit()
    campaigns.send_batch(first.id)
    _deliver_all()
    mailed = db.session.scalars(
        select(CampaignRecipient).where(
            CampaignRecipient.campaign_id == first.id, CampaignRecipient.status == "queued"
        )
    ).one()
    waiting = db.session.scalars(
        select(CampaignRecipient).where(
            CampaignRecipient.campaign_id == first.id, CampaignRecipient.status == "pending"
        )
    ).one()
    # The one still waiting unsubscribes through a link of an earlier mailing: their row of
    # this campaign is skipped when its turn comes.
    earlier = CampaignRecipient(
        campaign_id=first.id, contact_id=None, email="x", status="skipped", unsubscribe_token="t"
    )
    db.session.add(earlier)
    db.session.flush()
    with data_app.test_request_context():
        assert campaigns.unsubscribe(waiting) is True
        assert campaigns.unsubscribe(waiting) is False  # done already
    db.session.commit()
    _age_sends(first.id)
    result = campaigns.send_batch(first.id)
    assert (result.queued, result.skipped, result.status) == (0, 1, "sent")
    db.session.refresh(waiting)
    assert (waiting.status, waiting.skip_reason) == ("skipped", "unsubscribed")
    assert [m["To"] for m in recorder.messages] == [mailed.email]

    second = _campaign(manager, mailbox, name="Second")
    with data_app.test_request_context():
        plan = campaigns.plan(second, manager)
    assert (plan.to_send, plan.skipped) == (1, {"unsubscribed": 1})
    results = campaigns.results_for(manager, [first, second])
    assert (results[first.id].unsubscribed, results[second.id].unsubscribed) == (1, 0)


def test_a_lost_chain_is_restarted_and_nobody_is_mailed_twice(manager, smtp, data_app, app):
    from worker import InProcessWorker, worker_connection

    recorder, port = smtp
    _people(5)
    campaign = _campaign(manager, _mailbox(port), rate=2)
    with data_app.test_request_context():
        campaigns.start(campaign, manager)
    db.session.commit()
    connection = worker_connection(app)

    def work():
        InProcessWorker(
            [Queue("mail", connection=connection)], connection=connection, app=app
        ).work(burst=True)
        db.session.expire_all()

    campaign_jobs.ensure_chain(campaign.id)
    work()  # the run, then the two sends it queued
    assert len(recorder.messages) == 2
    assert ScheduledJobRegistry("mail", connection=connection).count == 1

    redis_connection().flushdb()  # Redis lost everything: the next run is gone
    _age_sends(campaign.id)
    assert campaign_jobs.sweep_campaigns() == 1
    assert campaign_jobs.sweep_campaigns() == 0  # that new chain is alive: not twice
    work()
    _age_sends(campaign.id)
    redis_connection().flushdb()
    campaign_jobs.sweep_campaigns()
    work()
    assert db.session.get(Campaign, campaign.id).status == "sent"
    addresses = [m["To"] for m in recorder.messages]
    assert sorted(addresses) == [f"p{n}@customer.test" for n in range(5)]  # each exactly once
    campaign_jobs.sweep_campaigns()
    assert _statuses(campaign.id) == {"sent": 5}


def test_a_paused_campaign_sends_nothing_until_resumed(manager, smtp, data_app):
    _recorder, port = smtp
    _people(3)
    campaign = _campaign(manager, _mailbox(port), rate=1)
    with data_app.test_request_context():
        campaigns.start(campaign, manager)
    campaigns.pause(campaign)
    db.session.commit()
    assert campaigns.send_batch(campaign.id).queued == 0
    campaigns.resume(db.session.get(Campaign, campaign.id))
    db.session.commit()
    assert campaigns.send_batch(campaign.id).queued == 1
    assert campaigns.cancel(db.session.get(Campaign, campaign.id)) == 2
    db.session.commit()
    assert _statuses(campaign.id) == {"queued": 1, "skipped": 2}
    with pytest.raises(campaigns.CampaignError):
        campaigns.resume(db.session.get(Campaign, campaign.id))


def test_opens_come_from_the_outbox_tracking(manager, smtp, data_app):
    recorder, port = smtp
    _people(2)
    campaign = _campaign(manager, _mailbox(port))
    with data_app.test_request_context():
        campaigns.start(campaign, manager)
    db.session.commit()
    campaigns.send_batch(campaign.id)
    _deliver_all()
    html = _part(recorder.messages[0], "html")
    token = html.split("/email/t/")[1].split(".gif")[0]
    assert outbox.record_open(token)
    db.session.commit()
    assert campaigns.results_for(manager, [campaign])[campaign.id].opened == 1  # read live
    campaign_jobs.sweep_campaigns()
    opened = db.session.scalars(
        select(CampaignRecipient).where(CampaignRecipient.opened_at.is_not(None))
    ).all()
    assert len(opened) == 1 and opened[0].status == "sent"


@pytest.mark.parametrize("owned", [True, False])
def test_a_reply_is_a_task_for_the_contact_owner_or_the_campaign_owner(
    manager, smtp, dovecot, imap_user, data_app, owned
):
    from crm.services.mail_routing import describe
    from crm.services.mail_sync import sync_mailbox
    from tests.mail_servers import append, build_message, make_mailbox

    recorder, port = smtp
    rep = make_user(role="sales", name="Rita Rep")
    ann = make_contact(
        "Ann",
        "Martin",
        email="ann@customer.test",
        owner=rep if owned else None,
        company=make_company("Radium SA"),
    )
    mailbox = make_mailbox(
        dovecot,
        imap_user,
        purpose="sales",
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_security="none",
    )
    campaign = _campaign(manager, mailbox)
    with data_app.test_request_context():
        campaigns.start(campaign, manager)
    db.session.commit()
    campaigns.send_batch(campaign.id)
    _deliver_all()
    sent = recorder.messages[0]

    append(
        dovecot,
        mailbox.imap_username,
        build_message(
            sender="Ann Martin <ann@customer.test>",
            to=mailbox.address,
            subject="Re: Spring offer",
            body="Interested, call me.",
            in_reply_to=sent["Message-ID"],
            references=sent["Message-ID"],
        ),
    )
    assert sync_mailbox(mailbox.id).new == 1
    db.session.expire_all()
    reply = db.session.scalars(select(EmailMessage).where(EmailMessage.direction == "in")).one()
    assert reply.campaign_id == campaign.id and reply.contact_id == ann.id
    assert reply.routing["rule"] == "campaign_reply"
    recipient = db.session.scalars(select(CampaignRecipient)).one()
    assert recipient.replied_at is not None
    task = db.session.scalars(select(Task)).one()
    who = rep if owned else manager
    assert (task.assignee_id, task.contact_id) == (who.id, ann.id)
    assert "Spring" in task.title and task.notes.startswith("Interested")
    notification = db.session.scalars(select(Notification)).one()
    assert notification.user_id == who.id and notification.url == f"/contacts/{ann.id}"
    with data_app.test_request_context():
        reason = describe(reply.routing)
    assert ("contact's owner" if owned else "campaign's owner") in reason
    assert campaigns.results_for(manager, [campaign])[campaign.id].replied == 1


def test_results_equal_counts_made_by_hand(manager, smtp, data_app):
    recorder, port = smtp
    pipeline = make_pipeline()
    won = next(s for s in pipeline.stages if s.kind == "won")
    _people(4)
    campaign = _campaign(manager, _mailbox(port), cost=Decimal("1000.00"))
    with data_app.test_request_context():
        campaigns.start(campaign, manager)
    db.session.commit()
    campaigns.send_batch(campaign.id)
    _deliver_all()
    db.session.execute(
        update(EmailMessage)
        .where(EmailMessage.id == db.session.scalars(select(EmailMessage.id).limit(1)).one())
        .values(first_opened_at=utcnow())
    )
    first_recipient = db.session.scalars(select(CampaignRecipient).limit(1)).one()
    first_recipient.replied_at = utcnow()
    # Three leads came from it: two still leads, one a customer with a won deal of 5,000.
    leads = [make_contact(f"Lead{n}", campaign_id=campaign.id) for n in range(3)]
    leads[0].stage = "customer"
    make_deal(
        pipeline,
        stage=won,
        owner=manager,
        contact=leads[0],
        campaign_id=campaign.id,
        amount="5000",
        closed_at=utcnow(),
    )
    make_deal(pipeline, owner=manager, contact=leads[1], campaign_id=campaign.id, amount="900")
    # Attributed before the campaign started: not a lead of it.
    old = make_contact("Old", campaign_id=campaign.id)
    old.created_at = campaign.started_at - timedelta(days=3)
    db.session.commit()

    result = campaigns.results_for(manager, [campaign])[campaign.id]
    assert (result.sent, result.failed, result.skipped_total, result.opened, result.replied) == (
        4,
        0,
        0,
        1,
        1,
    )
    assert (result.open_rate, result.reply_rate) == (Decimal("25.0"), Decimal("25.0"))
    assert (result.leads, result.customers, result.deals_won) == (3, 1, 1)
    assert result.revenue == Decimal("5000")
    assert result.cost_per_lead == Decimal("333.33")
    assert result.cost_per_customer == Decimal("1000.00")
    assert result.roi == Decimal("400.0")  # (5000 - 1000) / 1000

    # Customers acquired in a period: the won deal's close date decides.
    last_year = campaigns.Period(utcnow() - timedelta(days=400), utcnow() - timedelta(days=300))
    this_week = campaigns.Period(utcnow() - timedelta(days=7), utcnow() + timedelta(days=1))
    assert campaigns.results_for(manager, [campaign], last_year)[campaign.id].customers == 0
    assert campaigns.results_for(manager, [campaign], this_week)[campaign.id].customers == 1
    assert campaigns.campaign_list(manager, period=last_year) == []
    assert [r.campaign.id for r in campaigns.campaign_list(manager, period=this_week)] == [
        campaign.id
    ]
    # A rep sees the revenue of their own deals only.
    rep = make_user(role="sales")
    assert campaigns.results_for(rep, [campaign])[campaign.id].revenue == Decimal("0")


def test_deals_and_campaign_leads_are_attributed(manager, ctx):
    from crm.services.deals import create_deal
    from crm.services.leads import capture_lead

    campaign = Campaign(name="Fair", status="sent", started_at=utcnow(), owner_id=manager.id)
    db.session.add(campaign)
    db.session.flush()
    lead = capture_lead(source="campaign", first_name="Zoe", email="zoe@fair.test", route=False)
    db.session.flush()
    assert lead.campaign_id == campaign.id
    other = capture_lead(source="web_form", first_name="Yan", email="yan@web.test", route=False)
    db.session.flush()
    assert other.campaign_id is None
    deal = create_deal(manager, title="Fair deal", pipeline=make_pipeline(), contact=lead)
    assert deal.campaign_id == campaign.id


def test_the_demo_has_a_campaign_with_results(ctx):
    from crm.demo_data import seed_demo

    seed_demo(contacts=60, companies=10, deals=20)
    campaign = db.session.scalars(select(Campaign)).one()
    owner = campaign.owner
    result = campaigns.results_for(owner, [campaign])[campaign.id]
    assert result.sent > 0 and result.opened > 0 and result.replied == 1
    assert (result.leads, result.customers, result.deals_won) == (3, 1, 1)
    won = db.session.scalars(select(Deal).where(Deal.campaign_id == campaign.id)).one()
    assert result.revenue == won.amount > 0 and result.cost == Decimal("1200.00")
    assert result.roi == ((won.amount - result.cost) / result.cost * 100).quantize(Decimal("0.1"))
