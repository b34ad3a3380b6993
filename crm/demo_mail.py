"""The demo's local mail pair, and the customer's side of it.

`make run` starts, when Dovecot is installed (Debian: dovecot-imapd):
- Dovecot on 127.0.0.1:DEMO_IMAP_PORT (10143), any user name with the password "demo",
  maildirs under instance/mail/<address>/Maildir;
- an SMTP server (aiosmtpd) on 127.0.0.1:DEMO_SMTP_PORT (10025) that delivers every
  message it accepts into the INBOX of each recipient, whatever the domain: support@ and
  sales@ receive the customers' mail, a customer receives the CRM's replies.

crm/devserver.py runs both (DemoMailPair); `python -m crm.demo_mail serve DIR IMAP SMTP`
runs them alone.

The customer's side, from a shell (flask commands, registered in crm/cli.py):

    flask demo-mail send --from alice@customer.example --to support@demo.example \\
        --subject "Printer broken" --body "It shows E42."
    flask demo-mail reply --from alice@customer.example "Thanks, it works again."
    flask demo-mail inbox alice@customer.example
"""

import os
import signal
import smtplib
import sys
import threading
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, getaddresses, make_msgid, parseaddr
from pathlib import Path

import click

DEMO_PASSWORD = "demo"
DEFAULT_IMAP_PORT = 10143
DEFAULT_SMTP_PORT = 10025
HOST = "127.0.0.1"


def imap_port() -> int:
    return int(os.environ.get("DEMO_IMAP_PORT", DEFAULT_IMAP_PORT))


def smtp_port() -> int:
    return int(os.environ.get("DEMO_SMTP_PORT", DEFAULT_SMTP_PORT))


# ---- the servers ---------------------------------------------------------------------


class DeliverToDovecot:
    """aiosmtpd handler: APPEND each accepted message to every recipient's INBOX.

    Through IMAP rather than by writing files, so Dovecot assigns the UIDs and keeps its
    indexes, and the files belong to the user Dovecot runs as."""

    def __init__(self, dovecot):
        self.dovecot = dovecot
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if "@" not in address:
            return "550 5.1.3 An address with a domain, please"
        envelope.rcpt_tos.append(address.lower())
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        import asyncio

        try:
            await asyncio.to_thread(self._deliver, envelope.content, list(envelope.rcpt_tos))
        except Exception as error:  # noqa: BLE001  (the sender retries a 451)
            print(f"demo mail: delivery failed: {error}", file=sys.stderr, flush=True)
            return "451 4.3.0 Delivery failed, try again later"
        return "250 2.0.0 Delivered"

    def _deliver(self, raw: bytes, recipients: list[str]) -> None:
        with self.lock:  # one APPEND at a time: the demo has no load to speak of
            for recipient in dict.fromkeys(recipients):
                self.dovecot.append(recipient, raw)


class DemoMailPair:
    """Dovecot plus the delivering SMTP server; start() returns once both answer."""

    def __init__(self, mail_directory: str | os.PathLike, imap: int, smtp: int):
        from crm.devmail import Dovecot

        # Configuration and sockets in a short temporary folder (removed on stop); the
        # maildirs in `mail_directory`, kept from one run to the next.
        self.dovecot = Dovecot(port=imap, password=DEMO_PASSWORD, mail_directory=mail_directory)
        self.smtp = smtp
        self.controller = None

    def start(self) -> "DemoMailPair":
        from aiosmtpd.controller import Controller

        self.dovecot.start()
        self.controller = Controller(
            DeliverToDovecot(self.dovecot), hostname=HOST, port=self.smtp, ready_timeout=10
        )
        try:
            self.controller.start()
        except Exception:
            self.dovecot.stop()
            raise
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None
        self.dovecot.stop()


def serve(mail_directory: str, imap: int, smtp: int) -> int:
    """Run the pair until SIGTERM or Ctrl-C."""
    from crm.devmail import DovecotError

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        pair = DemoMailPair(mail_directory, imap, smtp).start()
    except (DovecotError, OSError) as error:
        print(f"demo mail: could not start: {error}", file=sys.stderr, flush=True)
        return 1
    try:
        stop.wait()
    finally:
        pair.stop()
    return 0


# ---- the customer's side -------------------------------------------------------------


def send(sender: str, to: list[str], subject: str, body: str, **headers) -> str:
    """Send a plain text message through the demo SMTP server; returns its Message-ID."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Subject"] = subject
    message["Date"] = format_datetime(_now())
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    message["Message-ID"] = make_msgid(domain=domain)
    for name, value in headers.items():
        if value:
            message[name.replace("_", "-")] = value
    message.set_content(body)
    envelope_from = parseaddr(sender)[1]
    recipients = [address for _name, address in getaddresses(to) if address]
    with smtplib.SMTP(HOST, smtp_port(), timeout=10) as client:
        client.sendmail(envelope_from, recipients, message.as_bytes(policy=SMTP_POLICY))
    return message["Message-ID"]


def _now():
    from datetime import UTC, datetime

    return datetime.now(UTC)


def last_received(address: str):
    """The newest message in `address`'s demo INBOX, parsed, or None."""
    from email import message_from_bytes
    from email.policy import default

    from imapclient import IMAPClient

    with IMAPClient(HOST, port=imap_port(), ssl=False, timeout=10) as client:
        client.login(address.lower(), DEMO_PASSWORD)
        client.select_folder("INBOX", readonly=True)
        uids = client.search(["ALL"])
        if not uids:
            return None
        fetched = client.fetch([max(uids)], ["BODY.PEEK[]"])
        raw = fetched[max(uids)][b"BODY[]"]
    return message_from_bytes(raw, policy=default)


