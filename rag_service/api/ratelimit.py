"""Per-key rate limiting: a fixed one-minute window per API key.

In-process state: with several API processes each enforces the limit on its own
(docs/operations.md); a shared store would be the next step.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass


@dataclass
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_s: int


class RateLimiter:
    def __init__(self, per_minute: int, clock=time.time) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._windows: dict[str, tuple[int, int]] = {}  # key digest -> (window start, count)
        self._lock = threading.Lock()

    def check(self, key: str) -> Decision:
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]  # never keep the key itself
        now = self.clock()
        window = int(now // 60) * 60
        with self._lock:
            start, count = self._windows.get(digest, (window, 0))
            if start != window:
                start, count = window, 0
            allowed = count < self.per_minute
            if allowed:
                count += 1
            self._windows[digest] = (start, count)
            if len(self._windows) > 100_000:  # drop stale windows
                self._windows = {k: v for k, v in self._windows.items() if v[0] == window}
        return Decision(allowed, self.per_minute, max(self.per_minute - count, 0), int(start + 60 - now) or 1)
