"""Connections to a mailbox's IMAP and SMTP servers, with its TLS settings and password.

The one place that opens them: the sync, the outbox and the "check connection" button
all go through here. TLS certificates are verified against the system's CAs, or against
MAIL_CA_FILE when set (a private CA, or the tests' self-signed certificate).
"""

import smtplib
import ssl
from contextlib import contextmanager

from flask import current_app
from imapclient import IMAPClient

from crm.models import Mailbox
from crm.services import secrets_box


class MailboxNotConfigured(ValueError):
    """The mailbox lacks a host or a password for this direction."""


def tls_context() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=current_app.config.get("MAIL_CA_FILE") or None)


def _timeout(timeout: float | None = None) -> float:
    return float(timeout or current_app.config.get("MAIL_TIMEOUT_SECONDS", 30))


@contextmanager
def imap_connect(mailbox: Mailbox, timeout: float | None = None):
    """An IMAPClient logged in to `mailbox` (folder not selected); logged out on exit.

    `timeout` (seconds) overrides MAIL_TIMEOUT_SECONDS: the connection check in a web
    request waits less than the sync in the worker.
    """
    if not mailbox.imap_host:
        raise MailboxNotConfigured("imap")
    password = secrets_box.decrypt("mail", mailbox.imap_password) or ""
    client = IMAPClient(
        mailbox.imap_host,
        port=mailbox.imap_port,
        ssl=mailbox.imap_security == "ssl",
        ssl_context=tls_context(),
        timeout=_timeout(timeout),
    )
    try:
        if mailbox.imap_security == "starttls":
            client.starttls(tls_context())
        client.login(mailbox.imap_username or mailbox.address, password)
        yield client
    finally:
        try:
            client.logout()
        except Exception:  # noqa: BLE001  (the server may have closed first; nothing to do)
            client.shutdown()


@contextmanager
def smtp_connect(mailbox: Mailbox, timeout: float | None = None):
    """An smtplib client logged in to `mailbox`'s SMTP server (when it has a username)."""
    if not mailbox.smtp_host:
        raise MailboxNotConfigured("smtp")
    timeout = _timeout(timeout)
    if mailbox.smtp_security == "ssl":
        client = smtplib.SMTP_SSL(
            mailbox.smtp_host, mailbox.smtp_port, timeout=timeout, context=tls_context()
        )
    else:
        client = smtplib.SMTP(mailbox.smtp_host, mailbox.smtp_port, timeout=timeout)
    with client:
        if mailbox.smtp_security == "starttls":
            client.starttls(context=tls_context())
        if mailbox.smtp_username:
            password = secrets_box.decrypt("mail", mailbox.smtp_password) or ""
            client.login(mailbox.smtp_username, password)
        yield client
