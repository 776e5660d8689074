"""The intake: what a person asks through `citesmail serve`, made durable before the database.

An unsubscribe is a legal obligation, and SQLite lets one writer at a time: a big import
holds the write lock for minutes, longer than any busy timeout. So `serve` does not write
the request into the database first. It appends one line to the intake, a file beside the
SQLite file (`citesmail.db-intake`; with PostgreSQL, in the workspace's `.citesmail/`
folder, named after the database), makes it durable, answers, and only then applies it.

- Appending: each line is `<contact id> <what> <when> <crc32>` between newlines (since
  measurement: `<contact id> <what> <when> <campaign> <link number> <automated> <crc32>`,
  contact 0 when the line names nobody; older lines are still read), written
  by a single `os.write` on an O_APPEND file and then `os.fsync`ed; only then does `serve`
  answer 2xx. A write that fails (disk full) raises IntakeError and `serve` answers 503.
  The checksum rejects a line torn by a failed write; the leading newline keeps such a
  fragment from swallowing the line after it.
- Applying (`apply_pending`): one process at a time (an flock on `<intake>.lock`) reads
  the file, applies every line in one transaction (idempotent: only an `active` contact
  becomes `unsubscribed`), and removes the lines it read only once that transaction has
  committed. A failure midway leaves the file as it was; a crash after the commit and
  before the removal only applies the same lines again, which changes nothing.
- Appenders hold a shared flock on the intake while they write; removing lines takes it
  exclusively, so no line is half-written then. Lines that came in after the read are
  kept: copied into a new file that replaces the old one (an appender that opened the
  old one sees it was replaced and opens the new one before writing).
- Sends: every send applies the pending lines before it claims recipients, and each
  claim skips the contacts that a pending line unsubscribes, read after the claim's
  transaction has begun, so a request answered before the claim is never mailed even
  while the database is still locked.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from .audience.status import leave
from .db import Database, database_key, utcnow
from .dberrors import sqlite_file
from .errors import CitesmailError
from .states import ContactStatus
from .tracking.counts import Hit, add_clicks, add_opens, add_web_views

UNSUBSCRIBE = "unsubscribe"
CLICK = "click"  # a counted link followed (/c/)
OPEN = "open"  # a consenting contact's pixel loaded (/o/)
WEB_VIEW = "view"  # a web view read (/v/)


class IntakeError(CitesmailError):
    """A request could not be made durable (the disk is full, the file unwritable)."""


@dataclass(frozen=True)
class Entry:
    contact_id: int
    what: str
    when: datetime
    campaign: str = ""  # the campaign whose link it came through ("": not known)
    number: int = 0  # a click's link
    automated: bool = False  # a click likely made by a machine (a scanner, a prefetch)


def intake_path(db: Database, workspace: Path) -> Path:
    """Beside the SQLite file (as its -wal file is); for a database server, in the
    workspace's .citesmail folder, named after the database."""
    database_file = sqlite_file(db.engine)
    if database_file is not None:
        return Path(f"{database_file}-intake")
    name = database_key(db.engine.url.render_as_string(hide_password=True))
    return workspace / ".citesmail" / f"{name}-intake"


def _record(entry: Entry) -> bytes:
    body = f"{entry.contact_id} {entry.what} {entry.when.isoformat()}"
    if entry.campaign:
        body += f" {entry.campaign} {entry.number} {int(entry.automated)}"
    data = body.encode("ascii")
    return b"\n%s %08x\n" % (data, zlib.crc32(data))


def _entry(fields: list[str]) -> Entry:
    """A line's fields (ValueError when it is not a line this citesmail wrote)."""
    contact, what, when, *more = fields
    entry = Entry(int(contact), what, datetime.fromisoformat(when))
    if not more:  # a line from before measurement: an unsubscribe without its campaign
        return entry
    campaign, number, automated = more
    if not campaign or automated not in ("0", "1"):
        raise ValueError(campaign)
    return Entry(entry.contact_id, what, entry.when, campaign, int(number), automated == "1")


def parse(data: bytes) -> list[Entry]:
    """The whole lines of an intake; torn or damaged ones are left out."""
    found = []
    for line in data.split(b"\n"):
        body, _, crc = line.rpartition(b" ")
        if not body or crc != b"%08x" % zlib.crc32(body):
            continue
        try:
            found.append(_entry(body.decode("ascii").split(" ")))
        except ValueError:  # not a line this citesmail wrote
            continue
    return found


def _fsync_directory(path: Path) -> None:
    descriptor = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _open_current(path: Path) -> int:
    """The intake open for appending, share-locked, and still the one at `path` (not a
    file that the applier has just replaced)."""
    while True:
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_APPEND)
            created = False
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            created = True
        try:
            if created:
                _fsync_directory(path)  # the new name must survive a crash too
            fcntl.flock(descriptor, fcntl.LOCK_SH)
            with contextlib.suppress(FileNotFoundError):
                if os.fstat(descriptor).st_ino == os.stat(path).st_ino:
                    return descriptor
        except BaseException:
            os.close(descriptor)
            raise
        os.close(descriptor)


def append(path: Path, contact_id: int, what: str = UNSUBSCRIBE, *, campaign: str = "",
           number: int = 0, automated: bool = False) -> None:
    """Make a request durable: when this returns, it survives a crash of this process
    and of the machine."""
    _append(path, _record(Entry(contact_id, what, utcnow(), campaign, number, automated)),
            os.fsync)


