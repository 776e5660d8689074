"""Sign-ups through a real `citesmail serve` on SQLite: POSTs per second and their p99
with several clients at once; and from a POST to its confirmation accepted by an SMTP
server on 127.0.0.1 (aiosmtpd), p50 and p95 (target p95 <= 2 s).

Run from the repository root:
    .venv/bin/python benchmarks/signup.py [--posts 2000] [--clients 8] [--latency 200]
        [--write-docs]
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.controller import Controller

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.smtp_server import free_port  # noqa: E402

from lifecycle import machine_line  # noqa: E402
from report import compile_bytecode, markdown_table, text_table, write_section  # noqa: E402

CITESMAIL = Path(sys.executable).parent / "citesmail"
SECRET = "a-benchmark-secret-of-more-than-32-bytes"


class Arrivals:
    """An SMTP handler that notes when each recipient's message was accepted."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.changed = threading.Condition()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.changed:
            for recipient in envelope.rcpt_tos:
                self.at[recipient] = time.perf_counter()
            self.changed.notify_all()
        return "250 OK"

    def wait(self, recipient: str, seconds: float = 60) -> float:
        with self.changed:
            self.changed.wait_for(lambda: recipient in self.at, seconds)
            return self.at[recipient]


def workspace(folder: Path) -> Path:
    ws = folder / "ws"
    (ws / "campaigns").mkdir(parents=True)
    shutil.copy(ROOT / "config.example.toml", ws / "config.toml")
    subprocess.run([str(CITESMAIL), "lists", "add", "actu", "--public"], cwd=ws, check=True,
                   capture_output=True)
    return ws


def start_serve(ws: Path, relay: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "CITESMAIL_SECRET": SECRET, "CITESMAIL_UNSUBSCRIBE_BASE_URL": base,
           "CITESMAIL_DELIVERY_TRANSPORT": "smtp", "CITESMAIL_SMTP_HOST": "127.0.0.1",
           "CITESMAIL_SMTP_PORT": str(relay), "CITESMAIL_SMTP_SECURITY": "none",
           "CITESMAIL_SUBSCRIBE_RATE_PER_IP": "100000"}
    server = subprocess.Popen([str(CITESMAIL), "serve", "--port", str(port)], cwd=ws, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"{base}/s/actu")
            return server, base
        except httpx.ConnectError:
            if time.monotonic() > deadline:
                raise SystemExit("citesmail serve did not start") from None
            time.sleep(0.1)


def post(client: httpx.Client, base: str, address: str) -> float:
    start = time.perf_counter()
    answer = client.post(f"{base}/s/actu", headers={"origin": base}, data={
        "email": address, "lists": "actu", "consent": "yes", "website": ""})
    if answer.status_code != 200:
        raise SystemExit(f"POST answered {answer.status_code}")
    return time.perf_counter() - start


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * share), len(ordered) - 1)]


def measure(posts: int, clients: int, latency: int) -> list[list[str]]:
    with tempfile.TemporaryDirectory(prefix="citesmail-signup-") as tmp:
        ws = workspace(Path(tmp))
        arrivals = Arrivals()
        relay = Controller(arrivals, hostname="127.0.0.1", port=free_port())
        relay.start()
        server, base = start_serve(ws, relay.port)
        try:
            local = threading.local()

            def one(number: int) -> float:
                if not hasattr(local, "client"):
                    local.client = httpx.Client()
                return post(local.client, base, f"load{number}@example.org")

            start = time.perf_counter()
            with ThreadPoolExecutor(clients) as pool:
                times = list(pool.map(one, range(posts)))
            elapsed = time.perf_counter() - start
            arrivals.wait(f"load{posts - 1}@example.org", 600)  # the queue drained
            delays = []
            with httpx.Client() as client:
                for number in range(latency):  # one at a time, as people sign up
                    address = f"person{number}@example.org"
                    begun = time.perf_counter()
                    post(client, base, address)
                    delays.append(arrivals.wait(address) - begun)
        finally:
            server.terminate()
            server.wait(timeout=30)
            relay.stop()
    return [
        [f"{posts:,} sign-up POSTs, {clients} clients at once", f"{posts / elapsed:.0f} /s",
         f"p50 {statistics.median(times) * 1e3:.0f} ms, "
         f"p99 {percentile(times, 0.99) * 1e3:.0f} ms"],
        [f"POST to confirmation accepted by SMTP, {latency} one at a time", "—",
         f"p50 {statistics.median(delays) * 1e3:.0f} ms, "
         f"p95 {percentile(delays, 0.95) * 1e3:.0f} ms"],
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--latency", type=int, default=200)
    parser.add_argument("--write-docs", action="store_true",
                        help="rewrite ## Sign-up in docs/performance.md")
    options = parser.parse_args()
    compile_bytecode()
    rows = measure(options.posts, options.clients, options.latency)
    header = ["what", "throughput", "time"]
    print(text_table(header, rows))
    machine = machine_line()
    print(machine)
    if options.write_docs:
        write_section("Sign-up", (
            "## Sign-up\n\n"
            "A real `citesmail serve` on SQLite, its confirmations sent by its thread to "
            "aiosmtpd on 127.0.0.1. First many sign-ups posted by several clients at once "
            "(each a new address; the confirmations are sent meanwhile); then sign-ups one "
            "at a time, each timed from the POST to its confirmation accepted by the SMTP "
            "server (target p95 ≤ 2 s). Rerun with "
            "`.venv/bin/python benchmarks/signup.py --write-docs`.\n\n"
            f"Machine: {machine}\n\nDate: {datetime.date.today().isoformat()}\n\n"
            + markdown_table(header, rows) + "\n"))


if __name__ == "__main__":
    main()
