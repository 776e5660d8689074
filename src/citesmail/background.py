"""A daemon thread that loops until it is closed, and can be woken early.

`serve` and `worker` run such loops beside their main work: the thread that applies
the intake (web/applier.py) and the one that sends confirmations (delivery/outgoing.py).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod


class Loop(ABC):
    """Subclasses write `_run`, which returns once `self.stop` is set and waits on
    `self.wake` between rounds."""

    thread_name = "citesmail-loop"

    def __init__(self) -> None:
        self.wake, self.stop = threading.Event(), threading.Event()
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self.thread.start()

    def close(self) -> None:
        """Stop the loop and wait for its round to end."""
        self.stop.set()
        self.wake.set()
        if self.thread is not None:
            self.thread.join()

    @abstractmethod
    def _run(self) -> None:
        """The loop itself, in the thread."""
