"""Takeover benchmark: two `citesmail worker` processes on PostgreSQL; a second before a
send is due, the active one is killed (SIGKILL), ten times, then cut from the database
(iptables drops its packets to and from 127.0.0.1:5432), ten times. Measured: the kill
or cut -> the standby logs that it took over, and due time -> the send's first message
accepted by a local SMTP server; for a cut, also when the cut worker says it lost its
lock (before the standby takes over, or two schedulers were active). After a kill a
fresh worker is started to be the next standby; after a cut the network is restored
and the cut worker, waiting as a standby again, is the next one.

Run from the repository root as root (the cuts: iptables and a cgroup per worker; a
chain of its own, removed after), with a PostgreSQL server on 127.0.0.1:5432 (a schema
of its own is made and dropped):
    CITESMAIL_TEST_PG_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \\
        .venv/bin/python benchmarks/takeover.py [--kills N] [--cuts N] [--write-docs]
"""

from __future__ import annotations

import argparse
import datetime
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from aiosmtpd.controller import Controller
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.netcut import CutUnavailable, NetworkCut  # noqa: E402  (the test's cut)

from report import DOCS, compile_bytecode, markdown_table, text_table, write_section  # noqa: E402
from schedule import (  # noqa: E402
    CITESMAIL,
    Handler,
    cli,
    load,
    machine_line,
    prepare,
    wait_until,
)

TARGET_S = 30.0  # [schedule] takeover, the default: the benchmark runs with it
LEAD_S = 1.0  # the kill or cut comes this long before the due time
Row = tuple[str, str, str, str, str]
HEADER: Row = ("measurement", "median", "max", "target", "verdict")


