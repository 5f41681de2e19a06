"""Concurrent store queries on one shard, run as one `query_batch` call (flat combining).

qdrant-edge holds the GIL for a whole query, so concurrent searches take turns at the store.
One `query_batch` of eight exact-scan queries over 100k points costs about 5 ms a query against
13.5 ms each alone, with the same results (docs/studies/store/FINDINGS.md). So the queries that
arrive while a call is running wait, and the next call runs them together.

No thread of its own and no waiting for company: a caller that finds the shard idle runs its
own queries at once (a lone search pays nothing). While a call runs, newcomers queue; when it
ends, its caller hands the lead to the oldest queued one, which runs the whole queue (up to
`max_batch` queries) in one call. Each caller runs at most one call beyond its own wait, so no
caller is kept serving others.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

Q = TypeVar("Q")
R = TypeVar("R")


class _Waiter(Generic[Q, R]):
    __slots__ = ("queries", "event", "lead", "results", "error")

    def __init__(self, queries: list[Q]) -> None:
        self.queries = queries
        self.event = threading.Event()
        self.lead = False
        self.results: list[R] | None = None
        self.error: BaseException | None = None


class QueryCoalescer(Generic[Q, R]):
    """`run(key, queries, execute)`: `execute(all_queries)` answers a list of queries in order;
    calls with the same key (one shard) are combined, others run independently."""

    def __init__(self, max_batch: int = 32) -> None:
        self.max_batch = max_batch
        self._lock = threading.Lock()
        # A key is here exactly while a call for it runs; its list: the callers waiting for the next one.
        self._queued: dict[Any, list[_Waiter[Q, R]]] = {}
        self.calls = 0  # store calls made, and how many of them combined several callers
        self.combined_calls = 0

    def run(self, key: Any, queries: Sequence[Q], execute: Callable[[list[Q]], list[R]]) -> list[R]:
        me: _Waiter[Q, R] = _Waiter(list(queries))
        with self._lock:
            lead = key not in self._queued
            self._queued.setdefault(key, []).append(me)
        if not lead:
            me.event.wait()
            if not me.lead:
                return self._answer(me)
        self._lead(key, execute)
        return self._answer(me)

    def _lead(self, key: Any, execute: Callable[[list[Q]], list[R]]) -> None:
        with self._lock:
            queue = self._queued[key]
            batch, size = [], 0
            while queue and (not batch or size + len(queue[0].queries) <= self.max_batch):
                waiter = queue.pop(0)
                batch.append(waiter)
                size += len(waiter.queries)
            self.calls += 1
            self.combined_calls += len(batch) > 1
        try:
            results = execute([q for w in batch for q in w.queries])
            at = 0
            for w in batch:
                w.results = results[at:at + len(w.queries)]
                at += len(w.queries)
        except BaseException as exc:  # every caller in the call gets the store's error
            for w in batch:
                w.error = exc
        with self._lock:
            queue = self._queued[key]
            if queue:
                queue[0].lead = True  # the oldest waiter runs the next call; the key stays busy
                queue[0].event.set()
            else:
                del self._queued[key]
        for w in batch:
            w.event.set()

    @staticmethod
    def _answer(me: _Waiter[Q, R]) -> list[R]:
        if me.error is not None:
            raise me.error
        assert me.results is not None
        return me.results
