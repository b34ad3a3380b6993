"""Segment and campaign pages: who may open them, the builder's live count, 422 with the
errors beside the fields and nothing saved, sending from the page, the public unsubscribe
page and RFC 8058 one-click, a deal's attribution, and bounded queries."""

from decimal import Decimal

import pytest
from sqlalchemy import func, select

from crm.extensions import db
from crm.models import Campaign, CampaignRecipient, Contact, EmailTemplate, Segment
from crm.models.types import utcnow
from crm.services import campaigns
from tests.conftest import htmx_headers
from tests.factories import make_contact, make_deal, make_pipeline, make_user


def _segment(owner, **fields) -> Segment:
    fields.setdefault("name", "Leads")
    fields.setdefault("filters", [{"field": "stage", "op": "in", "value": ["lead"]}])
    segment = Segment(owner_id=owner.id, **fields)
    db.session.add(segment)
    db.session.flush()
    return segment


def _template(name="Spring", body="Hello {{contact.first_name}}") -> EmailTemplate:
    template = EmailTemplate(name=name, subject="Spring offer", body=body, usage="sales")
    db.session.add(template)
    db.session.flush()
    return template


def _count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


@pytest.mark.parametrize(
    ("role", "segments_status", "campaigns_status"),
    [
        ("admin", 200, 200),
        ("manager", 200, 200),
        ("sales", 200, 403),
        ("support", 403, 403),
        ("technician", 403, 403),
    ],
)
def test_who_opens_what(as_role, role, segments_status, campaigns_status):
    client, _user = as_role(role)
    assert client.get("/segments").status_code == segments_status
    assert client.get("/segments/new").status_code == segments_status
    assert client.get("/campaigns").status_code == campaigns_status
    assert client.get("/campaigns/new").status_code == campaigns_status


def test_the_builder_counts_live_and_previews(as_role):
    client, _user = as_role("sales")
    for n in range(3):
        make_contact(f"Lead{n}", stage="lead", score=10 * n)
    make_contact("Cust", stage="customer")
    db.session.commit()

    page = client.get("/segments/new?add=stage")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'id="segment-count">3<' in html and 'hx-trigger="change"' in html

    response = client.post(
        "/segments/builder",
        data={
            "c0_field": "stage",
            "c0_was": "stage",
            "c0_op": "in",
            "c0_value": "lead",
            "c1_field": "score",
            "c1_was": "score",
            "c1_op": "gte",
            "c1_value": "10",
            "add": "city",
        },
        headers=htmx_headers("div#segment-builder"),
    )
    assert response.status_code == 200
    fragment = response.get_data(as_text=True)
    assert "<html" not in fragment and 'id="segment-count">2<' in fragment
    assert "Lead1" in fragment and "Lead2" in fragment and "Lead0" not in fragment
    assert 'name="c2_field"' in fragment  # the added condition, still empty
    assert "1 condition is incomplete and not counted" in fragment
    assert _count(Segment) == 0  # nothing saved while building


def test_saving_a_segment_and_its_422(as_role):
    client, user = as_role("manager")
    response = client.post(
        "/segments",
        data={"name": "", "c0_field": "score", "c0_was": "score", "c0_op": "gte", "c0_value": "x"},
        headers=htmx_headers("form#segment-form"),
    )
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "Name the segment." in html and "Enter a whole number." in html
    assert 'value="x"' in html  # the input is kept
    assert _count(Segment) == 0

    response = client.post(
        "/segments",
        data={
            "name": "Hot leads",
            "shared": "y",
            "c0_field": "score",
            "c0_was": "score",
            "c0_op": "gte",
            "c0_value": "40",
        },
        headers=htmx_headers("form#segment-form"),
    )
    assert response.status_code == 200 and "HX-Location" in response.headers
    segment = db.session.scalars(select(Segment)).one()
    assert (segment.name, segment.owner_id, segment.shared) == ("Hot leads", user.id, True)
    assert segment.filters == [{"field": "score", "op": "gte", "value": 40}]
    assert "Hot leads" in client.get("/segments").get_data(as_text=True)
    assert client.get(f"/segments/{segment.id}").status_code == 200


