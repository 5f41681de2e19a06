"""The warm-up's report when the service stops under it: a shutdown is not a failure."""

from __future__ import annotations

import logging
import threading
from types import SimpleNamespace

from rag_service.services.readiness import Readiness


class _ClosingRegistry:
    """Loads the encoder only once the service has begun to stop, then fails as a closed pool does."""

    def __init__(self, stopping: threading.Event) -> None:
        self.stopping = stopping

    def load_default(self, *_args):
        self.stopping.wait(10)
        raise RuntimeError("cannot schedule new futures after shutdown")


def _readiness(registry: _ClosingRegistry) -> Readiness:
    settings = SimpleNamespace(default_embedding_model="m", embedding_backend="auto", embedding_precision="auto")
    return Readiness(SimpleNamespace(settings=settings, embedders=registry, parser=None))


def test_a_warm_up_cut_short_by_shutdown_logs_no_error(caplog):
    gate = threading.Event()
    readiness = _readiness(_ClosingRegistry(gate))
    with caplog.at_level(logging.INFO, logger="rag_service.services.readiness"):
        readiness.start()
        readiness.stop()
        gate.set()
        assert readiness.wait(10)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("shutting down" in r.getMessage() for r in caplog.records)
    assert readiness.ready_after_s is None and readiness.error  # never reported ready


def test_a_warm_up_that_fails_while_running_is_an_error(caplog):
    gate = threading.Event()
    gate.set()
    readiness = _readiness(_ClosingRegistry(gate))
    with caplog.at_level(logging.INFO, logger="rag_service.services.readiness"):
        readiness.start()
        assert readiness.wait(10)
    assert [r for r in caplog.records if r.levelno >= logging.ERROR and "warm-up failed" in r.getMessage()]
    assert "cannot schedule new futures" in readiness.error
