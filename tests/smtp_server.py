"""A real SMTP server for tests (aiosmtpd on 127.0.0.1) that can be told to misbehave."""

from __future__ import annotations

import asyncio
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
        self.senders: list[str] = []  # the envelope sender (MAIL FROM) of each message kept
        # codes to answer, in order; a string is answered as it is ("554 5.7.1 spam")
        self.at_rcpt: dict[str, list[int | str]] = defaultdict(list)
        self.at_data: dict[str, list[int | str]] = defaultdict(list)
        # times to drop the connection: at RCPT (nothing sent yet), or after the whole
        # message came in but before answering (the server keeps it: a real risk)
        self.drop_at_rcpt: Counter[str] = Counter()
        self.drop_after_data: Counter[str] = Counter()
        self.delay = 0.0
        # recipients whose message waits at DATA until their event is set (a send held
        # half-way, for as long as a test needs)
        self.hold: dict[str, threading.Event] = {}
        self.refuse_sender = False
        # per message accepted: the TLS version of its connection (None: plain text) and
        # the user it logged in as (None: no AUTH)
        self.tls_versions: list[str | None] = []
        self.logins: list[bytes | None] = []
        self.pipelining = False  # offer PIPELINING (RFC 2920) in the EHLO answer

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        if self.pipelining:  # aiosmtpd reads commands one line at a time: it can
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str,
                          mail_options: list[str]) -> str:
        if self.refuse_sender:
            return "553 sender not allowed"
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        with self.lock:
            if self.drop_at_rcpt[address] > 0:
                self.drop_at_rcpt[address] -= 1
                server.transport.close()
                return "421 closing"
            scripted = self.at_rcpt.get(address)
            code = scripted.pop(0) if scripted else None
        if isinstance(code, str):
            return code
        if code is not None:
            return f"{code} scripted answer for {address}"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        recipient = envelope.rcpt_tos[0]
        if self.delay:
            time.sleep(self.delay)
        gate = self.hold.get(recipient)
        if gate is not None:
            await asyncio.get_running_loop().run_in_executor(None, gate.wait)
        with self.lock:
            if self.drop_after_data[recipient] > 0:
                self.drop_after_data[recipient] -= 1
                self.received[recipient] += 1
                self.messages.append(envelope.original_content)
                server.transport.close()
                return "421 closing"
            scripted = self.at_data.get(recipient)
            code = scripted.pop(0) if scripted else None
            if code is None:
                self.received[recipient] += 1
                self.messages.append(envelope.original_content)
                self.senders.append(envelope.mail_from)
                tls = server.transport.get_extra_info("ssl_object")
                self.tls_versions.append(tls.version() if tls is not None else None)
                self.logins.append(getattr(session.auth_data, "login", None)
                                   if session.authenticated else None)
        if isinstance(code, str):
            return code
        if code is not None:
            return f"{code} scripted answer at DATA"
        return "250 OK queued"


class SmtpServer:
    """`options` go to aiosmtpd: tls_context (STARTTLS), ssl_context (implicit TLS),
    authenticator, auth_required..."""

    def __init__(self, **options: Any) -> None:
        self.handler = Handler()
        self.port = free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port,
                                     **options)

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


class Tap:
    """A TCP relay on 127.0.0.1 in front of a server, keeping each chunk of bytes the
    client's writes brought in (what was sent together)."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.chunks: list[bytes] = []
        self.sockets: list[socket.socket] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            self.sockets += [client, server]
            for source, sink, keep in ((client, server, True), (server, client, False)):
                threading.Thread(target=self._pump, args=(source, sink, keep),
                                 daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, keep: bool) -> None:
        try:
            while data := source.recv(65536):
                if keep:
                    self.chunks.append(data)
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)
        except OSError:  # the other side is gone, or the tap closed
            pass

    def close(self) -> None:
        self.listener.close()
        for each in self.sockets:
            each.close()