def test_a_private_segment_is_its_owner_s(as_role):
    client, _user = as_role("sales")
    other = make_user(role="sales")
    private = _segment(other, name="Mine only", shared=False)
    shared = _segment(other, name="Ours")
    db.session.commit()
    assert client.get(f"/segments/{private.id}").status_code == 404
    assert client.get(f"/segments/{shared.id}").status_code == 200
    # Another rep's shared segment is read, not changed.
    assert client.post(f"/segments/{shared.id}/delete").status_code == 403


def test_creating_a_campaign_and_its_422(as_role):
    client, user = as_role("manager")
    segment = _segment(user)
    template = _template()
    db.session.commit()

    response = client.post(
        "/campaigns",
        data={
            "name": "",
            "segment": "",
            "rate_per_minute": "0",
            "cost": "12,3,4",
            "currency": "euro",
            "subject": "Hi {{contact.nickname}}",
        },
        headers=htmx_headers("form#campaign-form"),
    )
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    for message in ("Name the campaign.", "Choose a segment.", "Between 1 and 1000."):
        assert message in html
    assert "Three letters, such as EUR." in html
    assert _count(Campaign) == 0

    response = client.post(
        "/campaigns",
        data={
            "name": "Spring",
            "segment": str(segment.id),
            "template": str(template.id),
            "rate_per_minute": "20",
            "track_opens": "y",
            "replies_to": "campaign_owner",
            "cost": "1500.00",
            "currency": "eur",
        },
        headers=htmx_headers("form#campaign-form"),
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    campaign = db.session.scalars(select(Campaign)).one()
    assert (campaign.status, campaign.subject, campaign.body) == (
        "draft",
        "Spring offer",
        "Hello {{contact.first_name}}",
    )
    assert (campaign.cost, campaign.currency, campaign.rate_per_minute) == (
        Decimal("1500.00"),
        "EUR",
        20,
    )
    assert response.headers["HX-Location"].find(f"/campaigns/{campaign.id}") > 0


def test_the_draft_previews_a_real_contact_and_says_who_is_skipped(as_role):
    client, user = as_role("admin")
    make_contact("Marie", "Curie", stage="lead", email="marie@radium.test")
    make_contact("", "Nameless", stage="lead", email="x@radium.test")
    make_contact("Nomail", stage="lead", email=None)
    campaign = campaigns.save(
        user,
        None,
        name="Spring",
        segment=_segment(user),
        template=_template(),
        mailbox=None,
        rate_per_minute=10,
        track_opens=True,
        replies_to="contact_owner",
        cost=None,
        currency="EUR",
    )
    db.session.commit()

    html = client.get(f"/campaigns/{campaign.id}").get_data(as_text=True)
    assert "Hello Marie" in html
    assert 'id="plan-to-send">1<' in html
    assert "No email address: 1" in html
    assert "A placeholder without a value: 1" in html
    assert "Send to 1 person" in html

    other = db.session.scalars(select(Contact).where(Contact.last_name == "Nameless")).one()
    fragment = client.get(
        f"/campaigns/{campaign.id}?contact_id={other.id}",
        headers=htmx_headers("div#campaign-preview"),
    ).get_data(as_text=True)
    assert "<html" not in fragment and "Hello {{contact.first_name}}" in fragment
    assert "No value for {{contact.first_name}}" in fragment


def test_sending_from_the_page_and_the_controls(as_role):
    client, user = as_role("manager")
    for n in range(3):
        make_contact(f"P{n}", stage="lead")
    campaign = campaigns.save(
        user,
        None,
        name="Spring",
        segment=_segment(user),
        template=_template(),
        mailbox=None,
        rate_per_minute=1,
        track_opens=False,
        replies_to="contact_owner",
        cost=None,
        currency="EUR",
    )
    db.session.commit()
    response = client.post(
        f"/campaigns/{campaign.id}/send", headers=htmx_headers("div#campaign-page")
    )
    assert response.status_code == 200 and "HX-Location" in response.headers
    db.session.expire_all()
    assert db.session.get(Campaign, campaign.id).status == "sending"
    assert _count(CampaignRecipient, CampaignRecipient.status == "pending") == 3

    # Sent already: a second "Send" is refused, nothing written twice.
    again = client.post(f"/campaigns/{campaign.id}/send", headers=htmx_headers("div#campaign-page"))
    assert again.status_code == 409 and _count(CampaignRecipient) == 3
    page = client.get(f"/campaigns/{campaign.id}").get_data(as_text=True)
    assert 'id="figure-waiting">3<' in page and 'hx-trigger="every 5s"' in page

    paused = client.post(
        f"/campaigns/{campaign.id}/pause", headers=htmx_headers("div#campaign-page")
    )
    assert paused.status_code == 200 and "Resume" in paused.get_data(as_text=True)
    cancelled = client.post(
        f"/campaigns/{campaign.id}/cancel", headers=htmx_headers("div#campaign-page")
    )
    assert cancelled.status_code == 200
    db.session.expire_all()
    assert db.session.get(Campaign, campaign.id).status == "cancelled"
    assert _count(CampaignRecipient, CampaignRecipient.skip_reason == "cancelled") == 3


def _sent_recipient(owner) -> CampaignRecipient:
    contact = make_contact("Ann", email="ann@customer.test")
    campaign = Campaign(name="Spring", status="sent", started_at=utcnow(), owner_id=owner.id)
    db.session.add(campaign)
    db.session.flush()
    recipient = CampaignRecipient(
        campaign_id=campaign.id,
        contact_id=contact.id,
        email=contact.email,
        status="sent",
        unsubscribe_token="tok-" + "a" * 30,
    )
    db.session.add(recipient)
    db.session.commit()
    return recipient


def test_the_public_unsubscribe_page_confirms_then_unsubscribes(app, ctx):
    recipient = _sent_recipient(make_user(role="manager"))
    client = app.test_client()  # nobody signed in
    page = client.get(f"/u/{recipient.unsubscribe_token}")
    assert page.status_code == 200
    assert "Stop receiving our marketing email at ann@customer.test?" in page.get_data(as_text=True)
    assert (
        db.session.get(Contact, recipient.contact_id).unsubscribed_at is None
    )  # GET changes nothing

    done = client.post(f"/u/{recipient.unsubscribe_token}")
    assert done.status_code == 200 and "You are unsubscribed" in done.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Contact, recipient.contact_id).unsubscribed_at is not None
    assert client.get("/u/not-a-token").status_code == 404
    assert client.post("/u/not-a-token").status_code == 404


