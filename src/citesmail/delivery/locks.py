"""Locks that die with their process: one worker per database, one run per send.

PostgreSQL: a session advisory lock on a connection kept open. SQLite: an flock on a
file beside the database. Either way a killed process leaves no stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from ..db import Database


class Busy(Exception):
    """Another process holds the lock."""

    def __init__(self, holder: str) -> None:
        super().__init__(holder)
        self.holder = holder


class ProcessLock:
    def __init__(self, db: Database, name: str) -> None:
        self.db, self.name = db, name
        self.handle: Any = None
        self.path: Path | None = None
        self.key: int | None = None

    def acquire(self) -> None:
        if self.db.is_postgresql:
            self._acquire_advisory()
        else:
            self._acquire_file()

    def _acquire_advisory(self) -> None:
        connection = self.db.engine.connect()
        key = connection.execute(text(
            "SELECT hashtext(:name || ':' || current_database() || ':' || current_schema())"),
            {"name": f"citesmail:{self.name}"}).scalar()
        if not connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
            connection.close()
            raise Busy("another process")
        connection.commit()
        self.handle, self.key = connection, key

    def _acquire_file(self) -> None:
        database = self.db.engine.url.database or "citesmail.db"
        path = Path(f"{database}.{self.name}.lock")
        while True:
            handle = path.open("a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held = False
            except BlockingIOError:
                held = True
            if not _same_file(handle, path):  # its holder removed it as we opened it
                handle.close()
                continue
            if held:
                handle.seek(0)
                holder = handle.read().strip() or "?"
                handle.close()
                raise Busy(f"pid {holder}")
            break
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self.handle, self.path = handle, path

    def release(self) -> None:
        if self.handle is None:
            return
        if self.db.is_postgresql:
            self._release_advisory()
        elif self.path is not None and _same_file(self.handle, self.path):
            self.path.unlink(missing_ok=True)  # removed while held: no file left behind
        self.handle.close()
        self.handle = None

    def _release_advisory(self) -> None:
        """Unlock before ending the session: a closed connection's server process lets go
        of its locks only when it exits, a moment later, and a process that asks for the
        lock in that moment would be told it is held."""
        try:
            self.handle.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
            self.handle.commit()
        except DBAPIError:
            pass  # the session is gone already, and its locks with it
        # The lock belongs to the database session: end it, not just the checkout.
        self.handle.invalidate()

    def __enter__(self) -> ProcessLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _same_file(handle: Any, path: Path) -> bool:
    """Whether `path` still names the file `handle` has open."""
    try:
        return os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
    except FileNotFoundError:
        return False
