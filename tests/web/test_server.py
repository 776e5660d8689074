"""A real `citesmail serve` process under hostile or careless clients: slow request
heads, and what its access log keeps."""

from __future__ import annotations

import email
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from email import policy
from pathlib import Path

import httpx
import pytest

from tests.cli.test_delivery_commands import with_audience
from tests.conftest import REPLAY, SECRET, run
from tests.smtp_server import free_port

CITESMAIL = Path(sys.executable).parent / "citesmail"


@dataclass
class Served:
    port: int
    log: Path
    links: list[str]  # the unsubscribe link of each message sent

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def serve(workspace: Path) -> Iterator[Callable[..., Served]]:
    """Sends REPLAY to the outbox, then starts `citesmail serve` with the given options;
    stops every server at the end."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(*options: str, recipients: int = 2) -> Served:
        port = free_port()
        env = {**os.environ, "CITESMAIL_SECRET": SECRET,
               "CITESMAIL_UNSUBSCRIBE_BASE_URL": f"http://127.0.0.1:{port}"}
        with_audience(workspace, recipients)
        assert run("send", REPLAY, "--yes", env=env).exit_code == 0
        links = [str(email.message_from_bytes(path.read_bytes(), policy=policy.default)
                     ["List-Unsubscribe"]).split(",")[0].strip()[1:-1]
                 for path in sorted((workspace / "outbox" / "new").iterdir())]
        log = workspace / "serve.log"
        with log.open("wb") as output:
            processes.append(subprocess.Popen(
                [str(CITESMAIL), "serve", "--port", str(port), *options], cwd=workspace,
                env=env, stdout=output, stderr=subprocess.STDOUT))
        served = Served(port, log, links)
        wait_for_server(served, processes[-1])
        return served

    yield start
    for process in processes:
        process.terminate()
        process.wait(timeout=30)


def wait_for_server(served: Served, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, served.log.read_text(encoding="utf-8")
        try:
            socket.create_connection(("127.0.0.1", served.port), timeout=5).close()
            return
        except ConnectionRefusedError:
            assert time.monotonic() < deadline, "citesmail serve did not start"
            time.sleep(0.05)


def open_slow_clients(stack: ExitStack, port: int, n: int) -> list[socket.socket]:
    """n connections that start a request and never finish its head."""
    sockets = []
    for i in range(n):
        client = stack.enter_context(socket.create_connection(("127.0.0.1", port)))
        client.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n" if i % 2 else b"GET /u/")
        sockets.append(client)
    return sockets


def test_slow_clients_do_not_shut_out_real_ones(serve: Callable[..., Served]) -> None:
    served = serve("--header-timeout", "600")  # they all stay for the whole test
    with ExitStack() as stack:
        slow = open_slow_clients(stack, served.port, 300)
        with httpx.Client(base_url=served.base, timeout=30) as client:
            paths = [link.removeprefix(served.base) for link in served.links]
            answers = [client.get(paths[i % len(paths)]) for i in range(50)]
        assert [answer.status_code for answer in answers] == [200] * 50
        assert all("Me désabonner" in answer.text for answer in answers)
        slow[0].setblocking(False)
        with pytest.raises(BlockingIOError):  # still open, still waiting
            slow[0].recv(1)


def test_a_request_head_that_takes_too_long_is_cut(serve: Callable[..., Served]) -> None:
    served = serve("--header-timeout", "0.5")
    with ExitStack() as stack:
        [started, line_only] = open_slow_clients(stack, served.port, 2)
        for client in (started, line_only):
            client.settimeout(30)  # far beyond the deadline: only a failure waits this long
            assert client.recv(1) == b""  # closed by the server, nothing answered
    # Complete requests are answered, one after the other on one connection.
    with httpx.Client(base_url=served.base, timeout=30) as client:
        path = served.links[0].removeprefix(served.base)
        assert client.get(path).status_code == 200
        assert client.get(path).status_code == 200


def test_a_request_body_that_trickles_in_is_cut(serve: Callable[..., Served]) -> None:
    """Complete headers, then a body that never ends: as slow a client as a slow head."""
    served = serve("--header-timeout", "0.5")
    path = served.links[0].removeprefix(served.base)
    with socket.create_connection(("127.0.0.1", served.port)) as client:
        client.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                       "application/x-www-form-urlencoded\r\nContent-Length: 26\r\n\r\n"
                       "List-".encode("ascii"))
        client.settimeout(30)  # far beyond the deadline: only a failure waits this long
        answer = client.recv(4096)
    assert answer == b"" or answer.startswith(b"HTTP/1.1 4"), answer  # cut, not served
    with httpx.Client(base_url=served.base, timeout=30) as client:  # a whole one is fine
        done = client.post(path, content=b"List-Unsubscribe=One-Click")
        assert done.status_code == 200


def test_the_access_log_keeps_no_link_token(serve: Callable[..., Served]) -> None:
    """Whoever reads the log must not find links that unsubscribe or show someone's mail."""
    served = serve()
    with httpx.Client(base_url=served.base, timeout=30) as client:
        for link in served.links:
            path = link.removeprefix(served.base)
            assert client.get(path).status_code == 200
            assert client.get(path.replace("/u/", "/v/") + "?x=1").status_code == 200
            assert client.post(path, content=b"List-Unsubscribe=One-Click").status_code == 200
    log = served.log.read_text(encoding="utf-8")
    for link in served.links:
        token = link.rsplit("/", 1)[1]
        assert token not in log and token.split(".")[0] not in log
    for line in ('"GET /u/… HTTP/1.1" 200', '"GET /v/…?x=1 HTTP/1.1" 200',
                 '"POST /u/… HTTP/1.1" 200'):
        assert log.count(line) == len(served.links), log


def test_the_access_log_hides_confirmation_tokens_but_names_sign_up_lists() -> None:
    import logging

    from citesmail.web.server import RedactTokens

    def logged(path: str) -> str:
        record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1,
                                   '%s - "%s %s HTTP/%s" %d',
                                   ("127.0.0.1:5000", "POST", path, "1.1", 200), None)
        RedactTokens().filter(record)
        return str(record.args[2])  # type: ignore[index]

    assert logged("/confirm/eyJhIjoxfQ.c2lnbmF0dXJl") == "/confirm/…"
    assert logged("/s/actu") == "/s/actu"
    assert logged("/u/abc.def") == "/u/…"