def test_one_click_unsubscribe_needs_no_session_and_no_csrf_token(csrf_app, ctx):
    recipient = _sent_recipient(make_user(role="manager"))
    response = csrf_app.test_client().post(
        f"/u/{recipient.unsubscribe_token}", data={"List-Unsubscribe": "One-Click"}
    )
    assert response.status_code == 204
    db.session.expire_all()
    assert db.session.get(Contact, recipient.contact_id).unsubscribed_at is not None
    figures = campaigns.results_for(recipient.campaign.owner, [recipient.campaign])
    assert figures[recipient.campaign_id].unsubscribed == 1


def test_a_deal_is_attributed_on_its_page(as_role):
    client, user = as_role("sales")
    campaign = Campaign(name="Fair", status="sent", started_at=utcnow())
    db.session.add(campaign)
    deal = make_deal(make_pipeline(), owner=user)
    db.session.commit()
    page = client.get(f"/deals/{deal.id}").get_data(as_text=True)
    assert 'id="deal-campaign"' in page and "Fair" in page

    response = client.post(
        f"/campaigns/deals/{deal.id}/attribution",
        data={"campaign": str(campaign.id), "version": str(deal.version_id)},
        headers=htmx_headers("div#deal-page"),
    )
    assert response.status_code == 200
    db.session.expire_all()
    assert db.session.get(type(deal), deal.id).campaign_id == campaign.id
    assert "<html" not in response.get_data(as_text=True)
    stale = client.post(
        f"/campaigns/deals/{deal.id}/attribution",
        data={"campaign": "", "version": str(deal.version_id - 1 or 99)},
        headers=htmx_headers("div#deal-page"),
    )
    assert stale.status_code == 409
    bad = client.post(f"/campaigns/deals/{deal.id}/attribution", data={"campaign": "999999"})
    assert bad.status_code == 400
    other = make_deal(make_pipeline(), owner=make_user(role="sales"))
    db.session.commit()
    assert client.post(f"/campaigns/deals/{other.id}/attribution", data={}).status_code == 404


