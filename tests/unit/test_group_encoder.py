"""Concurrent encode calls share model calls, and each caller gets its own vectors."""

import threading
import time

import numpy as np
import pytest

from rag_service.stores.embedder import EmbedderRegistry, ModelNotAllowed


class SlowEmbedder:
    """Encodes a text as [len(text), first char code]; each call takes 100 ms."""

    name = "slow"
    dimension = 2

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[int] = []
        self.fail = fail

    def encode(self, texts):
        self.calls.append(len(texts))
        time.sleep(0.1)
        if self.fail:
            raise RuntimeError("model crashed")
        return np.array([[len(t), ord(t[0])] for t in texts], dtype=np.float32)


def _concurrently(registry, batches, model: str = "slow"):
    results, errors = {}, {}

    def run(i, texts):
        try:
            results[i] = registry.encode(model, texts)
        except Exception as exc:
            errors[i] = exc

    threads = [threading.Thread(target=run, args=(i, t)) for i, t in enumerate(batches)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, errors


def test_concurrent_calls_are_grouped_and_answered_in_order():
    registry, model = EmbedderRegistry(), SlowEmbedder()
    registry.register(model)
    batches = [[f"{chr(97 + i)}" * (i + 1), f"{chr(65 + i)}x"] for i in range(8)]
    results, errors = _concurrently(registry, batches)
    assert not errors
    for i, texts in enumerate(batches):
        assert results[i].tolist() == [[len(t), ord(t[0])] for t in texts]
    assert sum(model.calls) == 16 and len(model.calls) < 8  # the model saw fewer, bigger batches
    assert registry.encode_calls == 16


def test_a_lone_call_runs_at_once():
    registry, model = EmbedderRegistry(), SlowEmbedder()
    registry.register(model)
    assert registry.encode("slow", ["solo"]).tolist() == [[4, ord("s")]]
    assert model.calls == [1]


def test_a_failure_reaches_every_caller_in_the_batch_and_the_next_call_works():
    registry, model = EmbedderRegistry(), SlowEmbedder(fail=True)
    registry.register(model)
    results, errors = _concurrently(registry, [["a"], ["b"], ["c"]])
    assert len(errors) == 3 and all("model crashed" in str(e) for e in errors.values())
    model.fail = False
    assert registry.encode("slow", ["d"]).shape == (1, 2)


def test_only_allowed_models_load():
    registry = EmbedderRegistry(allowed_models={"/opt/models/approved"})
    for name in ("/etc", "../../secret", "sentence-transformers/some-other-model"):
        with pytest.raises(ModelNotAllowed):
            registry.get(name)
    assert "/opt/models/approved" in registry.allowed_models and "all-MiniLM-L6-v2" in registry.allowed_models


def test_a_batch_stops_at_its_cap_and_the_rest_runs_next():
    # Uploads that all leave the model at once move in lockstep and leave it idle while they
    # parse their next files: a capped batch keeps some of them queued behind it.
    registry, model = EmbedderRegistry(), SlowEmbedder()
    registry.register(model)
    registry.encoder("slow").max_batch = 5
    batches = [[f"{chr(97 + i)}{n}" for n in range(2)] for i in range(8)] + [[f"big{n}" for n in range(7)]]
    results, errors = _concurrently(registry, batches)
    assert not errors
    for i, texts in enumerate(batches):
        assert results[i].tolist() == [[len(t), ord(t[0])] for t in texts]
    # No call over the cap, except a single request bigger than the cap (it runs alone).
    assert all(n <= 5 or n == 7 for n in model.calls) and sum(model.calls) == 23
    assert len(model.calls) >= 5


class RecordingEmbedder:
    """Remembers the word counts of the texts of each call."""

    name, dimension = "recording", 2

    def __init__(self) -> None:
        self.calls: list[list[int]] = []

    def encode(self, texts):
        self.calls.append([len(t.split()) for t in texts])
        return np.zeros((len(texts), 2), dtype=np.float32)


def test_the_warm_up_covers_every_query_length_once_per_encoder():
    # Kernels are prepared per input shape: the first query of each length used to pay for it.
    registry, model = EmbedderRegistry(), RecordingEmbedder()
    registry.register(model)
    encoder = registry.encoder("recording")
    encoder.warm_up(12)
    encoder.warm_up(12)  # a second app on the same registry (a restart in tests) does not repeat it
    assert model.calls[:12] == [[n] for n in range(1, 13)]
    assert len(model.calls) == 13 and len(model.calls[-1]) == 8  # and one batch-sized call


class LanedEmbedder:
    """Claims two lanes; every copy records the threads it ran on and the thread count it got.
    encode() meets the other lane at a barrier: calls that do not overlap break it."""

    name, dimension, lanes, lane_threads = "laned", 2, 2, 1

    def __init__(self, barrier: threading.Barrier, copies: list) -> None:
        self.barrier, self.copies = barrier, copies
        self.threads: set[str] = set()
        self.intra_op: dict[str, int] = {}
        copies.append(self)

    def replica(self):
        return LanedEmbedder(self.barrier, self.copies)

    def use_threads(self, n: int) -> None:
        self.intra_op[threading.current_thread().name] = n

    def encode(self, texts):
        self.threads.add(threading.current_thread().name)
        if texts and texts[0].startswith("overlap"):
            self.barrier.wait()
        return np.array([[len(t), ord(t[0])] for t in texts], dtype=np.float32)


def test_an_embedder_with_lanes_encodes_concurrent_calls_side_by_side_on_its_own_copies():
    copies: list = []
    registry = EmbedderRegistry()
    registry.register(LanedEmbedder(threading.Barrier(2, timeout=10), copies))
    assert registry.encoder("laned").lanes == 2 and len(copies) == 2
    # Two calls at once: each lane takes one, so both reach the barrier together (serial calls would break it).
    results, errors = _concurrently(registry, [["overlap a", "xy"], ["overlap b"]], "laned")
    assert not errors, errors
    assert results[0].tolist() == [[9, ord("o")], [2, ord("x")]] and results[1].tolist() == [[9, ord("o")]]
    # Each copy ran on one lane thread of its own, which took its share of the cores.
    lanes = [c.threads for c in copies]
    assert all(len(t) == 1 for t in lanes) and lanes[0] != lanes[1]
    assert [list(c.intra_op.values()) for c in copies] == [[1], [1]]
    assert [set(c.intra_op) for c in copies] == lanes
    # A lone call goes to an idle lane and is answered at once.
    assert registry.encode("laned", ["solo"]).tolist() == [[4, ord("s")]]


def test_a_call_bigger_than_a_batch_is_split_across_the_lanes():
    # One long document alone still uses every core: its texts go to both lanes at once.
    copies: list = []
    registry = EmbedderRegistry()
    registry.register(LanedEmbedder(threading.Barrier(2, timeout=10), copies))
    encoder = registry.encoder("laned")
    encoder.max_batch = 3
    texts = [f"overlap {n}" for n in range(6)]
    assert encoder.encode(texts).tolist() == [[len(t), ord("o")] for t in texts]  # in order
    assert all(c.threads for c in copies)  # both copies took part


def test_an_embedder_whose_second_copy_fails_to_load_still_serves_on_one_lane():
    class NoReplica(LanedEmbedder):
        def replica(self):
            raise MemoryError("no room for a second copy")

    registry = EmbedderRegistry()
    registry.register(NoReplica(threading.Barrier(1), []))
    encoder = registry.encoder("laned")
    assert encoder.lanes == 1
    assert registry.encode("laned", ["one"]).tolist() == [[3, ord("o")]]
