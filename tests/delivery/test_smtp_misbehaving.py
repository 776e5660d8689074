"""The SMTP exchange and the envelopes written ahead (PIPELINING) against a server on
127.0.0.1 that misbehaves on purpose: silent after a command or a message, with and
without TLS; reading a message whole, then nothing more.

The servers here are raw sockets (with TLS when asked) so that a test decides exactly
when the server reads, answers or stays silent; aiosmtpd always reads and answers.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pytest

from citesmail.db import Database
from citesmail.delivery import RunResult, SendRun
from citesmail.delivery.transports import Outcome, SmtpTransport, make_transport
from tests.delivery.test_store import audience, settings_for, start
from tests.delivery.test_transports import Authority

SENDER = "news@example.org"


class RawServer:
    """An SMTP server on 127.0.0.1 reading one line at a time. It offers PIPELINING,
    counts each message whose end (CRLF . CRLF) it read, and misbehaves as told:
    `silent_after`: after this command (b"mail", b"data"...) it never answers again;
    `stall_after_message`: after reading this recipient's whole message the first time,
    it neither reads nor answers again on that connection (a server stuck in a filter);
    `stall_in_message`: the same after the first line of this recipient's message.
    `tls`: "tls" (implicit) or "starttls" with this context; None for plain text."""

    def __init__(self, tls: str | None = None, context: ssl.SSLContext | None = None,
                 silent_after: bytes | None = None, stall_after_message: str | None = None,
                 stall_in_message: str | None = None) -> None:
        self.tls, self.context = tls, context
        self.silent_after, self.stall_after_message = silent_after, stall_after_message
        self.stall_in_message = stall_in_message
        self.stalled_in_message = False
        self.received: Counter[str] = Counter()
        self.commands: list[bytes] = []
        self.connections = 0
        self.event = threading.Condition()
        self.release = threading.Event()  # ends the silences
        self.listener = socket.socket()
        # A small receive buffer: a server that stops reading stops the client's
        # writes after a few kilobytes rather than megabytes.
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.port = int(self.listener.getsockname()[1])
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def __enter__(self) -> RawServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.listener.close()
        for each in self.sockets:
            with _quiet():
                each.close()

    def wait_for(self, test: object, seconds: float = 30) -> bool:
        with self.event:
            return self.event.wait_for(test, seconds)  # type: ignore[arg-type]

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed
                return
            self.sockets.append(client)
            with self.event:
                self.connections += 1
                self.event.notify_all()
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        with _quiet():
            if self.tls == "tls":
                assert self.context is not None
                sock = self.context.wrap_socket(sock, server_side=True)
                self.sockets.append(sock)
            self._session(sock)

    def _session(self, sock: socket.socket) -> None:
        reader = sock.makefile("rb")
        sock.sendall(b"220 raw test server\r\n")
        recipient = ""
        while line := reader.readline():
            verb = line[:4].lower()
            with self.event:
                self.commands.append(line)
                self.event.notify_all()
            if verb in (b"ehlo", b"helo"):
                offer = b"250-STARTTLS\r\n" if self.tls == "starttls" and \
                    not isinstance(sock, ssl.SSLSocket) else b""
                sock.sendall(b"250-raw\r\n" + offer + b"250 PIPELINING\r\n")
            elif verb == b"star":
                assert self.context is not None
                sock.sendall(b"220 go ahead\r\n")
                sock = self.context.wrap_socket(sock, server_side=True)
                self.sockets.append(sock)
                reader = sock.makefile("rb")
            elif verb == b"quit":
                sock.sendall(b"221 bye\r\n")
                return
            elif verb == b"data" and self.silent_after != b"data":
                sock.sendall(b"354 go on\r\n")
                self._message(reader, sock, recipient)
            elif verb == self.silent_after:
                self.release.wait()
                return
            else:
                if verb == b"rcpt":
                    recipient = line.split(b"<", 1)[1].split(b">", 1)[0].decode()
                sock.sendall(b"250 ok\r\n")

    def _message(self, reader: BinaryIO, sock: socket.socket, recipient: str) -> None:
        with self.event:
            stall = recipient == self.stall_in_message and not self.stalled_in_message
            self.stalled_in_message |= stall
        if stall:  # one line read, then nothing more: the client's write stops half-way
            reader.readline()
            with self.event:
                self.event.notify_all()
            self.release.wait()
            sock.close()
            return
        while reader.readline() not in (b".\r\n", b""):
            pass
        with self.event:
            self.received[recipient] += 1
            self.event.notify_all()
            stall = recipient == self.stall_after_message and \
                self.received[recipient] == 1
        if stall:  # the message is kept, but nothing more is read or answered here
            self.release.wait()
            sock.close()
            return
        sock.sendall(b"250 kept\r\n")


class _quiet:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, *exc: object) -> bool:
        return kind is not None and issubclass(kind, (OSError, ValueError))  # type: ignore[arg-type]


def _send_in_thread(transport: SmtpTransport, recipient: str, data: bytes,
                    then: tuple[str, str] | None = None) -> tuple[threading.Thread,
                                                                  list[Outcome]]:
    outcomes: list[Outcome] = []
    ahead = {"then": then} if then is not None else {}  # (main's send has no `then`)
    thread = threading.Thread(target=lambda: outcomes.append(
        transport.send(SENDER, recipient, data, **ahead)), daemon=True)
    thread.start()
    return thread, outcomes


@pytest.fixture
def authority(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Authority]:
    ca = Authority.create(tmp_path, "review CA")
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.path))
    yield ca


# -- 1. the kernel's timeouts do not apply to a TLS connection -----------------------------


@pytest.mark.parametrize("security", ["none", "tls", "starttls"])
@pytest.mark.parametrize("silent_after", [b"mail", b"data"])
def test_a_silent_server_times_out_with_and_without_tls(
        authority: Authority, tmp_path: Path, security: str, silent_after: bytes) -> None:
    """[smtp] timeout is 1 s; the server goes silent after MAIL (nothing sent yet) or
    after the message's whole DATA (its answer never comes). The send must give up
    within a few timeouts. Over TLS it never does: SO_RCVTIMEO makes the read fail with
    EAGAIN, which OpenSSL reports as SSL_ERROR_WANT_READ, and Python's ssl module, on a
    socket without a Python timeout (settimeout(None)), simply reads again, forever."""
    context = authority.server_context(tmp_path) if security != "none" else None
    with RawServer(tls=None if security == "none" else security, context=context,
                   silent_after=silent_after if silent_after == b"mail" else None,
                   stall_after_message="r@example.org" if silent_after == b"data"
                   else None) as server:
        cfg = settings_for(server.port, CITESMAIL_SMTP_SECURITY=security,
                           CITESMAIL_SMTP_TIMEOUT='"1s"')
        transport = SmtpTransport(cfg)
        thread, outcomes = _send_in_thread(transport, "r@example.org", b"Subject: x\r\n\r\nx")
        thread.join(8)  # eight times the timeout
        gave_up = not thread.is_alive()
        server.release.set()  # (lets a stuck client go: the server closes)
        thread.join(15)
    assert gave_up, f"the send still waits for a silent server ({security}) after 8 s " \
        "with a 1 s timeout"
    expected = "connection" if silent_after == b"mail" else "unknown"
    assert outcomes and outcomes[0].kind == expected


def test_a_send_over_tls_to_a_server_stuck_after_a_message_ends_and_can_be_stopped(
        db: Database, authority: Authority, tmp_path: Path) -> None:
    """The same through a run: the first message's answer never comes. With a 1 s
    timeout the run must mark it unknown and send the others; asked to stop, it must
    stop. Over TLS the connection's thread waits forever, the run with it (its stop
    waits for the messages in hand), and the row stays `sending` until the process is
    killed."""
    addresses = audience(db, tmp_path, 3)
    with RawServer(tls="tls", context=authority.server_context(tmp_path),
                   stall_after_message=addresses[0]) as server:
        cfg = settings_for(server.port, CITESMAIL_SMTP_SECURITY="tls",
                           CITESMAIL_SMTP_TIMEOUT='"1s"', CITESMAIL_DELIVERY_CONNECTIONS="1")
        outside = threading.Event()
        send_run = SendRun(db, start(db, cfg), cfg, lambda: make_transport(cfg),
                           stop=outside)
        results: list[RunResult] = []
        runner = threading.Thread(target=lambda: results.append(send_run.run()), daemon=True)
        runner.start()
        assert server.wait_for(lambda: server.received[addresses[0]] >= 1)
        runner.join(10)
        finished = not runner.is_alive()
        outside.set()  # asked to stop
        runner.join(5)
        stopped = not runner.is_alive()
        server.release.set()
        runner.join(15)
    assert finished, "the run still waits after 10 s with a 1 s timeout"
    assert stopped, "the run did not stop within 5 s of being asked"
    assert results and {k: n for k, n in results[0].counts.items() if n} == \
        {"sent": 2, "unknown": 1}


# -- 2. a write that fails after the message's end: the message is sent again -------------


def test_a_write_that_fails_in_the_envelope_written_ahead_does_not_send_the_message_again(
        ) -> None:
    """The message and the next envelope go in one sendall. When that write times out
    after the message's end (CRLF . CRLF) reached the server but before the whole next
    envelope did, the server has the message; yet the failure is taken for an idle
    connection's ('reused': the message is sent again at once on a new connection) or,
    on a new connection, for a connection problem (the row goes back to the queue). The
    next envelope is made long here so that the write stops in it every time; with an
    envelope of ordinary length the same happens whenever a slow server's window closes
    in its last hundred bytes."""
    with RawServer(stall_after_message="a@example.org") as server:
        cfg = settings_for(server.port, CITESMAIL_SMTP_TIMEOUT='"1s"')
        transport = SmtpTransport(cfg)
        first = transport.send(SENDER, "z@example.org", b"Subject: z\r\n\r\nz")
        assert first.kind == "sent"  # the connection is now one that was used before
        long_next = ("b" * 8_000_000) + "@example.org"  # the next envelope, written ahead
        thread, outcomes = _send_in_thread(transport, "a@example.org",
                                           b"Subject: a\r\n\r\na", then=(SENDER, long_next))
        assert server.wait_for(lambda: server.received["a@example.org"] >= 1)
        thread.join(30)
        transport.close()
        received = server.received["a@example.org"]
    assert not thread.is_alive()
    assert received == 1, f"a@example.org got the message {received} times"
    assert outcomes[0].kind == "unknown"  # the server may have it: never sent again


def test_a_write_cut_short_in_the_message_sends_it_again_once() -> None:
    """The other side of the same write: when it stops before the message's end left
    (the server stopped reading half-way), the server cannot have the message, and it
    goes again on a new connection, once, with the next envelope after it."""
    with RawServer(stall_in_message="a@example.org") as server:
        cfg = settings_for(server.port, CITESMAIL_SMTP_TIMEOUT='"1s"')
        transport = SmtpTransport(cfg)
        first = transport.send(SENDER, "z@example.org", b"Subject: z\r\n\r\nz")
        assert first.kind == "sent"
        body = b"Subject: a\r\n\r\n" + b"a" * 998 + (b"\r\n" + b"a" * 998) * 8_000
        thread, outcomes = _send_in_thread(transport, "a@example.org", body,
                                           then=(SENDER, "b@example.org"))
        thread.join(30)
        transport.close()
        received, connections = server.received["a@example.org"], server.connections
    assert not thread.is_alive()
    assert server.stalled_in_message and connections == 2
    assert received == 1
    assert outcomes[0].kind == "sent"
