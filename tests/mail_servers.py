"""A real IMAP server for the mail tests: one Dovecot per test session (crm/devmail.py).

Use the fixtures by importing them into a test module:

    from tests.mail_servers import dovecot, imap_user  # noqa: F401  (pytest fixtures)

- `dovecot`: the session's server, with a static passdb: any user name logs in with
  the password "testpw" and gets a fresh, empty mailbox.
- `imap_user`: a user name no other test uses ("u7-3f2a@example.com"), so tests never
  see each other's mail.
- `append(server, user, raw, ...)`: APPEND raw bytes (kept byte for byte) -> UID.
- `change_uidvalidity(server, user)`: a new UIDVALIDITY for INBOX, UIDs kept.
- `make_mailbox(server, user, **fields)`: a Mailbox row that reaches that mailbox.

Without /usr/sbin/dovecot the tests that need it are skipped, except on CI (env CI
set) where a missing server is a failure, not a silent skip.
"""

import itertools
import os
import uuid

import pytest

from crm.devmail import Dovecot, available

_users = itertools.count(1)


@pytest.fixture(scope="session")
def dovecot():
    if not available():
        message = "Dovecot is missing: apt-get install dovecot-imapd"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    server = Dovecot().start()
    yield server
    server.stop()


@pytest.fixture
def imap_user(dovecot) -> str:
    return f"u{next(_users)}-{uuid.uuid4().hex[:6]}@example.com"


def append(server: Dovecot, user: str, raw: bytes, folder: str = "INBOX", flags=()) -> int:
    return server.append(user, raw, folder=folder, flags=flags)


def change_uidvalidity(server: Dovecot, user: str, folder: str = "INBOX") -> int:
    """Give the folder another UIDVALIDITY (values are epoch seconds and may go down:
    the new one is simply different) and return it."""
    new = server.uidvalidity(user, folder) + 1000
    server.set_uidvalidity(user, new, folder)
    return new


def make_mailbox(server: Dovecot, user: str, **fields):
    """A Mailbox row whose IMAP settings reach `user` on `server` (needs an app context)."""
    from crm.extensions import db
    from crm.models import Mailbox
    from crm.services import secrets_box

    settings = server.imap_settings(user)
    fields.setdefault("name", user.split("@")[0])
    fields.setdefault("address", user)
    mailbox = Mailbox(
        imap_host=settings["imap_host"],
        imap_port=settings["imap_port"],
        imap_security=settings["imap_security"],
        imap_username=settings["imap_username"],
        imap_password=secrets_box.encrypt("mail", settings["password"]),
        **fields,
    )
    db.session.add(mailbox)
    db.session.flush()
    return mailbox


def build_message(
    *,
    subject: str = "Hello",
    sender: str = "Alice Martin <alice@customer.test>",
    to: str = "support@example.com",
    body: str = "Hello, my printer is broken.",
    message_id: str | None = None,
    in_reply_to: str | None = None,
    references: str | None = None,
    headers: dict | None = None,
) -> bytes:
    """A plain text message as a mail client would send it."""
    from email.message import EmailMessage
    from email.policy import SMTP
    from email.utils import format_datetime, make_msgid

    from crm.models.types import utcnow

    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = message_id or make_msgid(domain="customer.test")
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
    if references:
        message["References"] = references
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body)
    return message.as_bytes(policy=SMTP)
