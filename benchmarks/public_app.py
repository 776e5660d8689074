"""Public app benchmark: `citesmail serve` on SQLite under 20 concurrent clients, idle,
during a big SMTP send and during a big import; a constant Starlette page as reference.

Each condition is 10,000 requests (90% web views GET /v/<token>, 10% one-click
unsubscribes POST /u/<token>, each unsubscribe a different contact), from 20 asyncio
tasks, each on a kept-alive connection of its own. Errors are answers other than 2xx, and failed
connections. Unsubscribes recorded are counted in the database once the send or the
import has ended and the intake has been applied.

Run from the repository root:
    .venv/bin/python benchmarks/public_app.py [--quick] [--write-docs]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import multiprocessing as mp
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from citesmail.tokens import make_token
from delivery import CITESMAIL, NAME, clean_env, machine_line, run_cli
from delivery import serve as smtp_sink
from report import DOCS, compile_bytecode, markdown_table, text_table, write_section

CLIENTS, UNSUBSCRIBE_SHARE = 20, 0.10
P99_TARGET_MS = 250.0
SECRET = "benchmark-secret-long-enough-for-serve-0123"
VIEW = f"{NAME}-view"  # the campaign whose web views are asked for
PAGE = ("<!doctype html><html lang=\"fr\"><head><meta charset=\"utf-8\"><title>Page</title>"
        "</head><body><p>Une page constante.</p></body></html>")
HEADER = ("condition", "requests/s", "p50", "p99", "p99 of unsubscribes", "errors",
          "unsubscribes recorded", "verdict")


async def constant(request: Request) -> HTMLResponse:
    return HTMLResponse(PAGE)


# The reference: a minimal Starlette app with the same routes, served by uvicorn the same way.
reference_app = Starlette(routes=[Route("/v/{token}", constant, methods=["GET"]),
                                  Route("/u/{token}", constant, methods=["POST"])])


@dataclass
class Measured:
    seconds: float
    latencies: list[float]  # seconds, one per request
    unsubscribe_latencies: list[float]
    errors: int
    unsubscribes: list[int]  # contacts whose unsubscribe was answered 2xx

    def percentile(self, share: float, unsubscribes: bool = False) -> float:
        ordered = sorted(self.unsubscribe_latencies if unsubscribes else self.latencies)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000


def plan(n: int, views: list[int], leaving: list[int], seed: int) -> list[tuple[str, int]]:
    """n requests in a shuffled order: 10% unsubscribes of `leaving`, the rest web views
    of contacts drawn from `views`."""
    rng = random.Random(seed)
    unsubscribes = int(n * UNSUBSCRIBE_SHARE)
    found = [("u", c) for c in leaving[:unsubscribes]]
    found += [("v", rng.choice(views)) for _ in range(n - unsubscribes)]
    rng.shuffle(found)
    return found


def _request(host: str, kind: str, contact: int) -> bytes:
    """The bytes of one request, made before the clock starts."""
    if kind == "v":
        return (f"GET /v/{make_token(SECRET, contact, VIEW)} HTTP/1.1\r\nHost: {host}\r\n"
                "\r\n").encode("ascii")
    body = b"List-Unsubscribe=One-Click"
    return (f"POST /u/{make_token(SECRET, contact, NAME)} HTTP/1.1\r\nHost: {host}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode("ascii") + body


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    request: bytes) -> tuple[int, bool]:
    """One request on a kept-alive connection: (status, whether the server keeps it)."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
    await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers.get("connection") != "close"


