"""A real SMTP server for the outbox tests, and helpers to queue test emails.

The server (aiosmtpd, on 127.0.0.1 and a free port) answers each message as the test says:
accept it, refuse it for now (451), refuse it for good (550), or hang until the client gives up.
"""

import asyncio
import logging
import socket
import threading
from collections import deque
from email import message_from_bytes, policy
from email.message import Message
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from deconv.celery import app as celery_app
from deconv.outbox import EmailItem, email_queue

HERE = Path(__file__).resolve().parent

ACCEPT = "accept"
TRANSIENT = "451 4.3.0 Mailbox busy, try again later"
PERMANENT = "550 5.1.1 No such mailbox"
HANG = "hang"


class SinkHandler:
    """Records what it accepts; `answers` lists what to say to the next messages, in order."""

    def __init__(self):
        self.answers: deque[str] = deque()
        self.refused_recipients: dict[str, str] = {}
        self.hang_seconds = 3.0
        self.port = 0
        self._lock = threading.Lock()
        self._deliveries: list[tuple[str, bytes]] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refused_recipients:
            return self.refused_recipients[address]
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        answer = self.answers.popleft() if self.answers else ACCEPT
        if answer == HANG:
            # The client times out first; what we say afterwards reaches no one.
            await asyncio.sleep(self.hang_seconds)
            return TRANSIENT
        if answer != ACCEPT:
            return answer
        with self._lock:
            self._deliveries.extend((recipient, envelope.content) for recipient in envelope.rcpt_tos)
        return "250 2.0.0 Queued"

    @property
    def deliveries(self) -> list[tuple[str, bytes]]:
        with self._lock:
            return list(self._deliveries)

    @property
    def recipients(self) -> list[str]:
        return [recipient for recipient, _ in self.deliveries]

    def messages(self) -> list[Message]:
        return [message_from_bytes(content, policy=policy.default) for _, content in self.deliveries]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_sink() -> tuple[SinkHandler, Controller]:
    # aiosmtpd logs every SMTP command at INFO: thousands of lines, and slower runs.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    handler = SinkHandler()
    handler.port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=handler.port)
    controller.start()
    return handler, controller


@pytest.fixture
def smtp_sink(settings):
    """The SMTP server, and Django's SMTP backend pointed at it (1 s timeout)."""
    handler, controller = start_sink()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = handler.port
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 1
    try:
        yield handler
    finally:
        controller.stop()


@pytest.fixture(autouse=True)
def outbox_templates(settings):
    """The `outbox_test` kind lives in tests/outbox/templates."""
    engine = settings.TEMPLATES[0]
    settings.TEMPLATES = [{**engine, "DIRS": [*engine["DIRS"], HERE / "templates"]}, *settings.TEMPLATES[1:]]


@pytest.fixture
def eager_tasks():
    """Dispatched tasks run at once, in this process (the worker test covers the broker)."""
    previous = (celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates)
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True
    yield
    celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates = previous


def make_item(
    number: int, *, kind: str = "outbox_test", recipient: str | None = None, **context
) -> EmailItem:
    return EmailItem(
        kind=kind,
        recipient=recipient or f"dr.{number}@example.org",
        context={"number": number, **context},
        dedupe_key=f"test:{kind}:{number}",
    )


def queue_test_email(number: int = 1, **kwargs):
    item = make_item(number, **kwargs)
    return email_queue(
        kind=item.kind, recipient=item.recipient, context=item.context, dedupe_key=item.dedupe_key
    )
