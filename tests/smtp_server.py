"""A real SMTP server for tests: aiosmtpd in a thread on 127.0.0.1, on a free port.

Use :func:`running_smtp_server` as a context manager (or wrap it in a fixture);
received mails are parsed :class:`email.message.EmailMessage` objects.
``rcpt_replies`` (address -> reply line, e.g. ``"550 5.1.1 No such user"`` or
``"451 4.7.1 Try again later"``) and ``data_reply`` make the server refuse; change them on
:attr:`SmtpServer.handler` while it runs (:meth:`SmtpServer.accept_all`).
:func:`closed_port` gives a port nothing listens on (an SMTP server that is down).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

HOST = "127.0.0.1"


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


@dataclass
class _Handler:
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    rcpt_replies: dict[str, str] = field(default_factory=dict)  # address -> refusal reply
    data_reply: str | None = None  # a refusal of every message at DATA
    rcpt_attempts: list[str] = field(default_factory=list)  # every RCPT TO, in order

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        with self.lock:
            self.rcpt_attempts.append(address)
            reply = self.rcpt_replies.get(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            refusal = self.data_reply
        if refusal is not None:
            return refusal
        message = message_from_bytes(
            envelope.original_content or envelope.content, policy=policy.default
        )
        with self.lock:
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"


class _FreePortController(Controller):
    """Binds port 0 and learns the port the OS chose before the readiness check."""

    def _trigger_server(self) -> None:
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


@dataclass
class SmtpServer:
    host: str
    port: int
    handler: _Handler

    @property
    def received(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.received)

    @property
    def messages(self) -> list[EmailMessage]:
        return [item.message for item in self.received]

    @property
    def rcpt_attempts(self) -> list[str]:
        """Every address a client asked for (RCPT TO), accepted or refused."""
        with self.handler.lock:
            return list(self.handler.rcpt_attempts)

    def accept_all(self) -> None:
        """From now on accept every recipient and message."""
        with self.handler.lock:
            self.handler.rcpt_replies.clear()
            self.handler.data_reply = None

    def overrides(self, *, to: tuple[str, ...] = ("analyst@example.test",)) -> dict[str, Any]:
        """``send_pending_alerts(..., smtp=...)`` overrides that point at this server."""
        return {
            "smtp_host": self.host,
            "smtp_port": self.port,
            "smtp_starttls": False,
            "smtp_timeout": 5.0,
            "alert_from": "escmon@example.test",
            "alert_to": list(to),
        }


@contextmanager
def running_smtp_server(
    *, rcpt_replies: dict[str, str] | None = None, data_reply: str | None = None
) -> Iterator[SmtpServer]:
    handler = _Handler(rcpt_replies=dict(rcpt_replies or {}), data_reply=data_reply)
    controller = _FreePortController(handler, hostname=HOST, port=0)
    controller.start()
    try:
        yield SmtpServer(host=HOST, port=controller.port, handler=handler)
    finally:
        controller.stop()


def closed_port() -> int:
    """A port on 127.0.0.1 that refuses connections (bound once, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]