async def _hammer(base: str, requests: list[tuple[str, int]]) -> Measured:
    """20 clients on kept-alive connections. A lean HTTP/1.1 client of a few lines: a
    general one (httpx) spent twice the server's CPU per request, on the same 2 cores, and
    its tail was the client's, not the server's."""
    host, port = base.removeprefix("http://").split(":")
    queue: asyncio.Queue[tuple[str, int, bytes]] = asyncio.Queue()
    for kind, contact in requests:
        queue.put_nowait((kind, contact, _request(f"{host}:{port}", kind, contact)))
    latencies: list[float] = []
    unsubscribe_latencies: list[float] = []
    answered: list[int] = []
    errors = [0]

    async def client() -> None:
        connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        while not queue.empty():
            kind, contact, request = queue.get_nowait()
            started = time.perf_counter()
            try:
                if connection is None:
                    connection = await asyncio.open_connection(host, int(port))
                status, keep = await asyncio.wait_for(_exchange(*connection, request), 120)
                ok = 200 <= status < 300
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
                ok, keep = False, False
            latencies.append(time.perf_counter() - started)
            if kind == "u":
                unsubscribe_latencies.append(latencies[-1])
            if not ok:
                errors[0] += 1
            elif kind == "u":
                answered.append(contact)
            if not keep and connection is not None:
                connection[1].close()
                connection = None
        if connection is not None:
            connection[1].close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    return Measured(time.perf_counter() - started, latencies, unsubscribe_latencies,
                    errors[0], answered)


def hammer(base: str, requests: list[tuple[str, int]]) -> Measured:
    return asyncio.run(_hammer(base, requests))


class Server:
    """A uvicorn server in its own process (`citesmail serve`, or the reference)."""

    def __init__(self, command: list[str], cwd: Path, env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(command, cwd=cwd, env=env,
                                            stdout=subprocess.DEVNULL, stderr=out)
        wait_for(lambda: "Uvicorn running on" in self.text() or
                 self.process.poll() is not None, 60, "the server to start")
        if self.process.poll() is not None:
            raise RuntimeError(f"the server did not start: {self.text()[-500:]}")

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)


def ended_at(process: subprocess.Popen[str]) -> list[float]:
    """[the monotonic time `process` ends], filled by a thread that waits for it."""
    found: list[float] = []

    def watch() -> None:
        process.wait()
        found.append(time.monotonic())

    threading.Thread(target=watch, daemon=True).start()
    return found


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"waited {seconds:g} s for {what}")
        time.sleep(0.05)


def write_csv(path: Path, first: int, n: int) -> None:
    with path.open("w", encoding="utf-8") as out:
        out.write("email;prénom;nom\n")
        out.writelines(f"personne.{i}@example.org;Prénom{i % 97};Nom{i % 89}\n"
                       for i in range(first, first + n))


def prepare(root: Path, in_send: int) -> tuple[Path, dict[str, list[int]]]:
    """A `citesmail init` workspace: `in_send` contacts in list aura (the big send's
    segment), 2,000 others, 100 in list few; a send of VIEW to those 100 (the outbox),
    so that web views have a campaign."""
    ws = root / "ws"
    run_cli("init", str(ws), cwd=root)
    write_csv(ws / "aura.csv", 0, in_send)
    write_csv(ws / "others.csv", in_send, 2_000)
    write_csv(ws / "few.csv", in_send + 2_000, 100)
    for name, listed in (("aura.csv", "aura"), ("others.csv", ""), ("few.csv", "few")):
        if listed:
            run_cli("lists", "add", listed, cwd=ws)
        run_cli("contacts", "import", name, *(("--list", listed) if listed else ()), cwd=ws)
    run_cli("segments", "add", "partenaires-aura", "--list", "aura", cwd=ws)
    run_cli("segments", "add", "few", "--list", "few", cwd=ws)
    (ws / "campaigns" / f"{VIEW}.md").write_bytes(
        (ws / "campaigns" / f"{NAME}.md").read_bytes())
    run_cli("send", VIEW, "--yes", "--segment", "few", cwd=ws, env=clean_env())
    with sqlite3.connect(ws / "citesmail.db") as db:
        ids = [i for (i,) in db.execute("SELECT id FROM contacts ORDER BY id")]
    groups = {"aura": ids[:in_send], "others": ids[in_send:in_send + 2_000], "all": ids}
    return ws, groups


def recorded(ws: Path, contacts: list[int]) -> int:
    with sqlite3.connect(ws / "citesmail.db") as db:
        found = {i for (i,) in db.execute(
            "SELECT id FROM contacts WHERE status = 'unsubscribed'")}
    return len(found & set(contacts))


def settle(ws: Path, measured: Measured, seconds: float = 120) -> int:
    """Unsubscribes in the database once the intake is applied (it is at once when the
    database is free; the wait is bounded)."""
    with contextlib.suppress(RuntimeError):  # what is missing then is counted as lost
        wait_for(lambda: recorded(ws, measured.unsubscribes) == len(measured.unsubscribes),
                 seconds, "the unsubscribes to be applied")
    return recorded(ws, measured.unsubscribes)


