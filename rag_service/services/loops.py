"""Worker threads that claim leased rows from SQL: the job runner and the webhook deliverer."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid

log = logging.getLogger(__name__)


def lease_owner() -> str:
    """Who holds a lease: host, process and a per-object suffix (two loops of one process differ)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class ClaimLoops:
    """`concurrency` daemon threads, each calling run_once() until stopped; when a round finds
    nothing to do a thread waits poll_seconds, or less if wake() is called."""

    thread_name = "claim-loop"

    def __init__(self, concurrency: int, poll_seconds: float) -> None:
        self.concurrency = max(1, concurrency)
        self.poll_seconds = poll_seconds
        self.owner = lease_owner()
        self.last_heartbeat: float | None = None
        # wake() rouses one idle thread per call (not all of them: each would run a claim query).
        self._wakeup = threading.Condition()
        self._wakes = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def run_once(self) -> bool:
        """Claim and do one piece of work; False when there was none."""
        raise NotImplementedError

    def start(self) -> None:
        self._threads = [threading.Thread(target=self.run_forever, name=f"{self.thread_name}-{n}", daemon=True)
                         for n in range(self.concurrency)]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        with self._wakeup:
            self._wakeup.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def alive(self) -> bool:
        return any(t.is_alive() for t in self._threads) and not self._stop.is_set()

    def wake(self) -> None:
        with self._wakeup:
            self._wakes += 1
            self._wakeup.notify()

    def _idle(self) -> None:
        with self._wakeup:
            if not self._wakes and not self._stop.is_set():
                self._wakeup.wait(self.poll_seconds)
            self._wakes = max(0, self._wakes - 1)

    def run_forever(self) -> None:
        while not self._stop.is_set():
            self.last_heartbeat = time.time()
            try:
                did = self.run_once()
            except Exception:
                log.exception("%s loop error", self.thread_name)
                did = False
            if not did:
                self._idle()
