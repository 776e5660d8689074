"""Database failures a user can act on, said as their real cause: a full disk, a file or
folder that cannot be written, another process holding the lock, a wrong URL."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.exc import DatabaseError, OperationalError

from .errors import CitesmailError

DEFAULT_BUSY_TIMEOUT = timedelta(seconds=5)
RESUME = "then run the command again (a send resumes where it stopped)"
# PostgreSQL's SQLSTATE codes for the causes named below.
_PG_DISK_FULL, _PG_READ_ONLY = "53100", "25006"


class DatabaseBusy(CitesmailError):
    """Another process held the lock for longer than the busy timeout."""


def sqlite_file(engine: Engine) -> Path | None:
    url = engine.url
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


def describe(engine: Engine) -> str:
    path = sqlite_file(engine)
    return str(path) if path is not None else engine.url.render_as_string()


def sidecars(path: Path) -> list[Path]:
    """The database file and the two SQLite keeps beside it in WAL mode."""
    return [path, Path(f"{path}-wal"), Path(f"{path}-shm")]


def unwritable(path: Path) -> Path | None:
    """The first of the folder, the database file and its -wal and -shm files that this
    process cannot write (a read-only file, a read-only mount), if any."""
    if not os.access(path.parent, os.W_OK):
        return path.parent
    return next((p for p in sidecars(path) if p.exists() and not os.access(p, os.W_OK)), None)


def disk_full(path: Path) -> bool:
    try:
        return os.statvfs(path.parent).f_bavail == 0
    except OSError:
        return False


def _read_only(engine: Engine) -> CitesmailError:
    path = sqlite_file(engine)
    if path is None:
        return CitesmailError(f"the database {describe(engine)} is read-only",
                              "the server is a standby or in read-only mode: use the primary")
    culprit = unwritable(path) or path
    if culprit == path.parent:
        return CitesmailError(f"the folder {culprit} holding {path.name} is read-only",
                              f"make it writable (chmod u+w {culprit}), {RESUME}")
    return CitesmailError(f"{culprit} is read-only",
                          f"make it writable (chmod u+w {culprit}), {RESUME}")


def _full(engine: Engine) -> CitesmailError:
    path = sqlite_file(engine)
    where = f"the disk holding {path}" if path is not None else \
        f"the disk of the database server ({describe(engine)})"
    return CitesmailError(f"{where} is full", f"free some space, {RESUME}")


def diagnose(engine: Engine, error: DatabaseError,
             busy_timeout: timedelta) -> CitesmailError | None:
    """The error a user can act on, or None for one that is not theirs to fix."""
    message = str(error.orig)
    code = getattr(error.orig, "sqlstate", None)
    path = sqlite_file(engine)
    if "database or disk is full" in message or code == _PG_DISK_FULL:
        return _full(engine)
    if "readonly database" in message or code == _PG_READ_ONLY:
        return _read_only(engine)
    if path is not None and ("disk I/O error" in message or "unable to open" in message):
        if disk_full(path):
            return _full(engine)
        if unwritable(path) is not None:
            return _read_only(engine)
        return CitesmailError(f"cannot read or write {path} ({message})",
                              "check that the disk is there and the file is readable")
    if "locked" in message or "busy" in message:
        return DatabaseBusy(
            f"the database {describe(engine)} is locked by another process",
            f"waited {busy_timeout.total_seconds():g} s; try again when the other "
            "command ends ([database] busy_timeout sets the wait)")
    if "not a database" in message:
        return CitesmailError(f"{describe(engine)} is not a SQLite database",
                              "check [database] url in config.toml")
    if isinstance(error, OperationalError):
        return CitesmailError(f"database error on {describe(engine)}: {message}",
                              "check [database] url in config.toml")
    return None


@contextmanager
def translate_errors(engine: Engine,
                     busy_timeout: timedelta = DEFAULT_BUSY_TIMEOUT) -> Iterator[None]:
    """Database failures a user can act on become one-line CitesmailErrors."""
    try:
        yield
    except DatabaseError as exc:
        error = diagnose(engine, exc, busy_timeout)
        if error is None:
            raise
        raise error from None


def repair_sidecars(path: Path) -> None:
    """Make the -wal and -shm files as writable as the database file. SQLite creates them
    with the database file's permissions: opened while that file was read-only, they stay
    read-only after it is writable again, and every later command fails, reads too."""
    try:
        database = path.stat()
    except OSError:
        return
    if not os.access(path, os.W_OK):
        return  # read-only on purpose (or a read-only mount): leave it as it is
    for side in sidecars(path)[1:]:
        if not side.exists() or os.access(side, os.W_OK):
            continue
        try:
            os.chmod(side, stat.S_IMODE(database.st_mode))
        except OSError:
            raise CitesmailError(f"{side} is read-only (left by a command that ran while "
                                 f"{path.name} was read-only)",
                                 f"make it writable: chmod u+w {side} (its owner can), "
                                 "then run the command again") from None
