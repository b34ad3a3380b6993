"""Email routes: composing (422 keeps everything, 413 for big attachments), the preview and
templates, who reads what (privacy), the message page and its sandboxed body, attachments,
retry, the open-tracking pixel and the account setting."""

import io
import json
from datetime import timedelta

import pytest
from rq import Queue
from sqlalchemy import func, select

from crm.extensions import db
from crm.jobs import outbox as outbox_jobs
from crm.models import Activity, EmailAttachment, EmailMessage, EmailTemplate, Mailbox
from crm.models.types import utcnow
from crm.queues import redis_connection
from crm.services import outbox
from tests.conftest import htmx_headers
from tests.factories import make_company, make_contact, make_deal, make_team, make_user


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


@pytest.fixture
def customer(ctx):
    contact = make_contact("Marie", "Curie", email="marie@radium.example", company=make_company())
    db.session.commit()
    return contact


def _compose(client, customer, **fields):
    data = {
        "record": f"contact:{customer.id}",
        "mailbox": "",
        "to": "marie@radium.example",
        "cc": "",
        "subject": "Your quote",
        "body": "Hello {{contact.first_name}}",
        "privacy": "public",
        "track_opens": "y",
    }
    data.update(fields)
    return client.post(
        "/email/compose",
        data=data,
        headers=htmx_headers("div#compose"),
        content_type="multipart/form-data",
    )


def _message(author, customer, **fields) -> EmailMessage:
    fields.setdefault("subject", "Hello")
    fields.setdefault("text", "Hi Marie")
    message = outbox.queue_message(
        author,
        fields.pop("mailbox", None),
        [customer.email],
        [],
        fields.pop("subject"),
        fields.pop("text"),
        contact=customer,
        **fields,
    )
    db.session.commit()
    return message


# ---- composing ----------------------------------------------------------------------------


def test_write_an_email_from_a_contact_opens_the_composer_prefilled(as_role, customer):
    client, me = as_role("sales")
    db.session.add(EmailTemplate(name="Quote follow-up", subject="Quote", body="Hi"))
    db.session.commit()
    page = client.get(f"/contacts/{customer.id}").text
    assert f'href="/email/compose?contact_id={customer.id}"' in page
    compose = client.get(f"/email/compose?contact_id={customer.id}").text
    assert 'value="marie@radium.example"' in compose
    assert '<input checked id="track_opens" name="track_opens" type="checkbox"' in compose
    assert "Quote follow-up" in compose and f'value="contact:{customer.id}"' in compose


def test_a_company_and_a_deal_suggest_their_people(as_role):
    client, me = as_role("sales")
    company = make_company("Radium SA", email="info@radium.example")
    make_contact("Pierre", "Curie", email="pierre@radium.example", company=company)
    deal = make_deal(owner=me, company=company, title="Fleet")
    db.session.commit()
    page = client.get(f"/email/compose?company_id={company.id}").text
    assert 'value="info@radium.example"' in page and "pierre@radium.example" in page
    page = client.get(f"/email/compose?deal_id={deal.id}").text
    assert 'value="info@radium.example"' in page
    other_deal = make_deal(owner=make_user())
    db.session.commit()
    assert client.get(f"/email/compose?deal_id={other_deal.id}").status_code == 404


def test_sending_queues_the_message_and_the_timeline_shows_it(as_role, customer):
    client, me = as_role("sales")
    response = _compose(client, customer)
    assert response.status_code == 200
    assert json.loads(response.headers["HX-Location"])["path"] == f"/contacts/{customer.id}"
    message = db.session.scalars(select(EmailMessage)).one()
    assert (message.status, message.direction, message.author_id) == ("queued", "out", me.id)
    assert message.text_body == "Hello Marie" and message.track_opens
    assert message.privacy == "public" and message.contact_id == customer.id
    jobs = Queue("mail", connection=redis_connection()).job_ids
    assert outbox_jobs.job_id(message.id) in jobs
    page = client.get(f"/contacts/{customer.id}").text
    assert f'href="/email/messages/{message.id}">Your quote</a>' in page
    assert "waiting to be sent" in page


