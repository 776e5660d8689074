"""Takeover benchmark: two `citesmail worker` processes on PostgreSQL; the active one is
killed (SIGKILL) a second before a send is due, ten times. Measured: kill -> the standby
logs that it took over, and due time -> the send's first message accepted by a local
SMTP server. A fresh worker is started after each kill, to be the next standby.

Run from the repository root, with a PostgreSQL server (a schema of its own is made and
dropped):
    CITESMAIL_TEST_PG_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \\
        .venv/bin/python benchmarks/takeover.py [--kills N] [--write-docs]
"""

from __future__ import annotations

import argparse
import datetime
import os
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aiosmtpd.controller import Controller
from sqlalchemy import create_engine, text

from report import DOCS, compile_bytecode, markdown_table, text_table, write_section
from schedule import CITESMAIL, Handler, cli, load, machine_line, prepare, wait_until

TARGET_S = 30.0  # [schedule] takeover, the default: the benchmark runs with it
LEAD_S = 1.0  # the kill comes this long before the due time
Row = tuple[str, str, str, str, str]
HEADER: Row = ("measurement", "median", "max", "target", "verdict")


class Worker:
    """A worker process; each log line is kept with the time it was read."""

    def __init__(self, workspace: Path, env: dict[str, str]) -> None:
        self.process = subprocess.Popen([str(CITESMAIL), "worker"], cwd=workspace, env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True)
        self.lines: list[tuple[float, str]] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout or []:
            self.lines.append((time.time(), line))

    def when(self, words: str, seconds: float = 60) -> float:
        wait_until(lambda: any(words in line for _, line in self.lines), seconds)
        for moment, line in self.lines:
            if words in line:
                return moment
        raise RuntimeError(f"no {words!r} in: {''.join(x for _, x in self.lines)[-800:]}")

    def end(self, sig: int) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        self.process.wait(timeout=60)
        self.reader.join(5)
        if self.process.stdout:
            self.process.stdout.close()


@contextmanager
def schema(url: str) -> Iterator[str]:
    name = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{name}"'))
    try:
        yield f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{name}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
        admin.dispose()


def rounds(url: str, kills: int) -> tuple[list[float], list[float]]:
    """(kill -> 'taking over' seconds, due -> first accepted seconds) per kill."""
    handler = Handler()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    env = {**os.environ, "CITESMAIL_DELIVERY_TRANSPORT": "smtp",
           "CITESMAIL_SMTP_HOST": "127.0.0.1", "CITESMAIL_SMTP_PORT": str(port),
           "CITESMAIL_SMTP_SECURITY": "none", "CITESMAIL_DATABASE_URL": f'"{url}"',
           "CITESMAIL_SECRET": "benchmark-secret-of-at-least-32-bytes",
           "CITESMAIL_SCHEDULE_TIMEZONE": "UTC"}
    took, late = [], []
    workers: list[Worker] = []
    with tempfile.TemporaryDirectory(prefix="citesmail-bench-takeover-") as tmp:
        workspace = Path(tmp) / "ws"
        controller.start()
        try:
            names = prepare(workspace, env, kills)
            workers = [Worker(workspace, env)]
            workers[0].when("worker started")
            for name in names:
                active, standby = workers[-1 if len(workers) > 1 else 0], Worker(workspace, env)
                workers.append(standby)
                standby.when("standby: another worker is active")
                due = int(time.time()) + 10  # the schedule command takes seconds
                at = datetime.datetime.fromtimestamp(due, datetime.UTC)
                cli(workspace, env, "schedule", name, "--at", f"{at:%Y-%m-%d %H:%M:%S}",
                    "--tz", "UTC")
                time.sleep(max(due - LEAD_S - time.time(), 0))  # what is measured: a kill
                killed = time.time()
                active.end(signal.SIGKILL)
                took.append(standby.when("taking over: the active", TARGET_S * 2) - killed)
                wait_until(lambda n=name: n in handler.accepted, TARGET_S * 2)  # type: ignore[misc]
                late.append(min(handler.accepted.get(name, [float("nan")])) - due)
                workers = [standby]
        finally:
            for worker in workers:
                worker.end(signal.SIGTERM)
            controller.stop()
    return took, late


def row(label: str, seconds: list[float], target: bool) -> Row:
    values = sorted(seconds)
    median, worst = statistics.median(values), values[-1]
    verdict = ("within target" if worst <= TARGET_S else "OVER target") if target else ""
    return (f"{label} (n={len(values)})", f"{median:.2f} s", f"{worst:.2f} s",
            f"{TARGET_S:g} s (max)" if target else "", verdict)


def section(rows: list[Row], machine: str, kills: int, loads: tuple[str, str]) -> str:
    today = datetime.date.today().isoformat()
    return (f"## Standby takeover\n\nTwo `citesmail worker` processes on one PostgreSQL "
            f"database (a schema of its own), with the default `[schedule] takeover = "
            f"\"30s\"`; SMTP to an aiosmtpd server on 127.0.0.1 in the benchmark process. "
            f"{kills} times: a campaign (3 contacts) is scheduled 10 s ahead, the active worker "
            f"is killed with SIGKILL {LEAD_S:g} s before its due time, and a new worker is "
            f"started to be the next standby. First row: from the kill to the standby's "
            f"`taking over` log line (read by the benchmark). Second row: from the due "
            f"time to the first message of that send accepted by the server (the send "
            f"still starts on time). A killed process's session ends at once (the kernel "
            f"closes its socket), so the takeover is the standby's poll (1 s at most) and "
            f"its start; a machine or network gone is bounded by the keepalives instead "
            f"(21 s with the default, see delivery.md). Load average (1/5/15 min) before: "
            f"{loads[0]}, after: {loads[1]}. Rerun with `CITESMAIL_TEST_PG_URL=... "
            f".venv/bin/python benchmarks/takeover.py --write-docs`.\n\n"
            f"Machine: {machine}\n\nDate: {today}\n\n{markdown_table(HEADER, rows)}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--write-docs", action="store_true",
                        help=f"rewrite ## Standby takeover in {DOCS}")
    args = parser.parse_args()
    url = os.environ.get("CITESMAIL_TEST_PG_URL")
    if not url:
        raise SystemExit("set CITESMAIL_TEST_PG_URL to a PostgreSQL database")
    machine = machine_line()
    compile_bytecode()
    print(f"Machine: {machine}\n", flush=True)
    before = load()
    with schema(url) as scoped:
        took, late = rounds(scoped, args.kills)
    after = load()
    print(f"load average before: {before}, after: {after}\n")
    rows = [row("SIGKILL of the active worker -> standby 'taking over'", took, True),
            row("Due time -> first message accepted (kill 1 s before)", late, False)]
    print(text_table(HEADER, rows))
    if args.write_docs:
        write_section("Standby takeover", section(rows, machine, args.kills, (before, after)))
        print(f"\nwrote {DOCS}")


if __name__ == "__main__":
    main()
