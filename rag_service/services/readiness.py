"""Startup warm-up and the readiness answer behind /v1/ready.

The encoder (and its backend choice), the parser pool and the query path load
once, in a thread started by the app's lifespan, so the process answers
/v1/health at once while it loads, and the first search after /v1/ready says
200 costs what later ones cost (no model load, no parser start-up inside it).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from rag_service.context import ServiceContext

log = logging.getLogger(__name__)


class Readiness:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.started_at = time.time()
        self.ready_after_s: float | None = None
        self.error: str | None = None
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._warm_up, name="warm-up", daemon=True)
        self._thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def _warm_up(self) -> None:
        try:
            model = self.ctx.settings.default_embedding_model
            embedder = self.ctx.embedders.get(model)
            # One query-sized and one batch-sized call: the first call of a shape pays for
            # kernel selection and allocation, which would otherwise land on the first search.
            embedder.encode(["warm up the query path"])
            embedder.encode([f"warm-up passage number {n} about nothing in particular" for n in range(8)])
            if self.ctx.parser is not None:
                self.ctx.parser.start()
            self.ready_after_s = round(time.time() - self.started_at, 3)
            log.info("ready after %.1f s", self.ready_after_s, extra={"ready_after_s": self.ready_after_s})
        except Exception as exc:  # reported by /v1/ready; the service keeps answering health
            self.error = f"{type(exc).__name__}: {exc}"[:500]
            log.error("warm-up failed: %s", self.error)
        finally:
            self._done.set()

    def check(self) -> tuple[bool, dict[str, Any]]:
        """(ready, body): the warm-up finished and the database and vector store answer now."""
        components: dict[str, Any] = {}
        if not self._done.is_set():
            components["encoder"] = {"ok": False, "state": "loading"}
        elif self.error:
            components["encoder"] = {"ok": False, "state": "failed", "error": self.error}
        else:
            components["encoder"] = {"ok": True, "state": "loaded", "model": self.ctx.settings.default_embedding_model}
        for name, ping in (("database", self.ctx.db.ping), ("vector_store", self.ctx.vectors.ping)):
            try:
                ping()
                components[name] = {"ok": True}
            except Exception as exc:  # noqa: BLE001 - any failure means not ready
                components[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
        ready = all(c["ok"] for c in components.values())
        return ready, {"ready": ready, "ready_after_s": self.ready_after_s, "components": components}
