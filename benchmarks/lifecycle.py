"""The audience's life after a send: `inbox import` of 10,000 mixed messages that came
back, against `bounces import` on the same file and on its bounces alone.

The replay is sent (to the outbox) to 2,000 contacts; the messages are made from what was
sent: 60% bounces (the DSN samples of tests/delivery/bounce_samples/, each about another
contact), 10% ARF complaint reports (Yahoo's format), 10% Microsoft JMRP reports, 5%
mailto: unsubscribe requests, 5% replies asking to unsubscribe, 5% out-of-office replies,
5% a person's ordinary replies. Each command runs as a fresh process on a fresh copy of
the database; its time is wall-clock, its peak memory VmHWM (whole process).
Rerun with `.venv/bin/python benchmarks/lifecycle.py --write-docs`.
"""

from __future__ import annotations

import argparse
import datetime
import mailbox
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the tests' message makers
from tests.inbox.returns import (  # noqa: E402
    MAILTO,
    OUT_OF_OFFICE,
    arf,
    jmrp,
    mailto_request,
    reply,
    sent_messages,
)

from report import DOCS, compile_bytecode, markdown_table, text_table, write_section  # noqa: E402

REPLAY = "2023-06-12-replay-cites-de-l-emploi"
SAMPLES = ROOT / "tests" / "delivery" / "bounce_samples"
DSN_SAMPLES = ["rfc3464-sendmail-user-unknown.eml", "postfix-mailbox-unknown.eml",
               "exim-permanent-error.eml", "microsoft-exchange-ndr.eml",
               "postfix-delayed-warning.eml"]
# The address and contact id each sample is about (its Message-ID names the contact).
SAMPLE_ADDRESS = {"rfc3464-sendmail-user-unknown.eml": ("anne.dupont@example.net", 1),
                  "postfix-mailbox-unknown.eml": ("bruno.martin@example.com", 2),
                  "exim-permanent-error.eml": ("chloe.bernard@example.fr", 3),
                  "microsoft-exchange-ndr.eml": ("David.Petit@mairie-exemple.fr", 4),
                  "postfix-delayed-warning.eml": ("emma.robert@example.com", 5)}
CITESMAIL = Path(sys.executable).parent / "citesmail"
# The command in-process, as the console script runs it, then its peak memory (the
# console script ends with os._exit, which skips atexit).
PEAK = ("import gc, re, sys\n"
        "gc.set_threshold(50_000, 20, 20)\n"
        "from citesmail.cli import main\n"
        "try:\n"
        "    main(sys.argv[1:], prog_name='citesmail')\n"
        "except SystemExit as done:\n"
        "    assert not done.code, done.code\n"
        "found = re.search(r'^VmHWM:\\s+(\\d+) kB', open('/proc/self/status').read(), re.M)\n"
        "sys.stderr.write(f'VmHWM {found.group(1)}\\n')\n")


def address(n: int) -> str:
    return f"contact{n:05d}@exemple-{n % 50}.fr"


def cli(workspace: Path, *args: str) -> None:
    result = subprocess.run([str(CITESMAIL), *args], cwd=workspace, capture_output=True,
                            text=True, env={**os.environ, "CITESMAIL_UNSUBSCRIBE_MAILTO": MAILTO})
    if result.returncode != 0:
        raise SystemExit(f"citesmail {' '.join(args)}: {result.stderr}")


def workspace_with_send(folder: Path, contacts: int) -> Path:
    workspace = folder / "ws"
    (workspace / "campaigns").mkdir(parents=True)
    shutil.copy(ROOT / "config.example.toml", workspace / "config.toml")
    shutil.copy(ROOT / "campaigns" / f"{REPLAY}.md", workspace / "campaigns")
    (workspace / "c.csv").write_text(
        "email\n" + "".join(f"{address(n)}\n" for n in range(1, contacts + 1)), encoding="utf-8")
    cli(workspace, "lists", "add", "tous")
    cli(workspace, "contacts", "import", "c.csv", "--list", "tous")
    cli(workspace, "segments", "add", "partenaires-aura", "--list", "tous")  # the replay's
    cli(workspace, "send", REPLAY, "--yes")
    return workspace


def dsn(rng: random.Random, contacts: int) -> bytes:
    name = rng.choice(DSN_SAMPLES)
    data = (SAMPLES / name).read_bytes()
    old, old_id = SAMPLE_ADDRESS[name]
    n = rng.randint(1, contacts)
    data = re.sub(re.escape(old).encode(), address(n).encode(), data, flags=re.IGNORECASE)
    return data.replace(f"{REPLAY}.{old_id}.".encode(), f"{REPLAY}.{n}.".encode())