def row(label: str, measured: Measured, found: int | None, target: bool, note: str = ""
        ) -> tuple[str, ...]:
    n = len(measured.latencies)
    p99 = measured.percentile(0.99)
    asked = len(measured.unsubscribes)
    lost = "" if found is None else f"{found:,} of {asked:,} answered 2xx" + (
        "" if found == asked else f" ({asked - found} lost)")
    checks = [measured.errors == 0, found is None or found == asked]
    if target:
        checks.append(p99 < P99_TARGET_MS)
    verdict = "reference (no target)" if found is None else \
        ("within target" if all(checks) else "OVER target") + (f"; {note}" if note else "")
    return (label, f"{n / measured.seconds:.0f}", f"{measured.percentile(0.5):.0f} ms",
            f"{p99:.0f} ms", f"{measured.percentile(0.99, unsubscribes=True):.0f} ms",
            str(measured.errors), lost or "—", verdict)


def during_send(ws: Path, base: str, requests: list[tuple[str, int]], n: int
                ) -> tuple[Measured, str]:
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
        end = ended_at(send)
        wait_for(lambda: count.value > 0 or send.poll() is not None, 120,
                 "the send's first message")
        began = time.monotonic()
        measured = hammer(base, requests)
        mailed_then = count.value
        out, err = send.communicate(timeout=600)
        if send.returncode != 0:
            raise RuntimeError(f"send: {err.strip()[-500:]}")
    finally:
        stop.set()
        sink.join(10)
    overlap = min(end[0] - began, measured.seconds)
    note = (f"send running for {overlap:.0f} s of the {measured.seconds:.0f} s run, "
            f"{mailed_then:,} of {n:,} mailed by its end; send said '{out.strip()}'")
    return measured, note


