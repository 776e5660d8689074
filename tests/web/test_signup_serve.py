"""Sign-up through a real `citesmail serve` and a real SMTP server: the confirmation
leaves from serve's sender thread, waits while the relay is down, and its link confirms."""

from __future__ import annotations

import os
import queue
import subprocess
import threading
import time
from email import message_from_bytes, policy
from pathlib import Path

import httpx
from aiosmtpd.controller import Controller

from tests.cli.test_delivery_commands import smtp_env
from tests.conftest import run
from tests.smtp_server import Handler, free_port
from tests.web.test_public import CITESMAIL

WAIT = 60.0  # seconds at most for each awaited event, on a busy machine


def lines_of(stream: object) -> queue.Queue[str]:
    found: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in stream:  # type: ignore[attr-defined]
            found.put(line)

    threading.Thread(target=read, daemon=True).start()
    return found


def wait_for_line(lines: queue.Queue[str], part: str) -> str:
    deadline = time.monotonic() + WAIT
    while True:
        line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
        if part in line:
            return line


def wait_until_up(url: str) -> None:
    deadline = time.monotonic() + WAIT
    while True:
        try:
            httpx.get(url)
            return
        except httpx.ConnectError:
            assert time.monotonic() < deadline, "citesmail serve did not start"
            time.sleep(0.1)


def status_line(address: str) -> list[str]:
    shown = run("contacts", "show", address).stdout
    return [line for line in shown.splitlines() if line.startswith(("status:", "lists:"))]


def test_sign_up_through_serve_while_the_relay_is_down_then_up(workspace: Path) -> None:
    assert run("lists", "add", "actu", "--public", "--title", "Actualités").exit_code == 0
    port, relay = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, **smtp_env(relay), "CITESMAIL_UNSUBSCRIBE_BASE_URL": base}
    server = subprocess.Popen([str(CITESMAIL), "serve", "--port", str(port)], cwd=workspace,
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True)
    handler = Handler()
    controller = Controller(handler, hostname="127.0.0.1", port=relay)
    try:
        log = lines_of(server.stderr)
        wait_until_up(f"{base}/s/actu")
        answer = httpx.post(f"{base}/s/actu", headers={"origin": base}, data={
            "email": "camille@example.org", "lists": "actu", "consent": "yes",
            "website": ""})
        assert answer.status_code == 200
        assert "deferred (try 1)" in wait_for_line(log, "confirmation 1:")  # relay down
        controller.start()
        wait_for_line(log, "confirmation 1: sent")
        assert handler.received["camille@example.org"] == 1
        message = message_from_bytes(handler.messages[0], policy=policy.default)
        text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        url = next(word for word in text.split() if word.startswith(f"{base}/confirm/"))
        assert status_line("camille@example.org")[0].split()[1] == "pending"
        page = httpx.get(url)
        assert page.status_code == 200 and 'method="post"' in page.text
        done = httpx.post(url, data={"confirm": "1"})
        assert done.status_code == 200
        status, lists = status_line("camille@example.org")
        assert status.split()[1] == "active" and "actu" in lists
    finally:
        server.terminate()
        server.wait(timeout=30)
        assert server.stderr is not None
        server.stderr.close()
        if controller.loop.is_running():
            controller.stop()
