"""The demo's local mail pair (crm/demo_mail.py): what the SMTP server accepts lands in
each recipient's Dovecot INBOX; the customer's CLI sends and replies in the thread; the
seeded support@ mailbox reaches the pair."""

import os
import shutil
import tempfile

import pytest
from click.testing import CliRunner
from imapclient import IMAPClient

from crm import demo_mail
from crm.devmail import available, free_port

pytestmark = pytest.mark.skipif(
    not available() and not os.environ.get("CI"),
    reason="Dovecot is missing: apt-get install dovecot-imapd",
)


@pytest.fixture(scope="module")
def pair():
    imap, smtp = free_port(), free_port()
    # Short and world-traversable: run as root, Dovecot's imap processes run as nobody.
    mail = tempfile.mkdtemp(prefix="crm-demo-mail-")
    os.chmod(mail, 0o755)
    running = demo_mail.DemoMailPair(os.path.join(mail, "mail"), imap, smtp).start()
    yield running
    running.stop()
    shutil.rmtree(mail, ignore_errors=True)


@pytest.fixture
def ports(pair, monkeypatch):
    monkeypatch.setenv("DEMO_IMAP_PORT", str(pair.dovecot.port))
    monkeypatch.setenv("DEMO_SMTP_PORT", str(pair.smtp))
    return pair


def inbox_messages(pair, address: str) -> list[bytes]:
    with IMAPClient("127.0.0.1", port=pair.dovecot.port, ssl=False, timeout=10) as client:
        client.login(address, demo_mail.DEMO_PASSWORD)
        client.select_folder("INBOX", readonly=True)
        uids = client.search(["ALL"])
        fetched = client.fetch(uids, ["BODY.PEEK[]"]) if uids else {}
    return [fetched[uid][b"BODY[]"] for uid in sorted(fetched)]


def test_a_message_sent_to_the_local_smtp_lands_in_each_recipients_inbox(ports):
    message_id = demo_mail.send(
        "Alice Martin <alice@customer.example>",
        ["support@demo.example", "Sales <SALES@demo.example>"],
        "Printer broken",
        "It shows E42 since this morning.",
    )
    for address in ("support@demo.example", "sales@demo.example"):
        received = inbox_messages(ports, address)
        assert len(received) == 1, address
        assert message_id.encode() in received[0]
        assert b"It shows E42" in received[0]
    assert inbox_messages(ports, "alice@customer.example") == []
    # Kept on disk under the given folder, in the maildir Dovecot reads.
    assert any(ports.dovecot.maildir("support@demo.example").rglob("*,S=*"))


def test_the_customer_replies_in_the_thread_of_the_last_message(ports):
    first = demo_mail.send(
        "support@demo.example", ["bob@customer.example"], "Re: Your request", "Fixed?"
    )
    second = demo_mail.send(
        "support@demo.example",
        ["bob@customer.example"],
        "[INC-7] Your request",
        "Is it fixed now?",
        References=first,
    )
    runner = CliRunner()
    result = runner.invoke(
        demo_mail.demo_mail_cli, ["reply", "--from", "bob@customer.example", "Yes, thanks!"]
    )
    assert result.exit_code == 0, result.output
    from email import message_from_bytes

    answer = message_from_bytes(inbox_messages(ports, "support@demo.example")[-1])
    assert answer["Subject"] == "Re: [INC-7] Your request"
    assert answer["In-Reply-To"] == second
    assert answer["References"].split() == [first, second]
    assert answer["From"] == "bob@customer.example"
    assert "Yes, thanks!" in answer.get_payload() and "> Is it fixed now?" in answer.get_payload()

    listed = runner.invoke(demo_mail.demo_mail_cli, ["inbox", "bob@customer.example"])
    assert "[INC-7] Your request" in listed.output


def test_reply_without_any_message_says_so(ports):
    result = CliRunner().invoke(
        demo_mail.demo_mail_cli, ["reply", "--from", "nobody@customer.example", "Hi"]
    )
    assert result.exit_code == 1 and "has received nothing yet" in result.output


def test_the_cli_explains_when_the_pair_is_not_running(monkeypatch):
    monkeypatch.setenv("DEMO_SMTP_PORT", str(free_port()))
    result = CliRunner().invoke(
        demo_mail.demo_mail_cli,
        ["send", "--from", "a@customer.example", "--to", "support@demo.example", "--subject", "x"],
    )
    assert result.exit_code == 1 and "make run" in result.output


def test_the_seeded_mailboxes_reach_the_pair(ports, data_app, ctx):
    from crm.demo_data import _seed_mailboxes
    from crm.extensions import db
    from crm.models import Mailbox
    from crm.services.mailboxes import check_connection

    _seed_mailboxes()
    db.session.flush()
    support = db.session.scalars(db.select(Mailbox).filter_by(purpose="support")).one()
    assert (support.address, support.imap_port, support.smtp_port) == (
        "support@demo.example",
        ports.dovecot.port,
        ports.smtp,
    )
    with data_app.test_request_context():
        result = check_connection(support)
    assert result.imap.ok and result.smtp.ok, (result.imap.message, result.smtp.message)
    db.session.rollback()
