"""A send run's journal: what happened to each message between two database commits.

The send log is committed in batches (a commit per message cost more than sending it),
so the rows of a batch are all `sending` while its messages go out one by one. The
journal says which of them really went: `D <id>` is appended just before a message's
bytes leave, `S <id>` when the server (or the outbox) has taken it, `N <id>` when it
answered no (the message is not there). Each line is one `write` to a file opened with
O_APPEND: a killed process loses none of them (the kernel has them), so a run that
follows knows, for every row left `sending`, by the last line about it:

- `S`: sent; `D`: the server may have it (`unknown`, never resent unless asked);
  `N` or no line: it is not there (back to `queued`).

Each run has a file of its own, named after the run, and holds a lock on it while it
runs (another run finding the lock taken does not start). The first line names the run
and the machine's boot. The send row in the database names the run that last held it,
and a journal is believed only for that run, only during the boot that wrote it (a power
cut can lose its last lines) and only when every line reads back whole. Otherwise the
rows left `sending` are all `unknown`, as when nothing is known.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

MAGIC = "citesmail-journal"


class JournalInUse(Exception):
    """The journal's run is still going, in another process of this machine."""


def database_key(url: str) -> str:
    """A short name for a database (server, name, options), for file names."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:12]


def journal_path(database_file: str | None, workspace: Path, database: str, send_id: int,
                 run_id: str) -> Path:
    """Beside the SQLite database (as its -wal file is); for a database server, in the
    workspace's .citesmail folder, named after the database too."""
    name = f"send-{send_id}-{run_id}.journal"
    if database_file and database_file != ":memory:":
        return Path(f"{database_file}-{name}")
    return workspace / ".citesmail" / f"{database_key(database)}-{name}"


def boot_id() -> str:
    """This boot of the machine (Linux); empty where unknown (then no journal is believed)."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


@dataclass(frozen=True)
class Recovered:
    accepted: frozenset[int]  # the server took them
    transmitting: frozenset[int]  # they may have gone: unknown


def read_journal(path: Path, run_id: str | None, boot: str | None = None) -> Recovered | None:
    """What the journal of `run_id` says, or None when it cannot be believed; raises
    JournalInUse when its run is still going."""
    boot = boot_id() if boot is None else boot
    if run_id is None or not boot:
        return None
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    with os.fdopen(descriptor, "rb") as file:
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise JournalInUse(str(path)) from None
        data = file.read()
    lines = data.split(b"\n")[:-1]  # a last line without its newline was never finished
    if not lines or lines[0].decode("ascii", "replace") != f"{MAGIC} {run_id} {boot}":
        return None
    last: dict[int, bytes] = {}
    for line in lines[1:]:
        mark, _, number = line.partition(b" ")
        if mark not in (b"D", b"S", b"N") or not number.isdigit():
            return None  # a damaged line: what it said is lost
        last[int(number)] = mark
    return Recovered(frozenset(i for i, mark in last.items() if mark == b"S"),
                     frozenset(i for i, mark in last.items() if mark == b"D"))


class Journal:
    """The journal a run appends to, locked for as long as the run goes. Its methods are
    safe from several threads: each line is a single write() on an O_APPEND file."""

    def __init__(self, path: Path, run_id: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        self._line(f"{MAGIC} {run_id} {boot_id()}\n".encode("ascii"))

    def _line(self, line: bytes) -> None:
        if os.write(self.fd, line) != len(line):  # the disk is full: say so
            raise OSError(f"the send journal {self.path} could not be written (disk full?)")

    def transmitting(self, delivery_id: int) -> None:
        self._line(b"D %d\n" % delivery_id)

    def accepted(self, delivery_id: int) -> None:
        self._line(b"S %d\n" % delivery_id)

    def refused(self, delivery_id: int) -> None:
        self._line(b"N %d\n" % delivery_id)

    def close(self, *, remove: bool) -> None:
        """Close; remove the file once the database holds everything it said."""
        os.close(self.fd)
        if remove:
            self.path.unlink(missing_ok=True)