def test_a_form_with_errors_answers_422_and_keeps_every_input(as_role, customer):
    client, _ = as_role("sales")
    cases = [
        ({"to": ""}, "Say whom to send it to."),
        ({"to": "marie@radium.example, not-an-address"}, "Not an email address: not-an-address"),
        ({"cc": "boss@"}, "Not an email address: boss@"),
        ({"subject": ""}, "Give the email a subject."),
        ({"body": "Dear {{deal.title}}"}, "Fill in the gaps before sending: {{deal.title}}"),
        ({"mailbox": "999999"}, "Pick one of your mailboxes."),
    ]
    for fields, error in cases:
        response = _compose(client, customer, **fields)
        assert response.status_code == 422, fields
        assert error in response.text, fields
        assert "<html" not in response.text
        kept = {**{"subject": "Your quote", "to": "marie@radium.example"}, **fields}
        if kept["subject"]:
            assert f'value="{kept["subject"]}"' in response.text
    assert count(EmailMessage) == 0 and count(Activity) == 0


def test_attachments_are_limited_in_size_and_number(as_role, customer, app, monkeypatch):
    client, _ = as_role("sales")
    monkeypatch.setitem(app.config, "MAIL_ATTACHMENT_MAX_BYTES", 1024 * 1024)
    big = (io.BytesIO(b"x" * (1024 * 1024 + 1)), "big.bin")
    response = _compose(client, customer, attachments=[big])
    assert response.status_code == 413
    assert "Attachments are limited to 1 MB in all." in response.text
    assert 'value="Your quote"' in response.text
    many = [(io.BytesIO(b"x"), f"f{i}.txt") for i in range(11)]
    response = _compose(client, customer, attachments=many)
    assert response.status_code == 422 and "At most 10 attachments." in response.text
    assert count(EmailMessage) == 0

    files = [(io.BytesIO(b"%PDF-1.4"), "../quote.pdf"), (io.BytesIO(b"hi"), "notes.txt")]
    assert _compose(client, customer, attachments=files).status_code == 200
    stored = db.session.scalars(select(EmailAttachment).order_by(EmailAttachment.id)).all()
    assert [(a.filename, a.size) for a in stored] == [("quote.pdf", 8), ("notes.txt", 2)]


def test_no_tracking_for_a_contact_who_refused_it(as_role):
    client, _ = as_role("sales")
    refused = make_contact("No", "Track", email="no@track.example", consent_status="refused")
    db.session.commit()
    page = client.get(f"/email/compose?contact_id={refused.id}").text
    assert '<input disabled id="track_opens" name="track_opens" type="checkbox" value="y">' in page
    response = _compose(client, refused, to="no@track.example", body="Hi", track_opens="y")
    assert response.status_code == 200
    message = db.session.scalars(select(EmailMessage)).one()
    assert not message.track_opens and message.tracking_token is None


def test_the_user_setting_decides_whether_tracking_starts_checked(as_role, customer):
    client, me = as_role("sales")
    response = client.post("/settings/email-tracking", data={}, headers=htmx_headers())
    assert response.status_code == 200 and 'id="email-tracking"' in response.text
    db.session.refresh(me)
    assert me.track_email_opens is False
    page = client.get(f"/email/compose?contact_id={customer.id}").text
    assert '<input id="track_opens" name="track_opens" type="checkbox" value="y">' in page
    client.post("/settings/email-tracking", data={"track_email_opens": "on"})
    db.session.refresh(me)
    assert me.track_email_opens is True
    assert "Track when my emails are opened" in client.get("/settings").text


def test_a_template_fills_subject_and_text_and_the_preview_marks_gaps(as_role, customer):
    client, me = as_role("sales")
    template = EmailTemplate(
        name="Hi", subject="For {{contact.first_name}}", body="Dear {{contact.first_name}}"
    )
    db.session.add(template)
    db.session.commit()
    filled = client.get(
        f"/email/compose/template?template={template.id}&record=contact:{customer.id}",
        headers=htmx_headers("div#compose-message"),
    )
    assert 'value="For Marie"' in filled.text and "Dear Marie</textarea>" in filled.text
    assert "email:preview" in filled.headers["HX-Trigger"]
    preview = client.post(
        "/email/compose/preview",
        data={
            "record": f"contact:{customer.id}",
            "subject": "Hi {{contact.first_name}}",
            "body": "About {{deal.amount}}",
        },
        headers=htmx_headers("aside#compose-preview"),
    )
    assert "Hi Marie" in preview.text
    assert '<mark class="gap">{{deal.amount}}</mark>' in preview.text


