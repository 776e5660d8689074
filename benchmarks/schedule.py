"""Schedule benchmark: latency from a scheduled send's due time to its first message
accepted by a local SMTP server, with one real `citesmail worker` process.

Run from the repository root:
    .venv/bin/python benchmarks/schedule.py [--quick] [--write-docs]
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from report import DOCS, compile_bytecode, markdown_table, text_table, write_section

NAME = "2023-06-12-replay-cites-de-l-emploi"
CITESMAIL = Path(".venv/bin/citesmail").resolve()
TARGET_MS, SPACING_S, RECIPIENTS = 1000.0, 2, 3
LIST_ID = re.compile(rb"<(bench-\d+)\.")
LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) UTC INFO (bench-\d+): "
                      r"starting", re.MULTILINE)

Row = tuple[str, str, str, str, str, str]
HEADER: Row = ("measurement", "median", "p90", "max", "target", "verdict")


class Handler:
    """Records, per campaign (from List-Id), when each message was accepted."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.accepted: dict[str, list[float]] = {}

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        now = time.time()
        match = LIST_ID.search(envelope.original_content.split(b"\r\n\r\n", 1)[0])
        with self.lock:
            self.accepted.setdefault(match.group(1).decode() if match else "?", []).append(now)
        return "250 OK queued"


def machine_line() -> str:
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    cpu = re.search(r"^model name\s*:\s*(.+)$", info, re.MULTILINE)
    model = cpu.group(1).strip() if cpu else platform.processor() or "unknown CPU"
    return (f"{platform.platform()}; {model}; {os.cpu_count()} cores; "
            f"Python {platform.python_version()}; APScheduler {version('APScheduler')}; "
            f"SQLite {sqlite3.sqlite_version}; aiosmtpd {version('aiosmtpd')}")


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def cli(workspace: Path, env: dict[str, str], *args: str) -> str:
    result = subprocess.run([str(CITESMAIL), *args], cwd=workspace, env=env,
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"citesmail {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def prepare(workspace: Path, env: dict[str, str], n: int) -> list[str]:
    cli(workspace.parent, env, "init", str(workspace))
    addresses = "\n".join(f"p{i}@example.org" for i in range(RECIPIENTS))
    (workspace / "c.csv").write_text(f"email\n{addresses}\n", encoding="utf-8")
    cli(workspace, env, "lists", "add", "aura")
    cli(workspace, env, "contacts", "import", "c.csv", "--list", "aura")
    cli(workspace, env, "segments", "add", "partenaires-aura", "--list", "aura")
    source = workspace / "campaigns" / f"{NAME}.md"  # the example `citesmail init` writes
    names = [f"bench-{i:02d}" for i in range(n)]
    for name in names:
        shutil.copy(source, workspace / "campaigns" / f"{name}.md")
    return names


def wait_until(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


def schedule_all(workspace: Path, env: dict[str, str], names: list[str]) -> dict[str, float]:
    """Schedule every campaign before the first one is due; returns the due epochs."""
    started = time.monotonic()
    cli(workspace, env, "schedules")  # one cold CLI call, to size the lead time
    per_call = time.monotonic() - started
    base = math.ceil(time.time() + 3 + 1.5 * per_call * len(names))
    due: dict[str, float] = {}
    for i, name in enumerate(names):
        at = base + SPACING_S * i
        text = datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")
        cli(workspace, env, "schedule", name, "--at", text, "--tz", "UTC")
        due[name] = float(at)
    if time.time() >= base:
        print("warning: scheduling ran past the first due time; the first sends overlap it")
    return due


def run(n: int) -> tuple[dict[str, float], dict[str, float], dict[str, float], str]:
    """(due epochs, first accepted epochs, 'starting' log epochs, worker output)."""
    handler = Handler()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    env = {**os.environ, "CITESMAIL_DELIVERY_TRANSPORT": "smtp",
           "CITESMAIL_SMTP_HOST": "127.0.0.1", "CITESMAIL_SMTP_PORT": str(port),
           "CITESMAIL_SMTP_SECURITY": "none",
           "CITESMAIL_SECRET": "benchmark-secret-of-at-least-32-bytes",
           "CITESMAIL_SCHEDULE_TIMEZONE": "UTC"}  # the worker logs its times in UTC
    worker: subprocess.Popen[str] | None = None
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="citesmail-bench-schedule-") as tmp:
        workspace = Path(tmp) / "ws"
        controller.start()
        try:
            names = prepare(workspace, env, n)
            worker = process = subprocess.Popen(
                [str(CITESMAIL), "worker"], cwd=workspace, env=env, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, text=True)
            reader = threading.Thread(target=lambda: lines.extend(process.stdout or []))
            reader.start()
            if not wait_until(lambda: any("worker started" in x for x in lines), 30):
                raise RuntimeError(f"the worker did not start: {''.join(lines)[-800:]}")
            due = schedule_all(workspace, env, names)
            wait_until(lambda: all(name in handler.accepted for name in names),
                       max(due.values()) + 20 - time.time())
            time.sleep(0.5)
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=30)
            reader.join(timeout=5)
        finally:
            if worker is not None and worker.poll() is None:
                worker.kill()
                worker.wait()
            controller.stop()
    output = "".join(lines)
    first = {name: min(times) for name, times in handler.accepted.items()}
    starting = {name: datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f")
                .replace(tzinfo=datetime.UTC).timestamp()
                for stamp, name in LOG_LINE.findall(output)}
    return due, first, starting, output


