"""Concurrent calls to one engine, run as one batched call (flat combining).

Two engines here work far better on a batch than on the same requests one by one:
* qdrant-edge holds the GIL for a whole query, so concurrent searches would take turns at
  the store; one `query_batch` of eight exact-scan queries over 100k points costs about 5 ms
  a query against 13.5 ms each alone, with the same results (docs/studies/store/FINDINGS.md);
* the embedding model's throughput is in its batches: one call per document wastes most of
  it on tiny batches, while concurrent uploads' chunks fill a batch by themselves.

No thread of its own and no waiting for company: a caller that finds the engine idle runs its
own request at once (a lone call pays nothing). While a call runs, newcomers queue; when it
ends, its caller hands the lead to the oldest queued one, which runs the queue from its head
(itself first) up to `max_batch` items in one call. Each caller runs at most one call beyond
its own wait, so no caller is kept serving others. The cap keeps some requests queued behind
the running call: taking everything would make concurrent uploads move in lockstep (all of
them leave the model at once to write and answer, and the model idles while their next files
parse), and a query would wait behind an unbounded batch.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

Q = TypeVar("Q")
R = TypeVar("R")


class _Waiter(Generic[Q, R]):
    __slots__ = ("items", "event", "lead", "results", "error")

    def __init__(self, items: list[Q]) -> None:
        self.items = items
        self.event = threading.Event()
        self.lead = False
        self.results: Sequence[R] | None = None
        self.error: BaseException | None = None


class Combiner(Generic[Q, R]):
    """`run(key, items, execute)`: `execute(all_items)` answers a list of items in order (a list,
    or an array sliced per caller); calls with the same key (one shard, one model) are combined,
    calls with other keys run independently. `run_any(keys, ...)`: the same on the least loaded
    of several keys (copies of one engine)."""

    def __init__(self, max_batch: int = 32) -> None:
        self.max_batch = max_batch
        self._lock = threading.Lock()
        # A key is here exactly while a call for it runs; its list: the callers waiting for the next one.
        self._queued: dict[Any, list[_Waiter[Q, R]]] = {}
        self._items: dict[Any, int] = {}  # per key, the items of its running call and its queue
        self.calls = 0  # engine calls made, and how many of them combined several callers
        self.combined_calls = 0

    def run(self, key: Any, items: Sequence[Q], execute: Callable[[list[Q]], Sequence[R]]) -> Sequence[R]:
        return self.run_any((key,), items, lambda _key, batch: execute(batch))

    def run_any(self, keys: Sequence[Any], items: Sequence[Q],
                execute: Callable[[Any, list[Q]], Sequence[R]]) -> Sequence[R]:
        """`run` on whichever of `keys` (engines that answer alike, e.g. copies of one model) has
        the fewest items running or queued (a query does not join a lane busy with a full batch
        when the other runs one query), chosen and joined in one step; `execute(key, batch)`."""
        me: _Waiter[Q, R] = _Waiter(list(items))
        with self._lock:
            key = min(keys, key=lambda k: self._items.get(k, 0))
            lead = key not in self._queued
            self._queued.setdefault(key, []).append(me)
            self._items[key] = self._items.get(key, 0) + len(me.items)
        if not lead:
            me.event.wait()
            if not me.lead:
                return self._answer(me)
        self._lead(key, lambda batch: execute(key, batch))
        return self._answer(me)

    def _lead(self, key: Any, execute: Callable[[list[Q]], Sequence[R]]) -> None:
        with self._lock:
            queue = self._queued[key]
            batch, size = [], 0
            while queue and (not batch or size + len(queue[0].items) <= self.max_batch):
                waiter = queue.pop(0)
                batch.append(waiter)
                size += len(waiter.items)
            self.calls += 1
            self.combined_calls += len(batch) > 1
        try:
            results = execute([q for w in batch for q in w.items])
            at = 0
            for w in batch:
                w.results = results[at:at + len(w.items)]
                at += len(w.items)
        except BaseException as exc:  # every caller in the call gets the engine's error
            for w in batch:
                w.error = exc
        with self._lock:
            self._items[key] -= size
            if not self._items[key]:
                del self._items[key]
            queue = self._queued[key]
            if queue:
                queue[0].lead = True  # the oldest waiter runs the next call; the key stays busy
                queue[0].event.set()
            else:
                del self._queued[key]
        for w in batch:
            w.event.set()

    @staticmethod
    def _answer(me: _Waiter[Q, R]) -> Sequence[R]:
        if me.error is not None:
            raise me.error
        assert me.results is not None
        return me.results