def messages(workspace: Path, total: int, contacts: int, seed: int = 13) -> tuple[list[bytes],
                                                                                   list[bytes]]:
    """(all the messages, the bounces among them), in a shuffled order."""
    rng = random.Random(seed)
    sent = sent_messages(workspace / "outbox")
    addresses = sorted(sent)

    def some() -> tuple[str, bytes]:
        chosen = rng.choice(addresses)
        return chosen, sent[chosen]

    bounces = [dsn(rng, contacts) for _ in range(total * 60 // 100)]
    others: list[bytes] = []
    for _ in range(total * 10 // 100):
        others.append(arf(some()[1], user_agent="Yahoo!-Mail-Feedback/2.0", redact_to=True))
        to, original = some()
        others.append(jmrp(original, to, keep_list_unsubscribe=False))
    for _ in range(total * 5 // 100):
        to, original = some()
        others.append(mailto_request(original, to))
        to, original = some()
        others.append(reply(original, to, "Merci de me désinscrire."))
        others.append(OUT_OF_OFFICE)
        to, original = some()
        others.append(reply(original, to, "Merci ! Les diapositives sont-elles en ligne ?"))
    everything = bounces + others
    rng.shuffle(everything)
    return everything, bounces


def write_mbox(path: Path, found: list[bytes]) -> Path:
    box = mailbox.mbox(path)
    box.lock()
    for data in found:
        box.add(data)
    box.flush()
    box.unlock()
    box.close()
    return path


def timed(workspace: Path, database: Path, *args: str) -> tuple[float, int]:
    """(seconds, peak kB) of one command on a fresh copy of the database."""
    shutil.copy(database, workspace / "citesmail.db")
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", PEAK, *args], cwd=workspace,
                            capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"citesmail {' '.join(args)}: {result.stderr}")
    found = re.search(r"^VmHWM (\d+)$", result.stderr, re.MULTILINE)
    return seconds, int(found.group(1)) if found else 0


def machine_line() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text() if cpuinfo.exists()
                      else "", re.MULTILINE)
    return (f"{platform.platform()}; {found.group(1).strip() if found else 'unknown CPU'}; "
            f"{os.cpu_count()} cores; Python {platform.python_version()}")


def inbox_part(total: int, contacts: int, runs: int) -> tuple[list[list[str]], str]:
    with tempfile.TemporaryDirectory(prefix="citesmail-lifecycle-") as tmp:
        folder = Path(tmp)
        workspace = workspace_with_send(folder, contacts)
        database = folder / "sent.db"
        shutil.copy(workspace / "citesmail.db", database)
        everything, bounces = messages(workspace, total, contacts)
        mixed = write_mbox(folder / "mixed.mbox", everything)
        only = write_mbox(folder / "bounces.mbox", bounces)
        cases = [(f"inbox import, {len(everything):,} mixed", ("inbox", "import", str(mixed))),
                 (f"bounces import, the same {len(everything):,}",
                  ("bounces", "import", str(mixed))),
                 (f"bounces import, its {len(bounces):,} bounces alone",
                  ("bounces", "import", str(only)))]
        rows = []
        for label, args in cases:
            found = [timed(workspace, database, *args) for _ in range(runs)]
            seconds = statistics.median(s for s, _ in found)
            peak = max(kb for _, kb in found)
            per = seconds / (len(everything) if "bounces alone" not in label else len(bounces))
            rows.append([label, f"{seconds:.2f} s", f"{per * 1e6:.0f} µs",
                         f"{peak / 1024:.0f} MB"])
    return rows, machine_line()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--contacts", type=int, default=2_000)
    parser.add_argument("--runs", type=int, default=3, help="runs of each command (median)")
    parser.add_argument("--write-docs", action="store_true", help=f"rewrite ## Inbox in {DOCS}")
    options = parser.parse_args()
    compile_bytecode()
    rows, machine = inbox_part(options.messages, options.contacts, options.runs)
    header = ["command", "time (median)", "per message", "peak memory (VmHWM)"]
    print(text_table(header, rows))
    print(machine)
    if options.write_docs:
        write_section("Inbox", (
            "## Inbox\n\n"
            f"`citesmail inbox import` of an mbox of {options.messages:,} messages that came "
            f"back after the replay was sent to {options.contacts:,} contacts (outbox): 60% "
            "bounces (the DSN samples of `tests/delivery/bounce_samples/`, each about another "
            "contact), 10% ARF complaint reports (Yahoo's format) and 10% Microsoft JMRP "
            "reports quoting the messages sent, 5% each of mailto: unsubscribe requests, "
            "replies asking to unsubscribe, out-of-office replies and ordinary replies; against "
            "`bounces import` on the same file and on its bounces alone. Each command is a "
            f"fresh process on a fresh copy of the SQLite database, median of {options.runs}; "
            "peak memory is VmHWM, whole process. Rerun with "
            "`.venv/bin/python benchmarks/lifecycle.py --write-docs`.\n\n"
            f"Machine: {machine}\n\nDate: {datetime.date.today().isoformat()}\n\n"
            + markdown_table(header, rows) + "\n"))


if __name__ == "__main__":
    main()
