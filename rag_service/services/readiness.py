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

from sqlmodel import select

from rag_service.context import ServiceContext
from rag_service.errors import Unauthorized
from rag_service.models import Evidence, Index
from rag_service.search_params import SearchParams
from rag_service.services.auth import AuthService
from rag_service.services.common import Principal
from rag_service.services.search import SearchService

log = logging.getLogger(__name__)
# Query lengths the encoder warm-up covers (one token a word; see _GroupEncoder.warm_up). Longer
# queries are rare, and pay for their length's first use once.
WARM_QUERY_WORDS = 96
WARM_INDEXES = 20  # a deployment with more loads the rest on first use
WARM_QUERIES = (
    "warm up the search path",
    "how do cells respond to stress and what proteins are involved",
    "effects of treatment on patient outcomes in clinical trials",
    "data",
    "the relationship between diet, exercise and long term health risks in adults",
    "measurement methods for environmental change over decades",
    "what causes this",
    "genetic variation and disease",
)


class Readiness:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.started_at = time.time()
        self.ready_after_s: float | None = None
        self.error: str | None = None
        self.encoder: dict[str, str] | None = None
        self.warm_up: dict[str, Any] = {"indexes": 0, "search": None}  # what the warm-up searched, for /v1/ready
        self._done = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._warm_up, name="warm-up", daemon=True)
        self._thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def stop(self) -> None:
        """The service is shutting down: a warm-up still running will fail as the encoder, the
        parser pool and the stores close under it; that is the shutdown, not a failed warm-up."""
        self._stopping.set()

    def _report_failure(self, level: int, what: str, error: str) -> None:
        """One rule for both of the warm-up's failure reports: under shutdown it is an info line."""
        if self._stopping.is_set():
            log.info("%s stopped: the service is shutting down (%s)", what, error)
        else:
            log.log(level, "%s failed: %s", what, error)

    def _warm_up(self) -> None:
        try:
            settings = self.ctx.settings
            identity = self.ctx.embedders.load_default(settings.default_embedding_model, settings.embedding_backend,
                                                       settings.embedding_precision)
            self.encoder = identity.as_dict()
            self.ctx.embedders.encoder(identity).warm_up(WARM_QUERY_WORDS)
            if self.ctx.parser is not None:
                self.ctx.parser.start()
            self._warm_search()
            self.ready_after_s = round(time.time() - self.started_at, 3)
            log.info("ready after %.1f s", self.ready_after_s, extra={"ready_after_s": self.ready_after_s})
        except Exception as exc:  # reported by /v1/ready; the service keeps answering health
            self.error = f"{type(exc).__name__}: {exc}"[:500]
            self._report_failure(logging.ERROR, "warm-up", self.error)
        finally:
            self._done.set()

    def _warm_search(self) -> None:
        """One real hybrid retrieval over the most recently used indexes: opens their shards,
        loads their encoders (an index keeps the one it was built with), fills the SQL pool."""
        with self.ctx.db.session() as s:
            indexes = list(s.exec(select(Index).order_by(Index.updated_at.desc()).limit(WARM_INDEXES)).all())
        self.warm_up["indexes"] = len(indexes)
        if not indexes:
            return
        try:
            service = SearchService(self.ctx)
            # Several retrievals with different queries: a store query touches its own part of the
            # shard's memory-mapped vectors and graph, and the first queries after a start paid
            # for those page faults (measured: the store's part of the first search at twice
            # its later cost after one warm-up query).
            for query in WARM_QUERIES:
                service.retrieve(indexes, SearchParams(query=query, top_k=10, mode="hybrid", explain=False))
            # Then whole searches as requests run them, over the latest index and over its whole
            # project (access check, index defaults, the default request's document search,
            # evidence shaping; nothing recorded), so the first real one finds its SQL
            # statements compiled and its code paths loaded.
            latest = indexes[0]
            reader = Principal(project_id=latest.project_id, key_id=None, role="reader")
            for path_index in (latest.id, None):
                service.search(reader, SearchParams(query="warm up the request path"), path_index=path_index,
                               record_evidence=False)
            self._warm_request_statements(latest.project_id)
            self.warm_up["search"] = "ok"
        except Exception as exc:  # noqa: BLE001 - a broken index shows in its own searches, not here
            self.warm_up["search"] = "failed"
            self._report_failure(logging.WARNING, "warm-up search", f"{type(exc).__name__}: {exc}"[:300])

    def _warm_request_statements(self, project_id: str) -> None:
        """What a search request does around the search: the key lookup (with a key no one holds)
        and the evidence insert (flushed, then rolled back). SQLAlchemy compiles a statement on
        its first use; the first search after ready paid for both."""
        try:
            AuthService(self.ctx.db).authenticate("warm-up: a key no one holds")
        except Unauthorized:
            pass
        with self.ctx.db.session() as s:
            s.add(Evidence(project_id=project_id, kind="search", body={"warm_up": True}))
            s.flush()
            s.rollback()

    def check(self) -> tuple[bool, dict[str, Any]]:
        """(ready, body): the warm-up finished and the database and vector store answer now."""
        components: dict[str, Any] = {}
        if not self._done.is_set():
            components["encoder"] = {"ok": False, "state": "loading"}
        elif self.error:
            components["encoder"] = {"ok": False, "state": "failed", "error": self.error}
        else:
            components["encoder"] = {"ok": True, "state": "loaded", **(self.encoder or {})}
        for name, ping in (("database", self.ctx.db.ping), ("vector_store", self.ctx.vectors.ping)):
            try:
                ping()
                components[name] = {"ok": True}
            except Exception as exc:  # noqa: BLE001 - any failure means not ready
                components[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
        ready = all(c["ok"] for c in components.values())
        return ready, {"ready": ready, "ready_after_s": self.ready_after_s, "components": components,
                       "warm_up": self.warm_up}
