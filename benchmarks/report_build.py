"""`citesmail report CAMPAIGN --format json` for a campaign sent to 100,000 people, with
20,000 clicks, on a real SQLite file (and PostgreSQL with --pg URL): the command's wall
time (a process per run, start-up included), the report's own time in a process, and the
peak memory; medians of several runs. Rows are inserted in bulk, directly.

    .venv/bin/python benchmarks/report_build.py [--runs 5] [--pg URL] [--write-docs]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, text

from citesmail.db import (
    ClickCount,
    ClickEvent,
    ConsentEvent,
    Contact,
    Delivery,
    Send,
    TrackedLink,
    WebViewCount,
    open_database,
)
from report import compile_bytecode, markdown_table, text_table, write_section

RECIPIENTS, CLICKS, LINKS, BATCH = 100_000, 20_000, 12, 10_000
CAMPAIGN = "2026-03-lettre-bench"
TARGET_S = 1.0
CITESMAIL = Path(sys.executable).parent / "citesmail"
START = datetime(2026, 3, 2, 8, tzinfo=UTC)
# One in 50 refused (a mix of reasons), one in 200 deferred, the rest accepted.
FAILURES = [(550, "5.1.1 User unknown"), (552, "5.2.2 Mailbox full"),
            (554, "5.7.1 Message refused as spam"), (421, "4.4.2 Connection timed out")]


def fill(url: str) -> None:
    db = open_database(url)
    with db.session() as session:
        session.execute(insert(Contact), [
            {"id": i, "email": f"p{i}@example.org", "email_key": f"p{i}@example.org",
             "domain": "example.org", "attributes": {}} for i in range(1, RECIPIENTS + 1)])
        session.execute(insert(Send), [{
            "id": 1, "campaign": CAMPAIGN, "segment": "tous", "subject": "Lettre",
            "html": "", "text": "", "slots": [], "source_hash": "0" * 64, "state": "done",
            "started_at": START, "finished_at": START + timedelta(hours=3)}])
        for first in range(1, RECIPIENTS + 1, BATCH):
            session.execute(insert(Delivery), [_delivery(i) for i in
                                               range(first, min(first + BATCH, RECIPIENTS + 1))])
        session.execute(insert(TrackedLink), [
            {"campaign": CAMPAIGN, "number": n, "url": f"https://example.org/page-{n}"}
            for n in range(1, LINKS + 1)])
        session.execute(insert(ClickEvent), [
            {"contact_id": 1 + (i * 7) % RECIPIENTS, "campaign": CAMPAIGN,
             "number": 1 + i % LINKS, "automated": i % 25 == 0,
             "at": START + timedelta(minutes=i % 2880)} for i in range(CLICKS)])
        session.execute(insert(ClickCount), [
            {"campaign": CAMPAIGN, "number": n, "hour": START + timedelta(hours=h),
             "clicks": CLICKS // LINKS // 48, "automated": 2}
            for n in range(1, LINKS + 1) for h in range(48)])
        session.execute(insert(WebViewCount), [
            {"campaign": CAMPAIGN, "hour": START + timedelta(hours=h), "views": 30}
            for h in range(48)])
        session.execute(insert(ConsentEvent), [
            {"contact_id": i, "kind": "unsubscribe", "source": "bench", "campaign": CAMPAIGN,
             "at": START} for i in range(3, RECIPIENTS, 400)])
    db.close()


def _delivery(i: int) -> dict[str, object]:
    row: dict[str, object] = {"send_id": 1, "contact_id": i, "email": f"p{i}@example.org",
                              "state": "sent", "attempts": 1, "last_code": 250,
                              "sent_at": START + timedelta(seconds=i // 10)}
    if i % 50 == 0:
        code, error = FAILURES[(i // 50) % len(FAILURES)]
        row |= {"state": "failed", "last_code": code, "last_error": error, "sent_at": None}
    elif i % 200 == 1:
        row |= {"state": "deferred", "attempts": 2, "last_code": 451, "sent_at": None}
    return row


def peak_rss_kb() -> int:
    found = re.search(r"^VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    return int(found.group(1)) if found else 0


def child(url: str) -> None:
    """In a fresh process: build the report and its JSON; time and memory."""
    from citesmail.reports.data import campaign_report
    from citesmail.reports.formats import report_json

    db = open_database(url)
    before = peak_rss_kb()
    tracemalloc.start()
    start = time.perf_counter()
    size = len(report_json(campaign_report(db, CAMPAIGN)))
    seconds = time.perf_counter() - start
    _, traced = tracemalloc.get_traced_memory()
    print(json.dumps({"seconds": seconds, "traced_kb": traced // 1024, "size": size,
                      "before_kb": before, "peak_kb": peak_rss_kb()}))


def _children_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def command_seconds(url: str) -> tuple[float, float]:
    """(wall, CPU) seconds of one `citesmail report` process: on a busy machine the CPU
    time says what the command costs, the wall time also what it waited for."""
    env = {**os.environ, "CITESMAIL_DATABASE_URL": json.dumps(url)}
    cpu, start = _children_cpu(), time.perf_counter()
    done = subprocess.run([str(CITESMAIL), "report", CAMPAIGN, "--format", "json"], env=env,
                          capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - start
    assert json.loads(done.stdout)["recipients"] == RECIPIENTS
    return seconds, _children_cpu() - cpu


def measure(backend: str, url: str, runs: int) -> list[str]:
    fill(url)
    command_seconds(url)  # untimed warm-up: the file's pages in the OS cache
    timed = [command_seconds(url) for _ in range(runs)]
    wall = statistics.median(seconds for seconds, _ in timed)
    cpu = statistics.median(used for _, used in timed)
    children = [json.loads(subprocess.run([sys.executable, __file__, "--child", url],
                                          check=True, capture_output=True, text=True).stdout)
                for _ in range(runs)]
    inside = statistics.median(c["seconds"] for c in children)
    traced = max(c["traced_kb"] for c in children) / 1024
    peak = max(c["peak_kb"] for c in children) / 1024
    before = max(c["before_kb"] for c in children) / 1024
    verdict = "ok" if wall <= TARGET_S else "over target"
    return [f"report --format json, {RECIPIENTS:,} recipients, {CLICKS:,} clicks, {backend}",
            f"{wall:.2f} s", f"{cpu:.2f} s", f"{inside * 1000:.0f} ms",
            f"{traced:.1f} MB traced; RSS {peak:.0f} MB ({before:.0f} MB before)",
            f"target {TARGET_S:g} s: {verdict}"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--pg", metavar="URL", help="also on this PostgreSQL (a schema "
                        "of its own is made and dropped)")
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--child", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    compile_bytecode()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        rows.append(measure("SQLite", f"sqlite:///{folder}/bench.db", args.runs))
    if args.pg:
        rows.append(_on_postgresql(args.pg, args.runs))
    header = ["case", "command (median)", "command CPU (median)", "report in process (median)",
              "peak memory", "verdict"]
    print(text_table(header, rows))
    if args.write_docs:
        write_section("Campaign report", "## Campaign report\n\n"
                      "`.venv/bin/python benchmarks/report_build.py --write-docs` "
                      f"(median of {args.runs} runs; a busy shared 2-core VM). The command "
                      "time includes the process start; the report itself is a handful of "
                      "GROUP BY queries.\n\n" + markdown_table(header, rows) + "\n")


def _on_postgresql(url: str, runs: int) -> list[str]:
    from sqlalchemy import create_engine

    schema = f"bench_report_{os.getpid()}"
    admin = create_engine(url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        return measure("PostgreSQL", f"{url}{'&' if '?' in url else '?'}options="
                                     f"-csearch_path%3D{schema}", runs)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    main()
