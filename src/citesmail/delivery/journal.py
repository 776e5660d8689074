"""A send run's journal: what happened to each message between two database commits.

The send log is committed in batches (a commit per message cost more than sending it),
so the rows of a batch are all `sending` while its messages go out one by one. The
journal says which of them really went: `D <id>` is appended just before a message's
bytes leave, `S <id>` when the server (or the outbox) has taken it, `N <id>` when it
answered no (the message is not there). Each line is one `pwrite` into space reserved
ahead: a killed process loses none of them (the kernel has them), and a full disk cannot
keep a message's answer from being written once its bytes left. A run that follows
knows, for every row left `sending`, by the last line about it:

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

import errno
import fcntl
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from ..db import database_key
from ..errors import CitesmailError

MAGIC = "citesmail-journal"
LINE_MAX = 24  # b"S 18446744073709551615\n" and a margin
CHUNK = 64 * 1024  # reserved at a time: about 3,000 lines


class JournalError(CitesmailError):
    """A line of the journal could not be written: no message may go without it."""


class JournalInUse(Exception):
    """The journal's run is still going, in another process of this machine."""


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
    # The space reserved ahead reads as NUL bytes after the last line; a last line
    # without its newline was never finished.
    lines = [line.strip(b"\0") for line in data.split(b"\n")[:-1]]
    if not lines or lines[0].decode("ascii", "replace") != f"{MAGIC} {run_id} {boot}":
        return None
    last: dict[int, bytes] = {}
    for line in lines[1:]:
        if not line:
            continue
        mark, _, number = line.partition(b" ")
        if mark not in (b"D", b"S", b"N") or not number.isdigit():
            return None  # a damaged line: what it said is lost
        last[int(number)] = mark
    return Recovered(frozenset(i for i, mark in last.items() if mark == b"S"),
                     frozenset(i for i, mark in last.items() if mark == b"D"))


class Journal:
    """The journal a run writes to, locked for as long as the run goes. Its methods are
    safe from several threads: each line is one pwrite() at an offset of its own.

    Space is reserved ahead (fallocate): a message's `D` line is written only when the
    answer line of every message in flight, its own included, is sure to fit. So on a
    full disk a message may fail to start, but a message that went always gets its
    answer written, and the next run never has to call it `unknown` for lack of space."""

    def __init__(self, path: Path, run_id: str) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.offset = self.allocated = 0
        self.in_flight: set[int] = set()  # `D` written, answer not yet
        self.failure: JournalError | None = None  # once a line fails, every later one
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise
        except OSError as exc:
            raise self._error(exc) from None
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        try:
            self._write(f"{MAGIC} {run_id} {boot_id()}\n".encode("ascii"), reserve=True)
        except JournalError:
            self.close(remove=True)
            raise

    def _error(self, exc: OSError) -> JournalError:
        cause = "the disk is full" if exc.errno == errno.ENOSPC else exc.strerror
        return JournalError(f"cannot write the send journal {self.path}: {exc.strerror}",
                            f"{cause}: fix it, then run the same command to resume "
                            "(no message goes without its journal line)")

    def _reserve(self, size: int) -> None:
        """Make sure `size` more bytes, past the answers owed, are on the disk."""
        needed = self.offset + size + LINE_MAX * len(self.in_flight)
        if needed > self.allocated:
            grow = max(needed - self.allocated, CHUNK)
            self._allocate(self.allocated, grow)
            self.allocated += grow

    def _write(self, line: bytes, *, reserve: bool, opens: int | None = None,
               closes: int | None = None) -> None:
        """One line, at the next offset. `opens`: the message whose answer the journal
        owes from now on; `closes`: the one whose answer this line is."""
        with self.lock:
            if self.failure is not None:  # never a line after a missing one
                raise self.failure
            if reserve:
                try:
                    self._reserve(len(line) + LINE_MAX)
                except OSError as exc:  # nothing written: the answers owed still fit
                    raise self._error(exc) from None
            try:
                written = self._pwrite(line, self.offset)
                if written != len(line):  # cannot happen in reserved space
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            except OSError as exc:
                self.failure = self._error(exc)
                raise self.failure from None
            self.offset += written
            if opens is not None:
                self.in_flight.add(opens)
            if closes is not None:
                self.in_flight.discard(closes)

    def _allocate(self, offset: int, size: int) -> None:
        os.posix_fallocate(self.fd, offset, size)

    def _pwrite(self, line: bytes, offset: int) -> int:
        return os.pwrite(self.fd, line, offset)

    def transmitting(self, delivery_id: int) -> None:
        self._write(b"D %d\n" % delivery_id, reserve=True, opens=delivery_id)

    def accepted(self, delivery_id: int) -> None:
        self._answer(b"S", delivery_id)

    def refused(self, delivery_id: int) -> None:
        self._answer(b"N", delivery_id)

    def _answer(self, mark: bytes, delivery_id: int) -> None:
        with self.lock:
            owed = delivery_id in self.in_flight
        if mark == b"N" and not owed:
            return  # refused before its bytes left: no line says more than none
        self._write(b"%s %d\n" % (mark, delivery_id), reserve=not owed, closes=delivery_id)

    def close(self, *, remove: bool) -> None:
        """Close; remove the file once the database holds everything it said."""
        os.close(self.fd)
        if remove:
            self.path.unlink(missing_ok=True)