# ---- reading ------------------------------------------------------------------------------


def test_privacy_decides_who_reads_a_message_and_the_timeline(as_role, customer):
    client, me = as_role("sales", team=make_team())
    author = make_user(role="sales")
    teammate = make_user(role="sales", team=me.team)
    private = _message(author, customer, subject="Secret offer", privacy="private")
    team = _message(teammate, customer, subject="Team note", privacy="team")
    public = _message(author, customer, subject="Open letter", privacy="public")
    assert client.get(f"/email/messages/{private.id}").status_code == 404
    assert client.get(f"/email/messages/{private.id}/body").status_code == 404
    assert client.get(f"/email/messages/{team.id}").status_code == 200
    assert client.get(f"/email/messages/{public.id}").status_code == 200
    page = client.get(f"/contacts/{customer.id}").text
    assert "Secret offer" not in page and "Private email" in page
    assert "Team note" in page and "Open letter" in page
    # Only the owner changes who may read it.
    assert (
        client.post(f"/email/messages/{public.id}/privacy", data={"privacy": "private"}).status_code
        == 403
    )
    owner_client = client.application.test_client()
    from tests.factories import start_session

    token = start_session(author)
    db.session.commit()
    with owner_client.session_transaction() as session:
        session["_user_id"] = token
        session["_fresh"] = True
    assert (
        owner_client.post(
            f"/email/messages/{public.id}/privacy", data={"privacy": "private"}
        ).status_code
        == 303
    )
    db.session.expire_all()
    assert db.session.get(EmailMessage, public.id).privacy == "private"


def test_the_body_has_its_own_strict_policy_and_images_need_a_click(as_role, customer):
    client, me = as_role("sales")
    message = _message(me, customer)
    message.html_body = '<p>Hi</p><img data-remote-src="https://tracker.example/p.gif" alt="logo">'
    db.session.commit()
    page = client.get(f"/email/messages/{message.id}").text
    assert '<iframe class="email-body card" sandbox title="Message"' in page
    assert f'src="/email/messages/{message.id}/body"' in page and "Show images" in page
    body = client.get(f"/email/messages/{message.id}/body")
    csp = body.headers["Content-Security-Policy"]
    assert csp == (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'"
    )
    assert body.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert '<img src="https://tracker.example' not in body.text
    shown = client.get(f"/email/messages/{message.id}/body?images=1")
    assert "img-src data: http: https:" in shown.headers["Content-Security-Policy"]
    assert '<img src="https://tracker.example/p.gif"' in shown.text
    # The rest of the application keeps refusing to be framed.
    assert "frame-ancestors 'none'" in client.get("/").headers["Content-Security-Policy"]


def test_attachments_download_as_files(as_role, customer):
    client, me = as_role("sales")
    message = _message(
        me, customer, attachments=[outbox.Attachment("x.html", "text/html", b"<script>1</script>")]
    )
    attachment = message.attachments[0]
    response = client.get(f"/email/messages/{message.id}/attachments/{attachment.id}")
    assert response.status_code == 200 and response.data == b"<script>1</script>"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    other = _message(me, customer)
    assert client.get(f"/email/messages/{other.id}/attachments/{attachment.id}").status_code == 404


