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
from rag_service.models import EmbeddingCache


class Embedder(Protocol):
    name: str
    dimension: int

    def encode(self, texts: list[str]) -> np.ndarray: ...


class EmbedderRegistry:
    def __init__(self, precision: str = "fp32", device: str = "cpu", batch_size: int = 32) -> None:
        self.precision = precision
        self.device = device
        self.batch_size = batch_size
        self._models: dict[str, Embedder] = {}
        self._lock = threading.Lock()
        self.encode_calls = 0  # texts sent to a model; tests and metrics read it
        self.failure: Exception | None = None

    def register(self, embedder: Embedder) -> None:
        self._models[embedder.name] = embedder

    def get(self, name: str) -> Embedder:
        model = self._models.get(name)
        if model is not None:
            return model
        with self._lock:
            if name not in self._models:
                from pipelines.embed import SentenceEmbedder

                self._models[name] = SentenceEmbedder(
                    name, precision=self.precision, device=self.device, batch_size=self.batch_size
                )
            return self._models[name]

    def loaded(self) -> list[str]:
        return sorted(self._models)

    def encode(self, name: str, texts: list[str]) -> np.ndarray:
        self.encode_calls += len(texts)
        return self.get(name).encode(texts)


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
