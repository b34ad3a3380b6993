"""Outgoing mail: one small sender, over SMTP or into a development mail drop.

send_message() builds a message with a Message-ID chosen by the caller, so that
a message sent again after a crash (the worker killed between the SMTP answer
and the database commit) is the same message to every mail client, which shows
it once. Without SMTP_HOST (the `make run` default) each message is written as
an .eml file under instance/outbox/, named after its Message-ID, so the demo
works offline and a resend overwrites its file.

Mail written by people (crm/services/outbox.py) goes through deliver(): the same
classification of failures, over a mailbox's own SMTP server when it has one.
"""

import logging
import re
import smtplib
import ssl
import uuid
from contextlib import contextmanager
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from pathlib import Path

from flask import current_app

log = logging.getLogger(__name__)


class MailError(Exception):
    """Sending failed; `temporary` says whether trying again later may work."""

    def __init__(self, message: str, temporary: bool):
        super().__init__(message)
        self.temporary = temporary


def message_id(kind: str, key) -> str:
    """A stable Message-ID such as <reminder-42@crm.example.com> for one thing sent."""
    domain = parseaddr(current_app.config["MAIL_FROM"])[1].rpartition("@")[2] or "localhost"
    return f"<{kind}-{key}@{domain}>"


def outbound_message_id(sender_address: str) -> str:
    """<out-<uuid>@domain-of-the-sender>: fixed when the message is queued, kept on every try."""
    domain = parseaddr(sender_address)[1].rpartition("@")[2] or "localhost"
    return f"<out-{uuid.uuid4().hex}@{domain}>"


def build_message(
    to: str,
    subject: str,
    text: str,
    html: str | None = None,
    message_id: str | None = None,
    sender: str | None = None,
    headers: dict[str, str] | None = None,
    automatic: bool = True,
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender or current_app.config["MAIL_FROM"]
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = message_id or make_msgid()
    if automatic:
        # Reminders and notices: mail servers and clients must not answer them automatically.
        message["Auto-Submitted"] = "auto-generated"
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(text)
    if html:
        message.add_alternative(html, subtype="html")
    return message


def send_message(
    to: str,
    subject: str,
    text: str,
    html: str | None = None,
    message_id: str | None = None,
    sender: str | None = None,
    headers: dict[str, str] | None = None,
) -> str:
    """Send one message and return its Message-ID; raises MailError."""
    message = build_message(to, subject, text, html, message_id, sender, headers)
    if current_app.config.get("SMTP_HOST"):
        _send_smtp(message)
    else:
        _drop(message)
    return message["Message-ID"]


def deliver(message: EmailMessage, mailbox=None) -> None:
    """Send a built message through `mailbox`'s SMTP server when it has one, else the
    instance's (SMTP_HOST) or the development mail drop; raises MailError."""
    if mailbox is not None and mailbox.smtp_host:
        from crm.services.mail_connections import smtp_connect

        with _classified(), smtp_connect(mailbox) as client:
            refused = client.send_message(message)
        if refused:
            raise MailError(_refused_text(refused), temporary=_all_temporary(refused))
    elif current_app.config.get("SMTP_HOST"):
        _send_smtp(message)
    else:
        _drop(message)


@contextmanager
def _classified():
    """Turn smtplib's and the network's errors into MailError, temporary or not."""
    try:
        yield
    except smtplib.SMTPResponseException as error:
        # 4xx: the server asks to come back later; 5xx: it will never take this message.
        temporary = 400 <= error.smtp_code < 500
        raise MailError(f"{error.smtp_code} {_text(error.smtp_error)}", temporary) from error
    except smtplib.SMTPRecipientsRefused as error:
        raise MailError(
            _refused_text(error.recipients), _all_temporary(error.recipients)
        ) from error
    except (TimeoutError, smtplib.SMTPException, OSError) as error:
        raise MailError(f"{type(error).__name__}: {error}", temporary=True) from error


def _all_temporary(refused: dict) -> bool:
    return all(400 <= code < 500 for code, _text in refused.values())


def _refused_text(refused: dict) -> str:
    return "; ".join(f"{rcpt}: {code} {_text(text)}" for rcpt, (code, text) in refused.items())


def _send_smtp(message: EmailMessage) -> None:
    config = current_app.config
    host, port = config["SMTP_HOST"], int(config["SMTP_PORT"])
    timeout = config["SMTP_TIMEOUT_SECONDS"]
    with _classified():
        if port == 465:
            client = smtplib.SMTP_SSL(
                host, port, timeout=timeout, context=ssl.create_default_context()
            )
        else:
            client = smtplib.SMTP(host, port, timeout=timeout)
        with client:
            if port != 465 and config["SMTP_STARTTLS"]:
                client.starttls(context=ssl.create_default_context())
            if config.get("SMTP_USER"):
                client.login(config["SMTP_USER"], config.get("SMTP_PASSWORD") or "")
            refused = client.send_message(message)
    if refused:
        raise MailError(_refused_text(refused), temporary=_all_temporary(refused))


def _text(value) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def outbox_folder() -> Path:
    return Path(current_app.config["INSTANCE_PATH"]) / "outbox"


def _drop(message: EmailMessage) -> None:
    folder = outbox_folder()
    folder.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9@._-]", "", message["Message-ID"]) or "message"
    path = folder / f"{name}.eml"
    path.write_bytes(bytes(message))
    log.info("Mail to %s (%s) written to %s", message["To"], message["Subject"], path)
