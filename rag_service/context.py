"""The objects one running service shares, built once from Settings in the lifespan."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rag_service.config import Settings
from rag_service.db import Database
from rag_service.metrics import Metrics
from rag_service.services.loops import ClaimLoops
from rag_service.services.parsing import ParserPool, shared_pool
from rag_service.services.rerank import Reranker
from rag_service.services.term_stats import TermStatistics
from rag_service.stores.embedder import CachedEmbedding, EmbedderRegistry
from rag_service.stores.vector import VectorStore


@dataclass
class ServiceContext:
    settings: Settings
    db: Database
    vectors: VectorStore
    embedders: EmbedderRegistry
    embedding: CachedEmbedding
    runner: ClaimLoops | None = None  # the in-process JobRunner (services/jobs.py), when this process runs one
    metrics: Metrics | None = None
    deliverer: ClaimLoops | None = None  # the webhook Deliverer (services/delivery.py), when this process runs one
    parser: ParserPool | None = None  # None parses in the calling thread
    term_stats: TermStatistics | None = None  # document frequencies for capping long queries (built with the db)
    reranker: Reranker | None = None  # RAG_RERANK_MODEL's cross-encoder, loaded on first use

    def __post_init__(self) -> None:
        # One reranker per context: searches and the status probe share its load state.
        if self.reranker is None:
            self.reranker = Reranker(self.settings.rerank_model)


def build_vector_store(settings: Settings) -> VectorStore:
    # Each adapter imports its client library (qdrant-client is heavy): only the configured one loads.
    if settings.qdrant_url:
        from rag_service.stores.qdrant_server import QdrantServerVectorStore

        return QdrantServerVectorStore(url=settings.qdrant_url, api_key=settings.qdrant_api_key)
    from rag_service.stores.edge import EdgeVectorStore

    return EdgeVectorStore(Path(settings.data_dir) / "qdrant")


def build_context(
    settings: Settings, vectors: VectorStore | None = None, embedders: EmbedderRegistry | None = None
) -> ServiceContext:
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    db = Database(settings.effective_database_url)
    db.create_schema()
    embedders = embedders or EmbedderRegistry(
        backend=settings.embedding_backend, precision=settings.embedding_precision, device=settings.embedding_device,
        batch_size=settings.embedding_batch_size, cache_dir=settings.encoder_cache_dir,
        allowed_models={settings.default_embedding_model, *settings.extra_embedding_models},
    )
    return ServiceContext(
        metrics=Metrics(),
        parser=shared_pool(settings.parse_timeout_s, settings.parse_memory_mb, settings.parse_seconds_per_mb),
        settings=settings,
        db=db,
        vectors=vectors or build_vector_store(settings),
        embedders=embedders,
        embedding=CachedEmbedding(db, embedders),
        term_stats=TermStatistics(db),
    )
