"""A real SMTP server for tests: aiosmtpd in a thread on 127.0.0.1, on a free port.

Use :func:`running_smtp_server` as a context manager (or wrap it in a fixture);
received mails are parsed :class:`email.message.EmailMessage` objects.
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

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
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
def running_smtp_server() -> Iterator[SmtpServer]:
    handler = _Handler()
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