def test_a_failed_message_shows_its_error_and_its_author_retries_it(as_role, customer):
    client, me = as_role("sales")
    message = _message(me, customer)
    message.status, message.attempts = "failed", 1
    message.last_error = "The server refused the message: 550 5.1.1 No such user"
    db.session.commit()
    page = client.get(f"/email/messages/{message.id}").text
    assert "550 5.1.1 No such user" in page and "Retry now" in page
    other, _ = as_role("sales")
    assert "Retry now" not in other.get(f"/email/messages/{message.id}").text
    assert other.post(f"/email/messages/{message.id}/retry").status_code == 403
    assert client.post(f"/email/messages/{message.id}/retry").status_code == 303
    db.session.expire_all()
    row = db.session.get(EmailMessage, message.id)
    assert (row.status, row.attempts) == ("queued", 0)
    assert outbox_jobs.job_id(message.id) in Queue("mail", connection=redis_connection()).job_ids
    # A message on its way is not "retried".
    assert client.post(f"/email/messages/{message.id}/retry").status_code == 422


def test_the_message_page_runs_a_bounded_number_of_queries(as_role, customer):
    client, me = as_role("sales")
    first = _message(me, customer, subject="Quote")

    def queries() -> int:
        response = client.get(f"/email/messages/{first.id}")
        assert response.status_code == 200
        return int(response.headers["X-SQL-Queries"])

    small = queries()
    for i in range(15):
        _message(
            me,
            customer,
            subject=f"Re: Quote {i}",
            in_reply_to=first,
            attachments=[outbox.Attachment(f"a{i}.txt", "text/plain", b"x")],
        )
    first.attachments.append(EmailAttachment(filename="b.txt", size=1, content=b"y"))
    db.session.commit()
    assert queries() == small
    assert small <= 10


# ---- the pixel ----------------------------------------------------------------------------


def test_the_pixel_counts_opens_and_never_errs(client, customer):
    author = make_user()
    tracked = _message(author, customer, track_opens=True)
    untracked = _message(author, customer)
    for _ in range(2):
        response = client.get(f"/email/t/{tracked.tracking_token}.gif")
        assert response.status_code == 200 and response.mimetype == "image/gif"
        assert response.data.startswith(b"GIF89a")
    for token in ("unknown", "x" * 300, "' OR 1=1 --"):
        response = client.get(f"/email/t/{token}.gif")
        assert response.status_code == 200 and response.mimetype == "image/gif"
    db.session.expire_all()
    row = db.session.get(EmailMessage, tracked.id)
    assert row.open_count == 2 and row.first_opened_at <= row.last_opened_at
    assert row.last_opened_at > utcnow() - timedelta(minutes=1)
    assert db.session.get(EmailMessage, untracked.id).open_count == 0


def test_opens_show_on_the_message_and_the_timeline(as_role, customer):
    client, me = as_role("sales")
    message = _message(me, customer, track_opens=True)
    client.get(f"/email/t/{message.tracking_token}.gif")
    client.get(f"/email/t/{message.tracking_token}.gif")
    assert "2 times" in client.get(f"/email/messages/{message.id}").text
    assert "opened 2 times" in client.get(f"/contacts/{customer.id}").text


def test_a_personal_mailbox_is_offered_first_and_makes_the_mail_a_team_one(as_role, customer):
    client, me = as_role("sales")
    own = Mailbox(name="Mine", address="me@crm.example", owner=me)
    shared = Mailbox(name="Sales", address="sales@crm.example")
    someone_else = Mailbox(name="Theirs", address="them@crm.example", owner=make_user())
    db.session.add_all([own, shared, someone_else])
    db.session.commit()
    page = client.get(f"/email/compose?contact_id={customer.id}").text
    assert page.index("me@crm.example") < page.index("sales@crm.example")
    assert "them@crm.example" not in page
    assert '<option selected value="team">' in page
    response = _compose(client, customer, mailbox=str(someone_else.id))
    assert response.status_code == 422


def test_the_timeline_reads_its_emails_in_one_query(as_role, customer):
    client, me = as_role("sales")
    _message(me, customer, subject="First")

    def queries() -> int:
        response = client.get(f"/contacts/{customer.id}")
        assert response.status_code == 200 and "First" in response.text
        return int(response.headers["X-SQL-Queries"])

    few = queries()
    for i in range(20):
        _message(
            make_user(), customer, subject=f"Mail {i}", privacy="private" if i % 2 else "public"
        )
    many = queries()
    assert many == few
