"""Delivery benchmark: per-recipient message bytes, `citesmail send` to a local SMTP server,
sender CPU and peak memory for a big send to the outbox.

Run from the repository root:
    .venv/bin/python benchmarks/delivery.py [--quick] [--write-docs]
"""

from __future__ import annotations

import argparse
import csv
import datetime
import multiprocessing as mp
import os
import platform
import random
import re
import shutil
import smtplib
import socket
import sqlite3
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

from citesmail.campaigns import load_campaign
from citesmail.config import Settings, load_settings
from citesmail.message import MessageTemplate, Recipient, reference_message, to_bytes
from citesmail.render import RenderedCampaign, render_campaign
from report import DOCS, compile_bytecode, markdown_table, text_table, write_section

NAME = "2023-06-12-replay-cites-de-l-emploi"
CAMPAIGN = Path("campaigns") / f"{NAME}.md"
CONFIG = Path("config.example.toml")
CITESMAIL = Path(".venv/bin/citesmail").resolve()
SENDER = "annonces@example.org"
BUILD_TARGET_US, SPEEDUP_TARGET, SHARE_TARGET = 100.0, 20.0, 0.90
CPU_TARGET_US, RSS_TARGET_MB, CONNECTIONS = 300.0, 200.0, 4
OUTBOX_TIMEOUT = 300.0  # seconds: keeps a run bounded
SMTP_ROUNDS = 5  # ceiling and send alternate; medians (this machine is noisy)
FIRST = ["Amélie", "André", "Benoît", "Cécile", "Chloé", "Clément", "Élodie", "Émile",
         "François", "Gaëlle", "Hélène", "Jérôme", "Joël", "Léa", "Marie-Thérèse", "Maëlle",
         "Noël", "Océane", "Raphaël", "Sébastien", "Zoé", "Jean-Baptiste", "Ophélie", "Ali"]
LAST = ["Bérard", "Bœuf", "Chevalier", "Dupré", "Durand", "Fabre", "Guérin", "Hébert",
        "Lefèvre", "Lemaître", "Ménard", "Pétrot", "Régnier", "Thévenin", "N'Diaye",
        "Da Costa", "Le Goff", "Müller", "Faure", "Martin", "Nguyễn", "Saint-Exupéry"]
ORGS = ["Mairie de Vénissieux", "Mission locale de Saint-Étienne", "CCAS d'Échirolles",
        "Centre social « Les Érables »", "France services de Montélimar", "Pôle emploi Bron",
        "Association régionale des missions locales d'Auvergne-Rhône-Alpes et de la Métropole",
        "Maison de l'emploi et de la formation de Vaulx-en-Velin", "Préfecture du Rhône"]
YES = {True: "within target", False: "OVER target"}

Row = tuple[str, str, str, str]
HEADER: Row = ("measurement", "citesmail", "reference", "ratio/verdict")


def people(n: int, seed: int = 7) -> list[Recipient]:
    """Varied French recipients: accents, compound and long names, 20% without org."""
    rng = random.Random(seed)
    found = []
    for i in range(1, n + 1):
        first = rng.choice(FIRST) if rng.random() < 0.92 else ""
        last = rng.choice(LAST)
        if rng.random() < 0.05:  # a long name: several family names
            last = "-".join(rng.sample(LAST, 4))
        org = rng.choice(ORGS) if rng.random() < 0.8 else ""
        local = re.sub(r"[^a-z]+", ".", f"{first} {last}".lower().encode("ascii", "ignore")
                       .decode()).strip(".")
        found.append(Recipient(f"{local or 'x'}.{i}@example.org", first, last, org, i))
    return found


def load() -> tuple[RenderedCampaign, Settings]:
    settings = load_settings(CONFIG, environ={})
    campaign = load_campaign(CAMPAIGN, default_lang="fr", tz=settings.tz)
    return render_campaign(campaign, settings), settings


def per_call_us(fn: Callable[[Recipient], object], recipients: list[Recipient],
                warm: int) -> list[float]:
    """Microseconds of each call, perf_counter around the call, after `warm` untimed."""
    for r in recipients[:warm]:
        fn(r)
    samples = []
    for r in recipients:
        start = time.perf_counter()
        fn(r)
        samples.append((time.perf_counter() - start) * 1e6)
    return samples


