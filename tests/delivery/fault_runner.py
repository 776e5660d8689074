"""Runs sends with a fault injected, in a process of its own (tests/delivery/test_faults.py).

    python tests/delivery/fault_runner.py TEMPLATE WORK KIND FIRST LAST

KIND: commit-once, commit-from, commit-lost (the Nth commit is made, then reported
failed, as a connection lost after COMMIT does), journal, journal-space, or disk-full (the journal
cannot grow past N chunks, and from then on no commit succeeds either).

TEMPLATE is a workspace with its contacts imported; for each N from FIRST to LAST, a
copy of it gets a `send` whose Nth database commit fails (once, or that one and every
later one: a full disk), whose Nth journal line cannot be written, or whose journal cannot
grow past N chunks (a full disk); then the fault is
lifted and the same `send` runs again, then `send --resend-unknown`. A real SMTP server
(aiosmtpd on 127.0.0.1, in this process) counts what each recipient received. One JSON
line per N says what the faulty run printed and what the server got.

With N = 0, nothing fails: the line says how many commits and journal lines a whole
send makes, so the test knows which N to try.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository

from citesmail.cli import main
from citesmail.delivery import journal
from citesmail.delivery.journal import Journal
from tests.smtp_server import SmtpServer

CAMPAIGN = "2023-06-12-replay-cites-de-l-emploi"
counted = {"commit": 0, "journal": 0}


@contextmanager
def fault(kind: str, n: int) -> Iterator[None]:
    """Session.commit (or Journal._line) fails at its Nth call, as a full disk makes it."""
    commit, line, allocate = Session.commit, Journal._pwrite, Journal._allocate
    counted.update(commit=0, journal=0)

    full = [False]  # disk-full: the journal could not grow, nor can the database

    def failing_commit(self: Session) -> None:
        counted["commit"] += 1
        failing = full[0] or (kind.startswith("commit") and (counted["commit"] == n or (
            kind == "commit-from" and 0 < n < counted["commit"])))
        if failing and kind == "commit-lost":  # it did commit, but the answer says no
            commit(self)
        if failing:
            raise OperationalError("COMMIT", {}, sqlite3.OperationalError(
                "database or disk is full"))
        commit(self)

    def failing_line(self: Journal, data: bytes, offset: int) -> int:
        counted["journal"] += 1
        if kind == "journal" and counted["journal"] == n:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return line(self, data, offset)

    def failing_allocate(self: Journal, offset: int, size: int) -> None:
        if kind in ("journal-space", "disk-full") and offset // journal.CHUNK + 1 >= n:
            full[0] = kind == "disk-full"
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        allocate(self, offset, size)

    chunk = journal.CHUNK
    if kind in ("journal-space", "disk-full"):
        journal.CHUNK = 512  # a few lines at a time: the disk fills in mid-send
    Session.commit = failing_commit  # type: ignore[method-assign]
    Journal._pwrite = failing_line  # type: ignore[method-assign]
    Journal._allocate = failing_allocate  # type: ignore[method-assign]
    try:
        yield
    finally:
        Session.commit, journal.CHUNK = commit, chunk  # type: ignore[method-assign]
        Journal._pwrite, Journal._allocate = line, allocate  # type: ignore[method-assign]


def send(*extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["send", CAMPAIGN, "--yes", *extra],
                                prog_name="citesmail")
    return result.exit_code, result.output


def one(template: Path, work: Path, kind: str, n: int, server: SmtpServer) -> dict[str, object]:
    workspace = work / f"{kind}-{n}"
    shutil.copytree(template, workspace)
    os.chdir(workspace)
    server.handler.received.clear()
    with fault(kind, n):
        code, faulty = send()
    resumed_code, resumed = send()
    _, again = send("--resend-unknown")
    return {"n": n, "code": code, "output": faulty, "resumed_code": resumed_code,
            "resumed": resumed, "again": again, "commits": counted["commit"],
            "journal_lines": counted["journal"], "received": dict(server.handler.received),
            "journals": sorted(p.name for p in workspace.glob("*.journal"))}


def main_() -> None:
    template, work, kind, first, last = sys.argv[1:6]
    with SmtpServer() as server:
        os.environ["CITESMAIL_SMTP_PORT"] = str(server.port)
        for n in range(int(first), int(last) + 1):
            print(json.dumps(one(Path(template), Path(work), kind, n, server)), flush=True)


if __name__ == "__main__":
    main_()