class Worker:
    """A worker process; each log line is kept with the time it was read."""

    def __init__(self, workspace: Path, env: dict[str, str],
                 wrap: Callable[[list[str]], list[str]] | None = None) -> None:
        command = [str(CITESMAIL), "worker"]
        self.process = subprocess.Popen(wrap(command) if wrap else command, cwd=workspace,
                                        env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
        self.lines: list[tuple[float, str]] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout or []:
            self.lines.append((time.time(), line))

    def when(self, words: str, seconds: float = 60, since: float = 0.0) -> float:
        """When the first line saying `words` (read at `since` or later) was read."""
        def found() -> float | None:
            return next((moment for moment, line in list(self.lines)
                         if moment >= since and words in line), None)

        wait_until(lambda: found() is not None, seconds)
        moment = found()
        if moment is None:
            raise RuntimeError(f"no {words!r} in: {''.join(x for _, x in self.lines)[-800:]}")
        return moment

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


@contextmanager
def smtp_workspace(url: str, campaigns: int) -> Iterator[tuple[Handler, Path, dict[str, str],
                                                               list[str]]]:
    """An SMTP server, a workspace on `url` and its campaigns to schedule."""
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
    with tempfile.TemporaryDirectory(prefix="citesmail-bench-takeover-") as tmp:
        workspace = Path(tmp) / "ws"
        controller.start()
        try:
            yield handler, workspace, env, prepare(workspace, env, campaigns)
        finally:
            controller.stop()


def schedule_soon(workspace: Path, env: dict[str, str], name: str) -> int:
    """Schedule `name` 10 s ahead (the schedule command takes seconds); its due epoch."""
    due = int(time.time()) + 10
    at = datetime.datetime.fromtimestamp(due, datetime.UTC)
    cli(workspace, env, "schedule", name, "--at", f"{at:%Y-%m-%d %H:%M:%S}", "--tz", "UTC")
    return due


def first_accepted(handler: Handler, name: str, due: int) -> float:
    wait_until(lambda: name in handler.accepted, TARGET_S * 2)
    return min(handler.accepted.get(name, [float("nan")])) - due


def kill_rounds(url: str, kills: int) -> tuple[list[float], list[float]]:
    """(kill -> 'taking over' seconds, due -> first accepted seconds) per kill."""
    took, late = [], []
    with smtp_workspace(url, kills) as (handler, workspace, env, names):
        workers = [Worker(workspace, env)]
        try:
            workers[0].when("worker started")
            for name in names:
                active, standby = workers[-1 if len(workers) > 1 else 0], Worker(workspace, env)
                workers.append(standby)
                standby.when("standby: another worker is active")
                due = schedule_soon(workspace, env, name)
                time.sleep(max(due - LEAD_S - time.time(), 0))  # what is measured: a kill
                killed = time.time()
                active.end(signal.SIGKILL)
                took.append(standby.when("taking over: the active", TARGET_S * 2) - killed)
                late.append(first_accepted(handler, name, due))
                workers = [standby]
        finally:
            for worker in workers:
                worker.end(signal.SIGTERM)
    return took, late


def cut_rounds(url: str, cuts: int) -> tuple[list[float], list[float], list[float]]:
    """(cut -> 'taking over', due -> first accepted, cut -> the cut worker's 'worker lock
    lost') seconds per cut. Two workers, each in a cgroup of its own: the active one is
    cut, then restored, and is the standby of the next round."""
    took, late, lost = [], [], []
    with smtp_workspace(url, cuts) as (handler, workspace, env, names), ExitStack() as stack:
        pairs: list[tuple[Worker, NetworkCut]] = []
        try:
            for words in ("worker started", "standby: another worker is active"):
                cut = stack.enter_context(network_cut())
                pairs.append((Worker(workspace, env, cut.command), cut))
                pairs[-1][0].when(words)
            for name in names:
                (active, cut), (standby, _) = pairs
                # The cut falls anywhere in the heartbeat's period, which the chain of
                # timeouts from one round to the next would otherwise keep in one phase.
                time.sleep(random.uniform(0, TARGET_S / 6))
                due = schedule_soon(workspace, env, name)
                time.sleep(max(due - LEAD_S - time.time(), 0))  # what is measured: a cut
                cut_at = time.time()
                cut.cut(active.process.pid)
                took.append(standby.when("taking over: the active", TARGET_S * 2, cut_at)
                            - cut_at)
                lost.append(active.when("worker lock lost", TARGET_S * 2, cut_at) - cut_at)
                late.append(first_accepted(handler, name, due))
                active.when("standby: cannot reach the database", TARGET_S * 2, cut_at)
                restored = time.time()
                cut.restore()  # the cut worker waits as the next standby
                active.when("standby: another worker is active", TARGET_S * 2, restored)
                pairs.reverse()
        finally:
            for worker, _ in pairs:
                worker.end(signal.SIGTERM)
    return took, late, lost


@contextmanager
def network_cut() -> Iterator[NetworkCut]:
    try:
        cut = NetworkCut()
    except CutUnavailable as exc:
        raise SystemExit(f"cannot cut the network ({exc}): run as root, or --cuts 0") from None
    try:
        yield cut
    finally:
        cut.close()


def row(label: str, seconds: list[float], target: bool, verdict: str = "") -> Row:
    values = sorted(seconds)
    median, worst = statistics.median(values), values[-1]
    if target:
        verdict = "within target" if worst <= TARGET_S else "OVER target"
    return (f"{label} (n={len(values)})", f"{median:.2f} s", f"{worst:.2f} s",
            f"{TARGET_S:g} s (max)" if target else "", verdict)


def cut_rows(took: list[float], late: list[float], lost: list[float]) -> list[Row]:
    early = sum(1 for gave_up, taken in zip(lost, took, strict=True) if gave_up < taken)
    return [row("Network cut of the active worker -> standby 'taking over'", took, True),
            row(f"Due time -> first message accepted (cut {LEAD_S:g} s before)", late, False),
            row("Network cut -> the cut worker's 'worker lock lost'", lost, False,
                f"before the takeover {early} of {len(lost)} times")]


def section(rows: list[Row], machine: str, kills: int, cuts: int,
            loads: tuple[str, str]) -> str:
    today = datetime.date.today().isoformat()
    return (f"## Standby takeover\n\nTwo `citesmail worker` processes on one PostgreSQL "
            f"database (a schema of its own) on 127.0.0.1, with the default `[schedule] "
            f"takeover = \"30s\"`; SMTP to an aiosmtpd server on 127.0.0.1 in the benchmark "
            f"process. Each time a campaign (3 contacts) is scheduled 10 s ahead and the "
            f"active worker is stopped {LEAD_S:g} s before its due time: {kills} times killed "
            f"with SIGKILL (a new worker is then started to be the next standby), {cuts} times "
            f"cut from the database (iptables drops every packet of its connections to and "
            f"from port 5432, and its new connections; once the standby has sent, the network "
            f"is restored and the cut worker, waiting as a standby again, is the next "
            f"standby). 'taking over' is the standby's log line, 'worker lock lost' the cut "
            f"worker's, both read by the benchmark as they come; 'first message accepted' is "
            f"the server's time for that send's first message. A killed process's session "
            f"ends at once (the kernel closes its socket), so the takeover is the standby's "
            f"poll (1 s at most) and its start. A cut tells the server nothing: it drops the "
            f"lock's session 17 s after the last heartbeat it answered (its keepalives; the "
            f"heartbeat is every 5 s, so 12 to 17 s after the cut), and the standby's next "
            f"poll takes over; the cut worker gives its lock up 10 s after its last answered "
            f"heartbeat, before that (see delivery.md, \"Standby workers\"). Load average "
            f"(1/5/15 min) before: {loads[0]}, after: {loads[1]}. Rerun (as root, for the "
            f"cuts) with `CITESMAIL_TEST_PG_URL=... .venv/bin/python benchmarks/takeover.py "
            f"--write-docs`.\n\n"
            f"Machine: {machine}\n\nDate: {today}\n\n{markdown_table(HEADER, rows)}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--cuts", type=int, default=10, help="network cuts (needs root)")
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
    rows = []
    if args.kills:
        with schema(url) as scoped:
            took, late = kill_rounds(scoped, args.kills)
        rows += [row("SIGKILL of the active worker -> standby 'taking over'", took, True),
                 row(f"Due time -> first message accepted (kill {LEAD_S:g} s before)", late,
                     False)]
    if args.cuts:
        with schema(url) as scoped:
            rows += cut_rows(*cut_rounds(scoped, args.cuts))
    after = load()
    print(f"load average before: {before}, after: {after}\n")
    print(text_table(HEADER, rows))
    if args.write_docs:
        write_section("Standby takeover",
                      section(rows, machine, args.kills, args.cuts, (before, after)))
        print(f"\nwrote {DOCS}")


if __name__ == "__main__":
    main()
