"""The thread of `citesmail serve` that applies its intake (intake.py) to the database.

A request is answered once its line is durable in the intake. It then waits a moment
(APPLY_WAIT) for this thread to apply it, so that on a free database the answer comes
after the database says `unsubscribed`, as before the intake existed; while the
database is locked nobody waits: the thread keeps trying (each try waits the busy
timeout) and applies everything as soon as the lock is free.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from ..background import Loop
from ..db import Database
from ..errors import CitesmailError
from ..intake import apply_pending

APPLY_WAIT = 1.0  # seconds a request waits for its line to reach the database
LOOK_EVERY = 1.0  # seconds: lines another process left (a crash) are applied this soon
PAUSE_AFTER_ERROR = 0.2  # seconds, when a try failed at once (not after a wait)
TELL_EVERY = 60.0  # seconds: a database still locked is said again this often


class Applier(Loop):
    thread_name = "citesmail-intake"

    def __init__(self, db: Database, path: Path, log: Callable[[str], None]) -> None:
        super().__init__()
        self.db, self.path, self.log = db, path, log
        self.changed = threading.Condition()
        self.appended = 0  # lines this process appended
        self.applied = 0  # of those, the ones the database holds
        self.blocked = False  # the last try failed: requests do not wait
        self.told = 0.0

    def appended_one(self) -> int:
        """Note a line just made durable; its number, to wait for."""
        with self.changed:
            self.appended += 1
            number = self.appended
        self.wake.set()
        return number

    def wait_applied(self, number: int) -> None:
        """Wait (a little) until line `number` is in the database, unless it is locked."""
        if self.thread is None:  # no thread (an app run without its lifespan): apply here
            self._try()
            return
        with self.changed:
            self.changed.wait_for(lambda: self.applied >= number or self.blocked,
                                  APPLY_WAIT)

    def _run(self) -> None:
        while not self.stop.is_set():
            self.wake.wait(LOOK_EVERY)
            self.wake.clear()
            while not self.stop.is_set() and not self._try():
                self.stop.wait(PAUSE_AFTER_ERROR)

    def _try(self) -> bool:
        with self.changed:
            target = self.appended  # durable lines: all in the file by now
        try:
            applied = apply_pending(self.db, self.path)
        except Exception as exc:  # the lines stay: tried again (the thread must live)
            why = _why(exc, self.path)
            with self.changed:
                self.blocked = True
                self.changed.notify_all()
            if time.monotonic() - self.told > TELL_EVERY:
                self.told = time.monotonic()
                self.log(f"intake: {why}; requests are kept in {self.path} and applied "
                         "when it can be")
            return False
        with self.changed:
            if self.blocked and applied:
                self.log(f"intake: applied {applied} request(s) kept meanwhile")
            self.applied, self.blocked, self.told = max(self.applied, target), False, 0.0
            self.changed.notify_all()
        return True


def _why(exc: Exception, path: Path) -> str:
    """One line for the log: the applier never dies of an error, it says it and retries."""
    if isinstance(exc, CitesmailError):
        return exc.problems[0].message
    if isinstance(exc, OSError):
        return f"{exc.filename or path}: {exc.strerror or exc}"
    return f"{type(exc).__name__}: {exc}"
