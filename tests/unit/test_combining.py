"""Concurrent store queries of one shard run as one batch call, and each caller gets its own answers."""

from __future__ import annotations

import threading
import time

import pytest

from pipelines.lexical import query_vector
from rag_service.stores.edge import EdgeVectorStore
from rag_service.stores.combining import Combiner
from rag_service.stores.vector import Filter, Match, SearchRequest
from tests.unit.test_vector_contract import ALIAS, DIM, DOCS, names, point


def _wait_queued(coalescer: Combiner, key, n: int) -> None:
    deadline = time.monotonic() + 10
    while len(coalescer._queued.get(key, [])) < n:
        assert time.monotonic() < deadline, "the callers never queued"
        time.sleep(0.005)


class _Gate:
    """An execute() that blocks its first call until released: callers that arrive meanwhile queue."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls: list[list[int]] = []

    def __call__(self, queries: list[int]) -> list[int]:
        self.calls.append(list(queries))
        if len(self.calls) == 1:
            assert self.release.wait(10)
        if any(q < 0 for q in queries):
            raise ValueError("a negative query")
        return [q * 10 for q in queries]


def _spawn(coalescer, gate, key, queries, answers, errors):
    def go():
        try:
            answers[tuple(queries)] = coalescer.run(key, queries, gate)
        except ValueError as exc:
            errors[tuple(queries)] = exc
    t = threading.Thread(target=go)
    t.start()
    return t


def _hold_then_queue(coalescer, gate, later: list[list[int]], answers, errors) -> list[threading.Thread]:
    """A first caller whose call blocks in `gate`, then `later` callers queued one by one, in order."""
    threads = [_spawn(coalescer, gate, "s", [1], answers, errors)]
    while not gate.calls:
        time.sleep(0.005)
    for n, qs in enumerate(later, start=1):
        threads.append(_spawn(coalescer, gate, "s", qs, answers, errors))
        _wait_queued(coalescer, "s", n)
    return threads


def test_a_lone_caller_runs_its_queries_at_once():
    coalescer: Combiner[int, int] = Combiner()
    assert coalescer.run("s", [1, 2], lambda qs: [q + 1 for q in qs]) == [2, 3]
    assert (coalescer.calls, coalescer.combined_calls) == (1, 0)
    assert coalescer._queued == {}


def test_callers_that_arrive_during_a_call_share_the_next_one_and_get_their_own_answers():
    coalescer: Combiner[int, int] = Combiner()
    gate, answers, errors = _Gate(), {}, {}
    threads = _hold_then_queue(coalescer, gate, [[2, 3], [4], [5, 6, 7]], answers, errors)
    # Another shard is not held up by this one's call.
    assert coalescer.run("other", [9], lambda qs: [q * 2 for q in qs]) == [18]
    gate.release.set()
    for t in threads:
        t.join(10)
    assert gate.calls == [[1], [2, 3, 4, 5, 6, 7]]  # one call for all three, in arrival order
    assert answers == {(1,): [10], (2, 3): [20, 30], (4,): [40], (5, 6, 7): [50, 60, 70]}
    assert errors == {} and coalescer.combined_calls == 1
    assert coalescer._queued == {}


def test_a_failing_call_raises_in_every_caller_it_served_and_the_shard_stays_usable():
    coalescer: Combiner[int, int] = Combiner()
    gate, answers, errors = _Gate(), {}, {}
    threads = _hold_then_queue(coalescer, gate, [[2], [-1]], answers, errors)
    gate.release.set()
    for t in threads:
        t.join(10)
    assert answers == {(1,): [10]} and set(errors) == {(2,), (-1,)}
    assert coalescer.run("s", [3], gate) == [30]


def test_a_call_takes_at_most_max_batch_queries_and_the_rest_run_next():
    coalescer: Combiner[int, int] = Combiner(max_batch=4)
    gate, answers, errors = _Gate(), {}, {}
    # The last alone exceeds max_batch: it runs alone.
    threads = _hold_then_queue(coalescer, gate, [[2, 3], [4, 5], [6], [7, 8, 9, 10, 11]], answers, errors)
    gate.release.set()
    for t in threads:
        t.join(10)
    assert gate.calls == [[1], [2, 3, 4, 5], [6], [7, 8, 9, 10, 11]]
    assert answers[(7, 8, 9, 10, 11)] == [70, 80, 90, 100, 110] and errors == {}


def test_concurrent_edge_searches_combined_answer_as_each_alone(tmp_path):
    """The real shard: dense, lexical and hybrid (with components) requests, queued behind a held
    call and run as one query_batch, each get what they get when run alone."""
    store = EdgeVectorStore(tmp_path / "qdrant")
    try:
        store.ensure_collection(ALIAS, DIM)
        store.upsert(ALIAS, [point(n) for n in DOCS])
        live = Filter(must=(Match("live", 1),))
        requests = [
            SearchRequest(mode="dense", limit=3, dense=[1.0, 0.0, 0.0, 0.0]),
            SearchRequest(mode="dense", limit=2, dense=[0.0, 0.0, 1.0, 0.0], filter=live),
            SearchRequest(mode="lexical", limit=5, sparse=query_vector("solar wind power")),
            SearchRequest(mode="hybrid", limit=3, dense=[0.6, 0.8, 0.0, 0.0], sparse=query_vector("grid power")),
            SearchRequest(mode="hybrid", limit=3, dense=[0.0, 0.0, 0.0, 1.0], sparse=query_vector("chess"),
                          with_components=True),
        ]
        alone = [store.search(ALIAS, r) for r in requests]
        shard = store._shard(ALIAS)
        held, answers = threading.Event(), {}
        holder = threading.Thread(target=store._queries.run, args=(id(shard), [None], lambda qs: [held.wait(10)]))
        holder.start()
        deadline = time.monotonic() + 10
        while id(shard) not in store._queries._queued:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        threads = []
        for i, r in enumerate(requests):
            threads.append(threading.Thread(target=lambda i=i, r=r: answers.__setitem__(i, store.search(ALIAS, r))))
            threads[-1].start()
            _wait_queued(store._queries, id(shard), i + 1)
        combined_before = store._queries.combined_calls
        held.set()
        for t in [holder, *threads]:
            t.join(10)
        assert store._queries.combined_calls == combined_before + 1
        for i, expected in enumerate(alone):
            got = answers[i]
            assert names(got.hits) == names(expected.hits), requests[i]
            assert [h.score for h in got.hits] == pytest.approx([h.score for h in expected.hits])
            assert names(got.dense) == names(expected.dense) and names(got.lexical) == names(expected.lexical)
    finally:
        store.close()


def test_run_any_joins_the_key_with_the_fewest_items_running_or_queued():
    # Two copies of one engine: a lone query must not wait behind one copy's full batch while
    # the other copy runs a single query.
    combiner: Combiner[int, int] = Combiner()
    release = threading.Event()
    ran: list[tuple[str, list[int]]] = []

    def execute(key, items):
        ran.append((key, list(items)))
        assert release.wait(10)
        return [i + 1 for i in items]

    answers: dict[int, list[int]] = {}

    def call(first: int, n: int) -> threading.Thread:
        t = threading.Thread(target=lambda: answers.__setitem__(
            first, list(combiner.run_any(("a", "b"), list(range(first, first + n)), execute))))
        t.start()
        return t

    threads = [call(100, 5)]  # a batch of 5 on the first idle key
    while len(ran) < 1:
        time.sleep(0.005)
    threads.append(call(200, 1))  # a query on the other, idle key
    while len(ran) < 2:
        time.sleep(0.005)
    threads.append(call(300, 1))  # both busy: it joins the one with 1 item, not the one with 5
    _wait_queued(combiner, "b", 1)
    assert combiner._queued["a"] == []
    release.set()
    for t in threads:
        t.join(10)
    assert [k for k, _ in ran] == ["a", "b", "b"]
    assert answers == {100: [101, 102, 103, 104, 105], 200: [201], 300: [301]}
    assert combiner._queued == {} and combiner._items == {}