def build_rows(n: int, reference_n: int) -> tuple[list[Row], MessageTemplate]:
    rendered, settings = load()
    template, recipients = MessageTemplate(rendered, settings), people(n)
    fast = per_call_us(template.build, recipients, warm=200)
    slow = per_call_us(lambda r: to_bytes(reference_message(rendered, r, settings)),
                       recipients[:reference_n], warm=5)
    median, p95 = statistics.median(fast), statistics.quantiles(fast, n=20)[-1]
    ref, size = statistics.median(slow), len(template.build(recipients[0])) / 1024
    speedup = ref / median
    return [(f"Message bytes, {n:,} recipients ({size:.0f} KB each)",
             f"median {median:.0f} µs, p95 {p95:.0f} µs",
             f"target {BUILD_TARGET_US:g} µs", YES[median <= BUILD_TARGET_US]),
            ("Message bytes vs EmailMessage per recipient", f"median {median:.0f} µs",
             f"median {ref:.0f} µs (EmailMessage, {reference_n} recipients)",
             f"{speedup:.0f}x faster (target {SPEEDUP_TARGET:g}x): "
             f"{YES[speedup >= SPEEDUP_TARGET]}")], template


def serve(port: int, count: Synchronized[int], first: Synchronized[float],
          last: Synchronized[float], ready: Event, stop: Event) -> None:
    """The SMTP server process: accepts everything, counts messages and notes the time
    (CLOCK_MONOTONIC, one clock for all processes on Linux) of the first and the last."""
    from aiosmtpd.controller import Controller

    class Counting:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            now = time.monotonic()
            with count.get_lock():
                first.value = now if count.value == 0 else first.value
                count.value += 1
                last.value = now
            return "250 OK queued"

    controller = Controller(Counting(), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    stop.wait()
    controller.stop()


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run([str(CITESMAIL), *args], cwd=cwd, env=env, capture_output=True,
                            text=True)
    if result.returncode != 0:
        raise RuntimeError(f"citesmail {' '.join(args)}: {result.stderr.strip()[-500:]}")
    return result.stdout


def workspace(root: Path, recipients: list[Recipient]) -> Path:
    """`citesmail init`, the recipients imported into the public list aura (so that each
    message's footer names it: one more query per claimed batch), segment partenaires-aura."""
    ws = root / "ws"
    run_cli("init", str(ws), cwd=root)
    with (ws / "c.csv").open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, delimiter=";")
        writer.writerow(["email", "first_name", "last_name", "organization"])
        writer.writerows((r.email, r.first_name, r.last_name, r.organization)
                         for r in recipients)
    run_cli("lists", "add", "aura", "--public", "--title", "Partenaires AURA", cwd=ws)
    run_cli("contacts", "import", "c.csv", "--list", "aura", cwd=ws)
    run_cli("segments", "add", "partenaires-aura", "--list", "aura", cwd=ws)
    return ws


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITESMAIL_")}
    return {**env, "CITESMAIL_SECRET": "benchmark-secret-of-at-least-32-bytes", **extra}


def smtp_send(port: int, messages: list[tuple[str, bytes]], connections: int,
              reuse: bool = True) -> float:
    """Seconds to send messages from `connections` threads, each over one smtplib
    connection (reuse), or one new connection per message."""
    def share(part: list[tuple[str, bytes]]) -> None:
        for batch in [part] if reuse else [[one] for one in part]:
            with smtplib.SMTP("127.0.0.1", port) as smtp:
                for to, data in batch:
                    smtp.sendmail(SENDER, [to], data)

    start = time.perf_counter()
    with ThreadPoolExecutor(connections) as pool:
        list(pool.map(share, [messages[i::connections] for i in range(connections)]))
    return time.perf_counter() - start


