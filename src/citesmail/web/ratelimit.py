"""How many requests each client may make in a window: counted in memory (nothing about
a refused request is stored), per process."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class RateLimit:
    """At most `limit` requests per `window` seconds for each key (an IP address)."""

    MAX_KEYS = 100_000  # beyond: the oldest entries go first, so memory stays bounded

    def __init__(self, limit: int, window: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window, self.clock = limit, window, clock
        self.seen: dict[str, deque[float]] = {}
        self.lock = threading.Lock()

    def allow(self, key: str) -> bool:
        """Count a request; False when the key already made `limit` in the window."""
        now = self.clock()
        with self.lock:
            times = self.seen.pop(key, None) or deque()
            while times and times[0] <= now - self.window:
                times.popleft()
            allowed = len(times) < self.limit
            if allowed:
                times.append(now)
            self.seen[key] = times  # last: the dict keeps keys by latest use
            if len(self.seen) > self.MAX_KEYS:
                del self.seen[next(iter(self.seen))]
        return allowed
