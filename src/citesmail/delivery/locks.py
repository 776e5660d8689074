"""Locks that die with their process: one worker per database, one run per send.

PostgreSQL: a session advisory lock on a connection kept open. SQLite: an flock on a
file beside the database. Either way a killed process leaves no stale lock behind.

A lock with a `Liveness` (the worker's, on PostgreSQL) also dies with its holder's
machine or network: the server drops a session that stopped answering its TCP
keepalives, and the holder checks its session often enough to know it lost the lock
before anyone else can take it (docs/delivery.md, "Standby workers").
"""

from __future__ import annotations

import fcntl
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError

from ..db import Database
from . import runs


class Busy(Exception):
    """Another process holds the lock."""

    def __init__(self, holder: str) -> None:
        super().__init__(holder)
        self.holder = holder


@dataclass(frozen=True)
class Liveness:
    """The times that bound a takeover to `takeover` seconds. The server drops a holder
    gone silent `drop_after` seconds after the last packet it had from it (TCP
    keepalives); the holder gives its lock up once its session has not answered for
    `lost_after` seconds, before that; a waiting process asks for the lock every `poll`
    seconds."""

    takeover: float

    @property
    def heartbeat(self) -> float:
        return self.takeover / 6

    @property
    def lost_after(self) -> float:
        return self.takeover / 3

    @property
    def poll(self) -> float:
        return min(1.0, self.takeover / 10)

    def server_settings(self) -> dict[str, int]:
        """The session's own TCP settings on the server (PostgreSQL lets a session set
        them): idle seconds before the first probe, then probes `interval` apart."""
        return {"tcp_keepalives_idle": max(1, int(self.takeover / 2)),
                "tcp_keepalives_interval": max(1, int(self.takeover / 12)),
                "tcp_keepalives_count": 3,
                "tcp_user_timeout": max(1000, int(self.takeover * 1000 / 4))}

    @property
    def drop_after(self) -> float:
        """The first probe goes `idle` seconds after the last packet; `interval` later
        more than `tcp_user_timeout` (never longer than `idle`) has passed without an
        answer, and Linux's keepalive timer ends the connection instead of probing
        again: the probe count is never reached."""
        found = self.server_settings()
        return found["tcp_keepalives_idle"] + found["tcp_keepalives_interval"]

    def client_settings(self) -> dict[str, int]:
        """The same bounds on the holder's side, for all its connections (libpq's
        parameters): over a network cut a question fails, and so does opening a
        connection, instead of waiting for TCP to give up (about 15 minutes)."""
        server = self.server_settings()
        return {"keepalives": 1, "keepalives_idle": server["tcp_keepalives_idle"],
                "keepalives_interval": server["tcp_keepalives_interval"],
                "keepalives_count": server["tcp_keepalives_count"],
                "tcp_user_timeout": server["tcp_user_timeout"],
                "connect_timeout": max(2, int(self.takeover / 4))}  # libpq's least is 2


def bound_connections(db: Database, liveness: Liveness) -> None:
    """Open the database's connections from now on with the bounds of `liveness` on
    both sides (PostgreSQL): `client_settings()`, and `server_settings()` for their
    sessions, so that the server also drops the sessions of a worker cut off (else they
    stay for the system's keepalive time, two hours, and fill `max_connections`). The
    idle ones in the pool are closed, so that none is used again."""
    server = " ".join(f"-c {name}={value}" for name, value in liveness.server_settings().items())

    @event.listens_for(db.engine, "do_connect")
    def _bounded(_dialect: Any, _record: Any, _args: Any, params: dict[str, Any]) -> None:
        params.update(liveness.client_settings())
        params["options"] = f"{params.get('options', '')} {server}".strip()

    db.engine.dispose()


def holder_label() -> str:
    """Who holds a lock, as PostgreSQL shows it to the others (application_name)."""
    return f"citesmail on {socket.gethostname()} (pid {os.getpid()})"[:63]


class ProcessLock:
    def __init__(self, db: Database, name: str, liveness: Liveness | None = None, *,
                 shared: bool = False) -> None:
        """`shared` (PostgreSQL): held by several processes at once, and by none while a
        process holds it alone (the runs of a send that take joiners)."""
        self.db, self.name, self.liveness, self.shared = db, name, liveness, shared
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
        function = "pg_try_advisory_lock_shared" if self.shared else "pg_try_advisory_lock"
        if not connection.execute(text(f"SELECT {function}(:k)"), {"k": key}).scalar():
            holder = connection.execute(text(
                "SELECT a.application_name, a.pid FROM pg_locks l "
                "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
                "AND l.objid = CAST(:k AS integer)::oid AND l.objsubid = 1 AND l.granted"),
                {"k": key}).first()
            connection.close()
            raise Busy(_holder(holder))
        settings: dict[str, object] = {"application_name": holder_label()}
        if self.liveness is not None:
            settings |= self.liveness.server_settings()
        for name, value in settings.items():  # this session only: it is never pooled again
            connection.execute(text("SELECT set_config(:n, :v, false)"),
                               {"n": name, "v": str(value)})
        connection.commit()
        self.handle, self.key = connection, key

    def hold_run(self, run_id: str) -> int | None:
        """PostgreSQL: hold the lock of the run `run_id` too, on this lock's session
        (delivery/runs.py); returns that session's server process. None on SQLite."""
        if self.handle is None or not self.db.is_postgresql:
            return None
        pid = runs.hold(self.handle, run_id)
        self.handle.commit()
        return pid

    def answers(self) -> bool:
        """Whether the session holding the lock (PostgreSQL) still answers: once it does
        not, the lock may be someone else's."""
        try:
            self.handle.execute(text("SELECT 1"))
            self.handle.commit()
            return True
        except DBAPIError:
            return False

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

    def release(self, *, lost: bool = False, busy: bool = False) -> None:
        """Let go of the lock. `lost`: its session stopped answering (nothing to unlock);
        `busy`: a thread is still blocked on that session, so it is left to that thread
        (closing it from here would wait as long)."""
        if self.handle is None:
            return
        if self.db.is_postgresql and lost:
            if not busy:
                self.handle.invalidate()
            self.handle = None
            return
        elif self.db.is_postgresql:
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
            self.handle.execute(text("SELECT pg_advisory_unlock_all()"))
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


def _holder(row: Any) -> str:
    if row is None:  # it let go a moment ago
        return "another process"
    name, pid = row
    return name if name else f"server process {pid}"


class Heartbeat:
    """Asks the lock's session every `liveness.heartbeat` seconds whether it answers
    (a thread of its own: a network cut blocks the question until TCP gives up).
    `alive()` is false once it has not answered for `liveness.lost_after` seconds."""

    def __init__(self, lock: ProcessLock, liveness: Liveness) -> None:
        self.lock, self.liveness = lock, liveness
        self.last = time.monotonic()
        self.failed = False
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._beat, name="citesmail-heartbeat",
                                       daemon=True)
        self.thread.start()

    def _beat(self) -> None:
        while not self.done.wait(self.liveness.heartbeat):
            if not self.lock.answers():
                self.failed = True
                return
            self.last = time.monotonic()

    def alive(self) -> bool:
        return not self.failed and time.monotonic() - self.last < self.liveness.lost_after

    def stop(self) -> bool:
        """Stop asking; whether the thread is done with the session (it may be stuck
        in a question the network never answers)."""
        self.done.set()
        self.thread.join(self.liveness.lost_after)
        return not self.thread.is_alive()


def _same_file(handle: Any, path: Path) -> bool:
    """Whether `path` still names the file `handle` has open."""
    try:
        return os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
    except FileNotFoundError:
        return False