def smtp_rows(n: int, naive_n: int, template: MessageTemplate, rounds: int) -> list[Row]:
    """`rounds` rounds, each the ceiling then a `citesmail send` of a fresh copy of the
    campaign (a new send) to the same server; medians of each."""
    ctx = mp.get_context("spawn")
    count, first, last = ctx.Value("q", 0), ctx.Value("d", 0.0), ctx.Value("d", 0.0)
    with socket.socket() as probe:  # a free port
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    ready, stop = ctx.Event(), ctx.Event()
    server = ctx.Process(target=serve, args=(port, count, first, last, ready, stop))
    server.start()

    def received() -> int:
        with count.get_lock():
            found, count.value = count.value, 0
        return int(found)

    ceilings, walls, windows, startups = [], [], [], []
    try:
        if not ready.wait(30):
            raise RuntimeError("the SMTP server did not start")
        recipients = people(n, seed=11)
        messages = [(r.email, template.build(r)) for r in recipients]
        with tempfile.TemporaryDirectory(prefix="citesmail-bench-") as tmp:
            ws = workspace(Path(tmp), recipients)
            env = clean_env(CITESMAIL_DELIVERY_TRANSPORT="smtp", CITESMAIL_SMTP_HOST="127.0.0.1",
                            CITESMAIL_SMTP_PORT=str(port), CITESMAIL_SMTP_SECURITY="none",
                            CITESMAIL_DELIVERY_CONNECTIONS=str(CONNECTIONS))
            for round_ in range(rounds):
                ceilings.append(n / smtp_send(port, messages, CONNECTIONS))
                assert received() == n, "the server did not get every ceiling message"
                slug = f"{NAME}-r{round_}"
                shutil.copy(ws / CAMPAIGN, ws / "campaigns" / f"{slug}.md")
                start, t0 = time.perf_counter(), time.monotonic()
                out = run_cli("send", slug, "--yes", cwd=ws, env=env)
                walls.append(time.perf_counter() - start)
                got = received()
                assert out.strip() == f"sent {n}" and got == n, \
                    f"send: {out.strip()!r}, server {got}"
                windows.append(last.value - first.value)
                startups.append(first.value - t0)
                print(f"round {round_ + 1}: ceiling {ceilings[-1]:.0f} msg/s, send "
                      f"{n / walls[-1]:.0f} msg/s whole, {(n - 1) / windows[-1]:.0f} steady",
                      flush=True)
        naive = naive_n / smtp_send(port, messages[:naive_n], 1, reuse=False)
        assert received() == naive_n, "the server did not get every naive message"
    finally:
        stop.set()
        server.join(10)
        if server.is_alive():
            server.kill()
    ceiling = statistics.median(ceilings)
    rate = n / statistics.median(walls)
    steady = (n - 1) / statistics.median(windows)
    label = f"{n:,} recipients, {CONNECTIONS} connections"
    reference = (f"ceiling {ceiling:.0f} msg/s (smtplib, pre-built bytes; median of "
                 f"{rounds}, {min(ceilings):.0f}–{max(ceilings):.0f})")
    return [(f"citesmail send to aiosmtpd, {label}, whole command (median of {rounds})",
             f"{rate:.0f} msg/s ({statistics.median(walls):.2f} s; "
             f"{n / max(walls):.0f}–{n / min(walls):.0f})", reference,
             f"{rate / ceiling:.0%} of ceiling (target {SHARE_TARGET:.0%}): "
             f"{YES[rate >= SHARE_TARGET * ceiling]}"),
            ("same send, first to last message (server clock)", f"{steady:.0f} msg/s "
             f"(start-up {statistics.median(startups):.2f} s)", reference,
             f"{steady / ceiling:.0%} of ceiling"),
            (f"same send vs a naive loop ({naive_n:,} messages)", f"{rate:.0f} msg/s",
             f"{naive:.0f} msg/s (one connection per message)", f"{rate / naive:.1f}x faster")]


