"""A real SMTP server for the mail tests: aiosmtpd on a free port of 127.0.0.1.

    recorder = Recorder(replies=["451 4.3.0 Try again later"])
    with smtp_server(recorder) as port:
        ...  # the first DATA gets 451, the next ones 250 and are kept in recorder.messages

Or the `smtp` fixture: (recorder, port) of a fresh server for one test.
`Recorder(hold_first=True)` holds the first DATA until `release` is set, to stand for a
worker killed while the server has the message.
"""

import asyncio
import contextlib
import socket
import threading
from email import message_from_bytes

import pytest
from aiosmtpd.controller import Controller

DEADLINE_SECONDS = 60


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Recorder:
    """aiosmtpd handler: keeps every message; can hold the first DATA until released."""

    def __init__(self, hold_first: bool = False, replies=()):
        self.messages = []
        self.envelopes = []
        self.refused = []  # the messages answered with one of `replies`
        self.replies = list(replies)
        self.hold_first = hold_first
        self.arrived = threading.Event()
        self.release = threading.Event()
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        if self.replies:
            self.refused.append(message_from_bytes(envelope.content))
            return self.replies.pop(0)
        with self._lock:
            self.messages.append(message_from_bytes(envelope.content))
            self.envelopes.append(envelope)
            hold = self.hold_first and len(self.messages) == 1
        if hold:
            self.arrived.set()
            await asyncio.to_thread(self.release.wait, DEADLINE_SECONDS)
        return "250 2.0.0 OK"

    def message_ids(self) -> list[str]:
        with self._lock:
            return [m["Message-ID"] for m in self.messages]


@contextlib.contextmanager
def smtp_server(handler: Recorder):
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port
    finally:
        handler.release.set()
        controller.stop()


@pytest.fixture
def smtp():
    recorder = Recorder()
    with smtp_server(recorder) as port:
        yield recorder, port
