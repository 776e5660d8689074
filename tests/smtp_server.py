"""A real SMTP server for tests (aiosmtpd on 127.0.0.1) that can be told to misbehave."""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter, defaultdict
from typing import Any

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Handler:
    """Counts what it accepts; answers scripted codes for chosen recipients."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received: Counter[str] = Counter()
        self.messages: list[bytes] = []
        self.at_rcpt: dict[str, list[int]] = defaultdict(list)  # codes to answer, in order
        self.at_data: dict[str, list[int]] = defaultdict(list)
        self.drop_in_data: Counter[str] = Counter()  # times to drop the connection
        self.delay = 0.0

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        with self.lock:
            scripted = self.at_rcpt.get(address)
            code = scripted.pop(0) if scripted else None
        if code is not None:
            return f"{code} scripted answer for {address}"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        recipient = envelope.rcpt_tos[0]
        if self.delay:
            time.sleep(self.delay)
        with self.lock:
            if self.drop_in_data[recipient] > 0:
                self.drop_in_data[recipient] -= 1
                server.transport.close()
                return "421 closing"
            scripted = self.at_data.get(recipient)
            code = scripted.pop(0) if scripted else None
            if code is None:
                self.received[recipient] += 1
                self.messages.append(envelope.original_content)
        if code is not None:
            return f"{code} scripted answer at DATA"
        return "250 OK queued"


class SmtpServer:
    def __init__(self) -> None:
        self.handler = Handler()
        self.port = free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()