def outbox_rows(n: int, timeout: float) -> list[Row]:
    """`citesmail send` to the outbox under /usr/bin/time (CPU and peak RSS of the child,
    reaped by `timeout`, which forks rather than vforks); SIGTERM (a clean, resumable stop)
    after timeout seconds, and then the figures are those of the part sent."""
    with tempfile.TemporaryDirectory(prefix="citesmail-bench-") as tmp:
        ws = workspace(Path(tmp), people(n, seed=13))
        os.sync()  # the writes of earlier steps are not billed to this one
        command = ["/usr/bin/time", "-f", "TIME %e %U %S %M", "timeout", "-s", "TERM",
                   str(int(timeout)), str(CITESMAIL), "send", NAME, "--yes"]
        result = subprocess.run(command, cwd=ws, env=clean_env(), capture_output=True,
                                text=True)
        finished = result.returncode == 0
        assert finished or result.returncode == 124, result.stderr  # 124: timed out
        assert result.stdout.strip() == f"sent {n}" or not finished, result.stdout
        err = result.stderr
        found = re.search(r"^TIME (\S+) (\S+) (\S+) (\d+)$", err, re.M)
        assert found, err
        wall, user, system = (float(found.group(i)) for i in (1, 2, 3))
        peak_mb = int(found.group(4)) / 1024
        written = sum(1 for _ in os.scandir(ws / "outbox" / "new"))
        assert written == n or not finished, f"{written} messages in the outbox, {n} expected"
    per_message = (user + system) / max(written, 1) * 1e6
    times = f"user {user:.1f} s + sys {system:.1f} s; wall {wall:.1f} s"
    done = (f"{per_message:.0f} µs ({times})" if finished else
            f"stopped after {timeout:.0f} s, {written:,} of {n:,} written: {per_message:.0f} "
            f"µs each so far ({times})")
    return [(f"Sender CPU per message, {n:,} to the outbox", done,
             f"target {CPU_TARGET_US:g} µs", YES[finished and per_message <= CPU_TARGET_US]),
            ("Peak memory, same send (whole process)", f"{peak_mb:.0f} MB",
             f"target {RSS_TARGET_MB:g} MB",
             YES[peak_mb <= RSS_TARGET_MB] + ("" if finished else " until stopped"))]


def cpu_model() -> str:
    match = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
    return match.group(1).strip() if match else platform.processor() or "unknown CPU"


def machine_line() -> str:
    return (f"{platform.platform()}; {cpu_model()}; {os.cpu_count()} cores; "
            f"Python {platform.python_version()}; aiosmtpd {version('aiosmtpd')}; "
            f"SQLite {sqlite3.sqlite_version}; load average at start "
            f"{os.getloadavg()[0]:.2f}")


def section(rows: list[Row], machine: str, sizes: tuple[int, int, int, int, int]) -> str:
    n, ref_n, smtp_n, naive_n, outbox_n = sizes
    today = datetime.date.today().isoformat()
    return (f"## Delivery\n\nMessage bytes: `MessageTemplate.build` for {n:,} generated "
            f"recipients of `{CAMPAIGN}` (French names, accents, some long, 80% with an "
            f"organization), each call timed after 200 untimed, against "
            f"`to_bytes(reference_message(...))` (`EmailMessage`) for the first {ref_n}. "
            f"SMTP: aiosmtpd in its own process on 127.0.0.1 accepts and counts (every count "
            f"checked); `citesmail send --yes` ({smtp_n:,} contacts imported with the CLI into "
            f"a `citesmail init` workspace, SQLite) is timed whole, and from the first to the "
            f"last message received; the ceiling is {CONNECTIONS} smtplib connections in threads "
            f"sending the same pre-built bytes; ceiling and send alternate {SMTP_ROUNDS} "
            f"times (each send a fresh copy of the campaign) and the medians are compared; "
            f"the naive loop "
            f"opens one connection per message, {naive_n:,} messages. Outbox: CPU (user + "
            f"sys) and peak RSS of `citesmail send --yes` of {outbox_n:,} contacts to the "
            f"Maildir outbox, from `/usr/bin/time`, started after a `sync`; still running after "
            f"{OUTBOX_TIMEOUT:.0f} s, it gets SIGTERM (a clean, resumable stop) and the "
            f"figures are those of the part written. Rerun with "
            f"`.venv/bin/python benchmarks/delivery.py --write-docs`.\n\n"
            f"Machine: {machine}\n\nDate: {today} (load average at the end "
            f"{os.getloadavg()[0]:.2f})\n\n{markdown_table(HEADER, rows)}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer recipients")
    parser.add_argument("--write-docs", action="store_true",
                        help=f"rewrite ## Delivery in {DOCS}")
    args = parser.parse_args()
    sizes = (10_000, 50, 1_000, 200, 20_000) if args.quick else (
        10_000, 300, 5_000, 1_000, 100_000)
    machine = machine_line()
    compile_bytecode()
    print(f"Machine: {machine}\n", flush=True)
    rows, template = build_rows(sizes[0], sizes[1])
    rows += smtp_rows(sizes[2], sizes[3], template, SMTP_ROUNDS)
    rows += outbox_rows(sizes[4], OUTBOX_TIMEOUT)
    print(text_table(HEADER, rows))
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")
    if args.write_docs:
        write_section("Delivery", section(rows, machine, sizes))
        print(f"\nwrote {DOCS}")


if __name__ == "__main__":
    main()
