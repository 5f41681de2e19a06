"""The optional cross-encoder reranker (RAG_RERANK_MODEL): one per service context, shared by
searches and the status probe, so what /v1/rag/status reports is what searches get."""

from __future__ import annotations

import threading
import time

from rag_service.errors import RetrievalUnavailable


class Reranker:
    """Cross-encoder reranking from RAG_RERANK_MODEL, loaded on first use (a search or the
    status probe). A model that fails to load is retried at most every RETRY_S, so a
    fixed path is picked up without a restart and a broken one costs no load per search."""

    RETRY_S = 30.0

    def __init__(self, model: str | None) -> None:
        self.model_name = model
        self._model = None
        self._error: str | None = None
        self._failed_at = 0.0
        self._lock = threading.Lock()

    def load(self):
        """The loaded cross-encoder, or RetrievalUnavailable(component="reranker")."""
        with self._lock:
            if self._model is None:
                if self._error and time.monotonic() - self._failed_at < self.RETRY_S:
                    raise RetrievalUnavailable(f"reranker unavailable: {self._error}", component="reranker")
                try:
                    # sentence-transformers is loaded only when a reranker is configured and first used.
                    from sentence_transformers import CrossEncoder

                    self._model = CrossEncoder(self.model_name, device="cpu")
                    self._error = None
                except Exception as exc:  # a missing path, a bad checkpoint, an unknown hub name offline
                    self._error, self._failed_at = f"{type(exc).__name__}: {exc}"[:300], time.monotonic()
                    raise RetrievalUnavailable(f"reranker unavailable: {self._error}", component="reranker") from exc
            return self._model

    def score(self, query: str, texts: list[str]) -> list[float]:
        model = self.load()
        try:
            scores = model.predict([(query, t) for t in texts], show_progress_bar=False)
        except Exception as exc:
            raise RetrievalUnavailable(f"reranker failed: {type(exc).__name__}: {exc}"[:300], component="reranker") from exc
        return [float(s) for s in scores]