def _append(path: Path, record: bytes, sync: Callable[[int], None]) -> None:
    try:
        descriptor = _open_current(path)
        try:
            written = os.write(descriptor, record)
            fcntl.flock(descriptor, fcntl.LOCK_UN)  # fsync needs no lock: don't hold it
            if written != len(record):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            sync(descriptor)
        finally:
            os.close(descriptor)
    except OSError as exc:
        raise IntakeError(f"cannot record the request in {path}: {exc.strerror or exc}",
                          "free some disk space, or check the file's permissions") from None


class GroupedAppends:
    """Appends from the threads of one process, made durable in groups (clicks: a
    thousand a second on one link cost a thousand fsyncs otherwise).

    Each line is written as `append` writes it. Then one of the writers waiting (the
    first) opens the intake as it now is and fsyncs it while the others wait: that
    flushes every line written to that file before the fsync began, whoever wrote it
    (Linux also reports there a write-back error that no descriptor has reported yet).
    A line written to a file the applier has since replaced is durable already: the
    applier applied it (committed) or copied it into the new file (fsynced). `append`
    returns, as the plain one does, only once its line is durable."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._changed = threading.Condition()
        self._written = 0  # lines written by this process
        self._flushed = 0  # of those, the ones a group's fsync covered
        self._flushing = False

    def append(self, contact_id: int, what: str, *, campaign: str = "", number: int = 0,
               automated: bool = False) -> None:
        record = _record(Entry(contact_id, what, utcnow(), campaign, number, automated))
        _append(self.path, record, self._sync)

    def _sync(self, _written_through: int) -> None:
        with self._changed:
            self._written += 1
            mine = self._written
            while self._flushed < mine:
                if self._flushing:
                    self._changed.wait()
                    continue
                self._flushing, covered = True, self._written
                self._changed.release()
                try:
                    _fsync_current(self.path)
                finally:
                    self._changed.acquire()
                    self._flushing = False
                    self._changed.notify_all()
                self._flushed = max(self._flushed, covered)


def _fsync_current(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def pending_unsubscribes(path: Path) -> frozenset[int]:
    """Contacts whose unsubscribe is in the intake, not yet applied."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return frozenset()
    return frozenset(e.contact_id for e in parse(data) if e.what == UNSUBSCRIBE)


@contextlib.contextmanager
def _applying(path: Path, wait: bool) -> Iterator[bool]:
    """One applier at a time, across processes; False when another one is at it and
    `wait` is not asked (its pass covers what is in the file)."""
    lock = Path(f"{path}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(descriptor)


def _read_all(path: Path) -> bytes:
    """The intake as it is between two appends."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return b""
    with os.fdopen(descriptor, "rb") as file:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        return file.read()


def _remove_applied(path: Path, applied: int) -> None:
    """Drop the first `applied` bytes (those the committed transaction applied), keeping
    whatever came in since."""
    descriptor = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        size = os.fstat(descriptor).st_size
        if size == applied:  # the common case: nothing came in meanwhile
            os.ftruncate(descriptor, 0)
            os.fsync(descriptor)
            return
        os.lseek(descriptor, applied, os.SEEK_SET)
        rest = os.read(descriptor, size - applied)
        fresh = path.with_name(path.name + ".new")
        fresh.write_bytes(rest)
        with open(fresh, "rb") as written:
            os.fsync(written.fileno())
        os.replace(fresh, path)
        _fsync_directory(path)
    finally:
        os.close(descriptor)  # releases the lock: appenders waiting see the new file


SOURCE = "serve: unsubscribe link"  # what the consent history says of these requests


def _hits(entries: list[Entry], what: str) -> list[Hit]:
    return [Hit(e.campaign, e.when, e.number, e.contact_id, e.automated)
            for e in entries if e.what == what and e.campaign]


def _apply(db: Database, entries: list[Entry]) -> None:
    """Each request with the time it was answered (an event per contact that left, with
    the campaign whose link they used), and the clicks, opens and views counted."""
    by_time: dict[tuple[datetime, str], list[int]] = {}
    for entry in entries:
        if entry.what == UNSUBSCRIBE:
            by_time.setdefault((entry.when, entry.campaign), []).append(entry.contact_id)
    with db.session() as session:
        for (when, campaign), ids in by_time.items():
            leave(session, ids, ContactStatus.UNSUBSCRIBED, source=SOURCE, at=when,
                  campaign=campaign or None)
        add_clicks(session, _hits(entries, CLICK))
        add_opens(session, _hits(entries, OPEN))
        add_web_views(session, _hits(entries, WEB_VIEW))


def apply_pending(db: Database, path: Path, *, wait: bool = True) -> int | None:
    """Apply the intake's lines to the database, then remove them. Returns how many
    lines were applied, or None when another process was applying and `wait` is False.
    A database error (locked too long) is raised, and the lines stay for the next try."""
    if not path.exists() or path.stat().st_size == 0:
        return 0
    with _applying(path, wait) as mine:
        if not mine:
            return None
        data = _read_all(path)
        if not data:
            return 0
        entries = parse(data)
        if entries:
            _apply(db, entries)
        _remove_applied(path, len(data))
        return len(entries)