def row(label: str, due: dict[str, float], seen: dict[str, float], target: bool) -> Row:
    """Median, p90 (nearest rank) and max of seen - due, in ms."""
    ms = sorted((seen[name] - at) * 1000 for name, at in due.items() if name in seen)
    if not ms:
        return (label, "", "", "", "", f"none of {len(due)} seen")
    median, p90 = statistics.median(ms), ms[max(0, math.ceil(0.9 * len(ms)) - 1)]
    verdict = ("within target" if median <= TARGET_MS else "OVER target") if target else ""
    if len(ms) < len(due):
        verdict = f"{verdict}; {len(due) - len(ms)} of {len(due)} not seen".lstrip("; ")
    return (f"{label} (n={len(ms)})", f"{median:.0f} ms", f"{p90:.0f} ms", f"{ms[-1]:.0f} ms",
            f"{TARGET_MS / 1000:g} s (median)" if target else "", verdict)


def section(rows: list[Row], machine: str, n: int, loads: tuple[str, str]) -> str:
    today = datetime.date.today().isoformat()
    return (f"## Schedule\n\nOne `citesmail worker` process (SQLite job store, SMTP transport "
            f"to an aiosmtpd server on 127.0.0.1 in the benchmark process) runs {n} copies of "
            f"`campaigns/{NAME}.md`, each to a segment of {RECIPIENTS} contacts, all scheduled "
            f"with `citesmail schedule --at ... --tz UTC` before the first is due, due times "
            f"{SPACING_S} s apart. Latency is the server's acceptance time of a campaign's "
            f"first message (found by its List-Id) minus its due time; the second row uses "
            f"the timestamp of the worker's `starting` log line (millisecond resolution). "
            f"Median, p90 (nearest rank) and max over the campaigns. Load average "
            f"(1/5/15 min) before: {loads[0]}, after: {loads[1]}. Rerun with "
            f"`.venv/bin/python benchmarks/schedule.py --write-docs`.\n\n"
            f"Machine: {machine}\n\nDate: {today}\n\n{markdown_table(HEADER, rows)}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 campaigns instead of 20")
    parser.add_argument("--write-docs", action="store_true",
                        help=f"rewrite ## Schedule in {DOCS}")
    args = parser.parse_args()
    n = 5 if args.quick else 20
    machine = machine_line()
    compile_bytecode()
    print(f"Machine: {machine}\n", flush=True)
    before = load()
    due, first, starting, output = run(n)
    after = load()
    print(f"load average before: {before}, after: {after}\n")
    rows = [row("Due time -> first message accepted", due, first, True),
            row("Due time -> worker 'starting' log line", due, starting, False)]
    print(text_table(HEADER, rows))
    if any(name not in first for name in due):
        print(f"\nworker output (tail):\n{output[-1500:]}")
    if args.write_docs:
        write_section("Schedule", section(rows, machine, n, (before, after)))
        print(f"\nwrote {DOCS}")


if __name__ == "__main__":
    main()
