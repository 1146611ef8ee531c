"""A real SMTP server (aiosmtpd on 127.0.0.1) that tests can slow down, refuse or hang.

Deliveries are recorded when the server answers 250 to DATA. `rcpt_delay` makes each message
wait before its recipient is accepted (before DATA): a worker killed during that wait has
delivered nothing, which lets a test kill a worker mid-fan-out without creating the one
duplicate SMTP cannot avoid (a crash between the server's 250 and the outbox's "sent" mark).
"""

import asyncio
import logging
import threading
from collections import Counter, deque
from dataclasses import dataclass, field

from aiosmtpd.controller import Controller

from tests.reliability.servers import free_port

ACCEPT = "accept"
TRANSIENT = "451 4.3.0 Mailbox busy, try again later"
PERMANENT = "550 5.1.1 No such mailbox"
HANG = "hang"


@dataclass
class Sink:
    """What the server says to the next messages (`answers`, in order; then ACCEPT)."""

    answers: deque = field(default_factory=deque)
    rcpt_delay: float = 0.0
    hang_seconds: float = 3.0
    port: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _deliveries: list = field(default_factory=list)
    _waiting: int = 0
    _attempts: int = 0
    controller: Controller | None = None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.rcpt_delay:
            with self._lock:
                self._waiting += 1
            try:
                await asyncio.sleep(self.rcpt_delay)
            finally:
                with self._lock:
                    self._waiting -= 1
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        with self._lock:
            self._attempts += 1
            answer = self.answers.popleft() if self.answers else ACCEPT
        if answer == HANG:
            await asyncio.sleep(self.hang_seconds)
            return TRANSIENT
        if answer != ACCEPT:
            return answer
        with self._lock:
            self._deliveries.extend(envelope.rcpt_tos)
        return "250 2.0.0 Queued"

    @property
    def recipients(self) -> list[str]:
        with self._lock:
            return list(self._deliveries)

    @property
    def waiting(self) -> int:
        """Messages held in their RCPT delay right now."""
        with self._lock:
            return self._waiting

    @property
    def attempts(self) -> int:
        """DATA commands received, whatever the answer."""
        with self._lock:
            return self._attempts

    def duplicates(self) -> dict[str, int]:
        return {address: n for address, n in Counter(self.recipients).items() if n > 1}

    def smtp_url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def server_start(self) -> None:
        """Listen on `port` (again): the same recorded deliveries, a new server."""
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def server_stop(self) -> None:
        """Stop listening: clients now get "connection refused"."""
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


def sink_start() -> Sink:
    # aiosmtpd logs every SMTP command at INFO.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    sink = Sink(port=free_port())
    sink.server_start()
    return sink