def inbox(address: str) -> list[tuple[str, str, str]]:
    """(date, from, subject) of each message in `address`'s demo INBOX, oldest first."""
    from email.parser import BytesHeaderParser
    from email.policy import default

    from imapclient import IMAPClient

    parser = BytesHeaderParser(policy=default)
    with IMAPClient(HOST, port=imap_port(), ssl=False, timeout=10) as client:
        client.login(address.lower(), DEMO_PASSWORD)
        client.select_folder("INBOX", readonly=True)
        uids = client.search(["ALL"])
        fetched = client.fetch(uids, ["BODY.PEEK[HEADER]"]) if uids else {}
    rows = []
    for uid in sorted(fetched):
        header = parser.parsebytes(fetched[uid][b"BODY[HEADER]"])
        rows.append((str(header["Date"] or ""), str(header["From"] or ""), str(header["Subject"])))
    return rows


def reply(sender: str, text: str) -> str | None:
    """Answer the last message `sender` received, threaded (In-Reply-To, References)."""
    original = last_received(sender)
    if original is None:
        return None
    to = str(original["Reply-To"] or original["From"])
    subject = str(original["Subject"] or "")
    if not subject.lower().startswith("re:"):
        subject = f"Re: {subject}"
    parent = str(original["Message-ID"] or "").strip()
    references = " ".join(filter(None, [str(original["References"] or "").strip(), parent]))
    quoted = "\n".join(f"> {line}" for line in _text_of(original).splitlines())
    body = f"{text}\n\n{quoted}\n" if quoted else f"{text}\n"
    return send(
        sender, [to], subject, body, In_Reply_To=parent or None, References=references or None
    )


def _text_of(message) -> str:
    part = message.get_body(preferencelist=("plain",))
    if part is None:
        return ""
    try:
        return part.get_content()
    except (LookupError, UnicodeError):
        return ""


# ---- flask demo-mail ...  ------------------------------------------------------------


@click.group("demo-mail")
def demo_mail_cli():
    """The customer's side of the demo mail pair (make run): send, reply, read."""


@demo_mail_cli.command("send")
@click.option("--from", "sender", required=True, help="The customer's address.")
@click.option("--to", "to", required=True, multiple=True, help="support@demo.example, ...")
@click.option("--subject", required=True)
@click.option("--body", default="", help="The text (read from stdin when left out).")
def send_command(sender, to, subject, body):
    """Send a message as a customer would."""
    if not body and not sys.stdin.isatty():
        body = sys.stdin.read()
    message_id = _or_fail(lambda: send(sender, list(to), subject, body or subject))
    click.echo(f"Sent {message_id} to {', '.join(to)}.")


@demo_mail_cli.command("reply")
@click.option("--from", "sender", required=True, help="The customer who answers.")
@click.argument("text")
def reply_command(sender, text):
    """Answer the last message this customer received (the CRM's reply)."""
    message_id = _or_fail(lambda: reply(sender, text))
    if message_id is None:
        raise click.ClickException(f"{sender} has received nothing yet.")
    click.echo(f"Replied with {message_id}.")


@demo_mail_cli.command("inbox")
@click.argument("address")
def inbox_command(address):
    """List what an address received."""
    rows = _or_fail(lambda: inbox(address))
    if not rows:
        click.echo(f"{address}: no message.")
    for date, sender, subject in rows:
        click.echo(f"{date}  {sender}  {subject}")


def _or_fail(action):
    try:
        return action()
    except (OSError, smtplib.SMTPException) as error:
        raise click.ClickException(
            f"The demo mail servers do not answer on {HOST}:{smtp_port()} / {imap_port()} "
            f"({error}). Start them with `make run` (needs dovecot-imapd)."
        ) from None


def register(app) -> None:
    """crm/cli.py: `flask demo-mail ...`."""
    app.cli.add_command(demo_mail_cli)


if __name__ == "__main__":
    # python -m crm.demo_mail serve MAIL_DIR IMAP_PORT SMTP_PORT
    if len(sys.argv) == 5 and sys.argv[1] == "serve":
        Path(sys.argv[2]).mkdir(parents=True, exist_ok=True)
        sys.exit(serve(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
    print("usage: python -m crm.demo_mail serve MAIL_DIR IMAP_PORT SMTP_PORT", file=sys.stderr)
    sys.exit(2)
