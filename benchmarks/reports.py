"""Click benchmark (the clicks half of the reports benchmarks): counted-link redirects
(/c/<token>) on `citesmail serve` over SQLite, idle and during an SMTP send, against the
same uvicorn serving a constant 303 (a route of this benchmark's own app), in one run.

Each condition is N requests on one counted link from 20 clients on kept-alive
connections (load from this process; the server, the send and the SMTP sink in others).
Lost clicks: answered 303, yet missing from click_counts once the intake is applied.

Run from the repository root:
    .venv/bin/python benchmarks/reports.py [--quick] [--write-docs]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse
from starlette.routing import Route

from citesmail.tracking.tokens import link_token
from delivery import CITESMAIL, NAME, clean_env, machine_line, run_cli
from delivery import serve as smtp_sink
from public_app import Server, _exchange, free_port, wait_for, write_csv
from report import compile_bytecode, markdown_table, text_table, write_section

CLIENTS = 20
P99_TARGET_MS = 50.0
SECRET = clean_env()["CITESMAIL_SECRET"]
AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
HEADER = ("condition", "clicks/s", "p50", "p99", "errors", "clicks counted", "verdict")


async def redirect(request: Request) -> RedirectResponse:
    return RedirectResponse("https://example.org/replays/cites-de-l-emploi-2023", 303)


# The reference: the same route answering a constant 303, served by uvicorn the same way.
reference_app = Starlette(routes=[Route("/c/{token}", redirect, methods=["GET", "HEAD"])])


@dataclass
class Measured:
    seconds: float
    latencies: list[float]
    errors: int

    @property
    def answered(self) -> int:
        return len(self.latencies) - self.errors

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000


async def _hammer(base: str, path: str, n: int) -> Measured:
    host, port = base.removeprefix("http://").split(":")
    request = (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: {AGENT}\r\n\r\n"
               ).encode("ascii")
    left = [n]
    latencies: list[float] = []
    errors = [0]

    async def client() -> None:
        connection = None
        while left[0] > 0:
            left[0] -= 1
            started = time.perf_counter()
            try:
                if connection is None:
                    connection = await asyncio.open_connection(host, int(port))
                status, keep = await asyncio.wait_for(_exchange(*connection, request), 120)
                ok = status == 303
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
                ok, keep = False, False
            latencies.append(time.perf_counter() - started)
            errors[0] += not ok
            if not keep and connection is not None:
                connection[1].close()
                connection = None
        if connection is not None:
            connection[1].close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    return Measured(time.perf_counter() - started, latencies, errors[0])


def hammer(base: str, path: str, n: int) -> Measured:
    return asyncio.run(_hammer(base, path, n))


def prepare(root: Path, recipients: int) -> Path:
    ws = root / "ws"
    run_cli("init", str(ws), cwd=root)
    write_csv(ws / "aura.csv", 0, recipients)
    run_cli("lists", "add", "aura", cwd=ws)
    run_cli("contacts", "import", "aura.csv", "--list", "aura", cwd=ws)
    run_cli("segments", "add", "partenaires-aura", "--list", "aura", cwd=ws)
    return ws


def counted(ws: Path) -> int:
    with sqlite3.connect(ws / "citesmail.db") as db:
        found = db.execute("SELECT sum(clicks) + sum(automated) FROM click_counts").fetchone()
    return int(found[0] or 0)


def settle(ws: Path, expected: int) -> int:
    with contextlib.suppress(RuntimeError):  # what is missing then is counted as lost
        wait_for(lambda: counted(ws) >= expected, 120, "the clicks to be applied")
    return counted(ws)


def row(label: str, measured: Measured, found: int | None, target: bool,
        note: str = "") -> tuple[str, ...]:
    p99 = measured.percentile(0.99)
    lost = None if found is None else measured.answered - found
    checks = [measured.errors == 0, lost in (None, 0)] + ([p99 < P99_TARGET_MS] if target
                                                          else [])
    verdict = "reference (no target)" if found is None else \
        ("within target" if all(checks) else "OVER target") + (f"; {note}" if note else "")
    shown = "—" if found is None else f"{found:,} of {measured.answered:,} answered 303" + (
        f" ({lost} lost)" if lost else "")
    return (label, f"{len(measured.latencies) / measured.seconds:.0f}",
            f"{measured.percentile(0.5):.1f} ms", f"{p99:.1f} ms", str(measured.errors),
            shown, verdict)


def during_send(ws: Path, base: str, path: str, n: int) -> tuple[Measured, str]:
    ctx = mp.get_context("spawn")
    count, first, last = ctx.Value("q", 0), ctx.Value("d", 0.0), ctx.Value("d", 0.0)
    ready, stop = ctx.Event(), ctx.Event()
    port = free_port()
    sink = ctx.Process(target=smtp_sink, args=(port, count, first, last, ready, stop))
    sink.start()
    try:
        if not ready.wait(30):
            raise RuntimeError("the SMTP server did not start")
        env = clean_env(CITESMAIL_DELIVERY_TRANSPORT="smtp", CITESMAIL_SMTP_HOST="127.0.0.1",
                        CITESMAIL_SMTP_PORT=str(port), CITESMAIL_SMTP_SECURITY="none",
                        CITESMAIL_DELIVERY_CONNECTIONS="4")
        send = subprocess.Popen([str(CITESMAIL), "send", NAME, "--yes"], cwd=ws, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: count.value > 0 or send.poll() is not None, 120,
                 "the send's first message")
        measured = hammer(base, path, n)
        mailed_then = count.value
        _out, err = send.communicate(timeout=600)
        if send.returncode != 0:
            raise RuntimeError(f"send: {err.strip()[-500:]}")
    finally:
        stop.set()
        sink.join(10)
    return measured, f"{mailed_then:,} mailed by the end of the clicks"


def measure(n: int, recipients: int) -> list[tuple[str, ...]]:
    rows = []
    here = Path(__file__).resolve().parent
    path = f"/c/{link_token(SECRET, 1, 1)}"  # the first send's first link
    with tempfile.TemporaryDirectory(prefix="citesmail-bench-") as tmp:
        root = Path(tmp)
        port = free_port()
        reference = Server([sys.executable, "-m", "uvicorn", "reports:reference_app",
                            "--app-dir", str(here), "--host", "127.0.0.1", "--port", str(port),
                            "--log-level", "info", "--no-server-header",
                            "--proxy-headers"], root, clean_env(), root / "reference.log")
        try:
            base = f"http://127.0.0.1:{port}"
            hammer(base, path, 500)  # warm-up
            rows.append(row("reference: constant 303 (Starlette)", hammer(base, path, n),
                            None, False))
        finally:
            reference.stop()
        print(text_table(HEADER, rows), flush=True)
        ws = prepare(root, recipients)
        port = free_port()
        serve = Server([str(CITESMAIL), "serve", "--port", str(port)], ws, clean_env(),
                       root / "serve.log")
        base = f"http://127.0.0.1:{port}"
        try:
            sending, note = during_send(ws, base, path, n)
            rows.append(row(f"during a {recipients:,}-recipient SMTP send", sending,
                            settle(ws, sending.answered), False, note))
            print(text_table(HEADER, rows), flush=True)
            before = counted(ws)
            hammer(base, path, 500)  # warm-up
            before += 500
            settle(ws, before)
            idle = hammer(base, path, n)
            rows.append(row("idle", idle, settle(ws, before + idle.answered) - before, True))
        finally:
            serve.stop()
    return rows


def section(rows: list[tuple[str, ...]], machine: str, n: int, recipients: int) -> str:
    return (
        "## Click redirects\n\n"
        f"`benchmarks/reports.py`: {n:,} GET /c/<token> on one counted link from {CLIENTS} "
        "clients on kept-alive connections, against the same uvicorn answering a constant "
        f"303, idle and while a {recipients:,}-recipient send runs over SMTP. Each click is "
        "an fsynced intake line before its 303; \"clicks counted\" is read from "
        f"`click_counts` once the intake is applied. Target: p99 under {P99_TARGET_MS:.0f} ms "
        "idle, no click lost.\n\n" + markdown_table(HEADER, rows) +
        f"\n\nMachine: {machine}. A busy shared 2-core VM: rerun with "
        "`.venv/bin/python benchmarks/reports.py`.\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 clicks, 300 recipients")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    n, recipients = (1_000, 300) if args.quick else (5_000, 2_000)
    compile_bytecode()
    machine = machine_line()
    rows = measure(n, recipients)
    print(text_table(HEADER, rows))
    if args.write_docs:
        write_section("Click redirects", section(rows, machine, n, recipients))


if __name__ == "__main__":
    main()