def test_the_list_filters_by_period_and_sorts(as_role):
    client, user = as_role("manager")
    pipeline = make_pipeline()
    won = next(s for s in pipeline.stages if s.kind == "won")
    cheap = Campaign(name="Cheap", status="sent", started_at=utcnow(), cost=Decimal("100"))
    dear = Campaign(name="Dear", status="sent", started_at=utcnow(), cost=Decimal("900"))
    db.session.add_all([cheap, dear])
    db.session.flush()
    for campaign, amount in ((cheap, "1000"), (dear, "3000")):
        customer = make_contact("C", stage="customer", campaign_id=campaign.id)
        make_deal(
            pipeline,
            stage=won,
            owner=user,
            contact=customer,
            campaign_id=campaign.id,
            amount=amount,
            closed_at=utcnow(),
        )
    db.session.commit()

    html = client.get("/campaigns?period=this_quarter&sort=roi&dir=desc").get_data(as_text=True)
    assert html.index("Cheap") < html.index("Dear")  # 900 % before 233.3 %
    fragment = client.get(
        "/campaigns?period=last_quarter", headers=htmx_headers("div#campaign-list")
    ).get_data(as_text=True)
    assert "<html" not in fragment and "No campaign acquired a customer in this period." in fragment
    bad = client.get("/campaigns?period=custom&from=2026-13-01&to=2026-01-01")
    assert bad.status_code == 422 and "Enter a date such as" in bad.get_data(as_text=True)


def _queries(response) -> int:
    return int(response.headers["X-SQL-Queries"])


def test_pages_run_a_bounded_number_of_queries(as_role):
    client, user = as_role("admin")
    segment = _segment(user)
    template = _template()

    def grow(n):
        for i in range(n):
            contact = make_contact(f"L{i}", stage="lead", owner=user)
            campaign = Campaign(
                name=f"C{i}-{n}", status="sent", started_at=utcnow(), segment=segment
            )
            db.session.add(campaign)
            db.session.flush()
            db.session.add(
                CampaignRecipient(
                    campaign_id=campaign.id,
                    contact_id=contact.id,
                    email=contact.email,
                    status="sent",
                    unsubscribe_token=f"t-{n}-{i}",
                )
            )
        db.session.commit()

    def measure():
        latest = db.session.scalars(select(Campaign).order_by(Campaign.id.desc())).first()
        return [
            _queries(client.get("/campaigns")),
            _queries(client.get(f"/campaigns/{latest.id}")),
            _queries(client.get(f"/segments/{segment.id}")),
            _queries(client.get("/segments")),
        ]

    grow(2)
    small = measure()
    grow(20)
    assert measure() == small
    assert max(small) <= 15, small
    assert template


def test_the_manager_dashboard_names_the_campaigns_of_the_period(as_role):
    client, user = as_role("manager")
    pipeline = make_pipeline()
    won = next(s for s in pipeline.stages if s.kind == "won")
    fair = Campaign(name="Trade fair", status="sent", started_at=utcnow(), cost=Decimal("500"))
    db.session.add(fair)
    db.session.flush()
    customer = make_contact("C", stage="customer", campaign_id=fair.id)
    make_deal(
        pipeline,
        stage=won,
        owner=user,
        contact=customer,
        campaign_id=fair.id,
        amount="2000",
        closed_at=utcnow(),
    )
    db.session.commit()
    html = client.get("/dashboard?tab=team&period=this_month").get_data(as_text=True)
    section = html[html.index('id="campaign-results"') :]
    assert "Trade fair" in section and "300" in section  # (2000 - 500) / 500 = 300 %
    assert "/campaigns?period=this_month" in section


def test_a_post_to_an_unknown_unsubscribe_token_is_csrf_checked(csrf_app, ctx):
    assert csrf_app.test_client().post("/u/not-a-token").status_code == 400