def during_import(ws: Path, base: str, requests: list[tuple[str, int]], rows: int
                  ) -> tuple[Measured, str]:
    big = ws / "big.csv"
    write_csv(big, 10_000_000, rows)
    started = time.monotonic()
    importing = subprocess.Popen([str(CITESMAIL), "contacts", "import", big.name], cwd=ws,
                                 env=clean_env(), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
    end = ended_at(importing)
    wait_for(lambda: write_locked(ws) or importing.poll() is not None, 300,
             "the import to take the write lock")
    locked_at = time.monotonic()
    measured = hammer(base, requests)
    err = importing.communicate(timeout=1800)[1]
    if importing.returncode != 0:
        raise RuntimeError(f"import: {err.strip()[-500:]}")
    held = min(end[0] - locked_at, measured.seconds)
    note = (f"database locked by the import for {held:.0f} s of the "
            f"{measured.seconds:.0f} s run (import {end[0] - started:.0f} s in all)")
    return measured, note


def write_locked(ws: Path) -> bool:
    """Whether another process holds SQLite's write lock now."""
    db = sqlite3.connect(ws / "citesmail.db", timeout=0, isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE")
        db.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError as exc:
        if "locked" not in str(exc):
            raise
        return True
    finally:
        db.close()


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def uvicorn_env() -> dict[str, str]:
    return clean_env(CITESMAIL_SECRET=SECRET)


def measure(n: int, send_n: int, import_n: int) -> list[tuple[str, ...]]:
    rows = []
    here = Path(__file__).resolve().parent
    with tempfile.TemporaryDirectory(prefix="citesmail-bench-") as tmp:
        root = Path(tmp)
        port = free_port()
        reference = Server([sys.executable, "-m", "uvicorn", "public_app:reference_app",
                            "--app-dir", str(here), "--host", "127.0.0.1", "--port", str(port),
                            "--log-level", "info", "--no-server-header", "--proxy-headers",
                            "--limit-concurrency", "200"], root, uvicorn_env(),
                           root / "reference.log")
        try:
            plan_ref = plan(n, list(range(1, 1000)), list(range(1, n)), seed=1)
            hammer(f"http://127.0.0.1:{port}", plan_ref[:500])  # warm-up
            rows.append(row("reference: constant Starlette page", hammer(
                f"http://127.0.0.1:{port}", plan_ref), None, False))
        finally:
            reference.stop()
        print(text_table(HEADER, rows), flush=True)
        ws, groups = prepare(root, send_n)
        port = free_port()
        serve = Server([str(CITESMAIL), "serve", "--port", str(port)], ws, uvicorn_env(),
                       root / "serve.log")
        base = f"http://127.0.0.1:{port}"
        unsubscribes = int(n * UNSUBSCRIBE_SHARE)
        rng = random.Random(5)
        aura, others = groups["aura"][:], groups["others"][:]
        rng.shuffle(aura)
        try:
            hammer(base, plan(500, groups["all"], [], seed=2))  # warm-up: web views only
            idle = hammer(base, plan(n, groups["all"], others[:unsubscribes], seed=3))
            rows.append(row("(a) idle", idle, settle(ws, idle), True))
            print(text_table(HEADER, rows), flush=True)
            sending, note = during_send(ws, base, plan(n, groups["all"],
                                                       aura[:unsubscribes], seed=4), send_n)
            rows.append(row(f"(b) during a {send_n:,}-recipient SMTP send", sending,
                            settle(ws, sending), True, note))
            print(text_table(HEADER, rows), flush=True)
            leaving = others[unsubscribes:2 * unsubscribes]
            importing, note = during_import(ws, base, plan(n, groups["all"], leaving, seed=6),
                                            import_n)
            rows.append(row(f"(c) during a {import_n:,}-row contacts import", importing,
                            settle(ws, importing), False, note))
        finally:
            serve.stop()
        kept = [line for line in serve.text().splitlines() if line.startswith("intake:")]
        print("\n".join(kept[-4:]))
    return rows


def section(rows: list[tuple[str, ...]], machine: str, sizes: tuple[int, int, int]) -> str:
    n, send_n, import_n = sizes
    today = datetime.date.today().isoformat()
    return (f"## Public app\n\n`citesmail serve` (uvicorn, as the command runs it: access log "
            f"at info, SQLite, `[database] busy_timeout` 5 s) under {CLIENTS} concurrent "
            f"clients (asyncio tasks in the benchmark process, each with a kept-alive "
            f"connection and a lean HTTP/1.1 client: httpx cost twice the server's CPU), "
            f"{n:,} requests per condition: {100 - UNSUBSCRIBE_SHARE * 100:.0f}% web views "
            f"`GET /v/<token>` of contacts drawn at random, "
            f"{UNSUBSCRIBE_SHARE * 100:.0f}% one-click unsubscribes `POST /u/<token>`, each "
            f"of a different active contact, in a shuffled order. Errors: answers other "
            f"than 2xx and failed connections. Unsubscribes recorded: counted in the "
            f"database once the send or the import has ended and the intake is applied. "
            f"(a) idle; (b) while `citesmail send` mails {send_n:,} recipients through 4 "
            f"connections to an aiosmtpd sink on 127.0.0.1 (the unsubscribes are of those "
            f"recipients); (c) while `citesmail contacts import` loads a {import_n:,}-row "
            f"CSV (one transaction: the write lock is held throughout). The reference is "
            f"a minimal Starlette app answering a constant page on the same routes, "
            f"served by uvicorn with the same options. Client, server, sender and SMTP "
            f"sink share the machine's 2 cores. Rerun with "
            f"`.venv/bin/python benchmarks/public_app.py --write-docs`.\n\n"
            f"Machine: {machine} (a 2-core VM)\n\nDate: {today} (load average at the end "
            f"{os.getloadavg()[0]:.2f})\n\n"
            f"{markdown_table(HEADER, rows)}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests and rows")
    parser.add_argument("--write-docs", action="store_true",
                        help=f"rewrite ## Public app in {DOCS}")
    args = parser.parse_args()
    sizes = (1_000, 3_000, 50_000) if args.quick else (10_000, 30_000, 500_000)
    machine = machine_line()
    compile_bytecode()
    print(f"Machine: {machine}\n", flush=True)
    rows = measure(*sizes)
    print(text_table(HEADER, rows))
    if args.write_docs:
        write_section("Public app", section(rows, machine, sizes))
        print(f"\nwrote {DOCS}")


if __name__ == "__main__":
    main()
