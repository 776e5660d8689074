"""Serve benchmark: real requests to `citesmail serve` while slow clients hold hundreds of
connections open with a request head they never finish.

Run from the repository root:
    .venv/bin/python benchmarks/serve.py [--quick] [--write-docs]
"""

from __future__ import annotations

import argparse
import datetime
import email
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from email import policy
from importlib.metadata import version
from pathlib import Path

import httpx

from report import DOCS, compile_bytecode, markdown_table, text_table, write_section

NAME = "2023-06-12-replay-cites-de-l-emploi"
CITESMAIL = Path(".venv/bin/citesmail").resolve()
SECRET = "benchmark-secret-of-at-least-32-bytes"
SLOW, TARGET_S = 300, 1.0
# The public app as `citesmail serve` ran it before: uvicorn's defaults (h11, no deadline
# for a request's head) and limit_concurrency=200, which counts idle connections too.
FORMER_SERVE = """
import sys, uvicorn
from citesmail.config import load_settings
from citesmail.db import open_database
from citesmail.web.public import create_public_app
settings = load_settings(None)
app = create_public_app(settings, open_database(settings.database_url))
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
            server_header=False, proxy_headers=True, limit_concurrency=200)
"""

Row = tuple[str, str, str, str, str, str]
HEADER: Row = ("measurement", "answered 200", "median", "p99", "target/reference", "verdict")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cli(cwd: Path, env: dict[str, str], *args: str) -> None:
    result = subprocess.run([str(CITESMAIL), *args], cwd=cwd, env=env, capture_output=True,
                            text=True)
    if result.returncode != 0:
        raise RuntimeError(f"citesmail {' '.join(args)}: {result.stderr.strip()}")


def prepare(root: Path, env: dict[str, str]) -> tuple[Path, str]:
    """A workspace whose campaign went to the outbox; the path of one unsubscribe link."""
    workspace = root / "ws"
    cli(root, env, "init", str(workspace))
    (workspace / "c.csv").write_text("email\np0@example.org\n", encoding="utf-8")
    cli(workspace, env, "lists", "add", "aura")
    cli(workspace, env, "contacts", "import", "c.csv", "--list", "aura")
    cli(workspace, env, "segments", "add", "partenaires-aura", "--list", "aura")
    cli(workspace, env, "send", NAME, "--yes")
    [path] = (workspace / "outbox" / "new").iterdir()
    message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    link = str(message["List-Unsubscribe"]).split(",")[0].strip()[1:-1]
    return workspace, "/u/" + link.split("/u/", 1)[1]


def wait_for(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
            return
        except ConnectionRefusedError:
            time.sleep(0.05)


def measure(command: list[str], workspace: Path, env: dict[str, str], path: str,
            slow: int, requests: int) -> tuple[int, list[float]]:
    """(requests answered 200, seconds per request), each on a new connection as browsers
    and mail clients come, while `slow` connections hold a half-sent request head."""
    port = free_port()
    server = subprocess.Popen([*command, str(port)], cwd=workspace, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(port, server)
        with ExitStack() as stack:
            for _ in range(slow):
                client = stack.enter_context(socket.create_connection(("127.0.0.1", port)))
                client.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            ok, seconds = 0, []
            fresh = stack.enter_context(httpx.Client(  # a new connection for each request
                timeout=30, limits=httpx.Limits(max_keepalive_connections=0)))
            for _ in range(requests):
                started = time.perf_counter()
                response = fresh.get(f"http://127.0.0.1:{port}{path}")
                seconds.append(time.perf_counter() - started)
                ok += response.status_code == 200
        return ok, seconds
    finally:
        server.terminate()
        server.wait(timeout=30)


def row(label: str, ok: int, seconds: list[float], reference: str, verdict: str) -> Row:
    ordered = sorted(seconds)
    p99 = ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]
    return (label, f"{ok} of {len(seconds)}", f"{statistics.median(ordered) * 1000:.1f} ms",
            f"{p99 * 1000:.1f} ms", reference, verdict)


def machine_line() -> str:
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines()
                  if line.startswith("model name")), platform.processor() or "unknown CPU")
    return (f"{platform.platform()}; {model}; {os.cpu_count()} cores; "
            f"Python {platform.python_version()}; uvicorn {version('uvicorn')}; "
            f"h11 {version('h11')}; starlette {version('starlette')}")


def rows(requests: int) -> list[Row]:
    env = {**os.environ, "CITESMAIL_SECRET": SECRET,
           "CITESMAIL_UNSUBSCRIBE_BASE_URL": "http://127.0.0.1"}
    with tempfile.TemporaryDirectory() as folder:
        workspace, path = prepare(Path(folder), env)
        serve = [str(CITESMAIL), "serve", "--port"]
        former = [sys.executable, "-c", FORMER_SERVE]
        quiet = measure(serve, workspace, env, path, 0, requests)
        loaded = measure(serve, workspace, env, path, SLOW, requests)
        before = measure(former, workspace, env, path, SLOW, requests)
    base = row("citesmail serve, no slow client", *quiet, "reference", "")
    p99 = sorted(loaded[1])[max(0, math.ceil(0.99 * len(loaded[1])) - 1)]
    within = loaded[0] == requests and p99 < TARGET_S
    return [base,
            row(f"citesmail serve, {SLOW} slow clients", *loaded,
                f"p99 < {TARGET_S:g} s, all answered",
                "within target" if within else "OVER target"),
            row(f"former serve (limit_concurrency=200), {SLOW} slow clients", *before,
                "—", "the defect: 503 Service Unavailable" if before[0] < requests else "")]


def section(table: list[Row], machine: str, requests: int) -> str:
    today = datetime.date.today().isoformat()
    return (f"## Serve under slow clients\n\n`citesmail serve` runs uvicorn's h11 protocol "
            f"with a deadline for each request's head (`--header-timeout`, 10 s by default): "
            f"a connection that has not sent its request line and headers in time is "
            f"closed. It sets no `limit_concurrency`: uvicorn counts idle connections against "
            f"it, so 200 clients that never finished a request made every real request a "
            f"503. A reverse proxy in front should still cap connections per client. "
            f"Measured: {SLOW} connections each send `GET / HTTP/1.1` and one header, then "
            f"nothing (they stay open for the whole run, as the deadline is not reached); "
            f"meanwhile {requests} GET requests of an unsubscribe page, one after the other, "
            f"each on a new connection. The last row runs the public app as serve did before "
            f"(uvicorn defaults, `limit_concurrency=200`). Rerun with "
            f"`.venv/bin/python benchmarks/serve.py --write-docs`.\n\n"
            f"Machine: {machine}\n\nDate: {today}\n\n{markdown_table(HEADER, table)}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50 requests instead of 500")
    parser.add_argument("--write-docs", action="store_true",
                        help=f"rewrite ## Serve under slow clients in {DOCS}")
    args = parser.parse_args()
    requests = 50 if args.quick else 500
    machine = machine_line()
    compile_bytecode()
    print(f"Machine: {machine}\n", flush=True)
    table = rows(requests)
    print(text_table(HEADER, table))
    if args.write_docs:
        write_section("Serve under slow clients", section(table, machine, requests))
        print(f"\nwrote {DOCS}")


if __name__ == "__main__":
    main()
