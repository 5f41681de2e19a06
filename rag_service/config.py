"""One Settings object, built once in the app's lifespan and injected."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAG_", extra="ignore")

    data_dir: Path = Path("./data")
    # Empty means SQLite at data_dir/rag.db.
    database_url: str = ""
    # Empty means the embedded engine (qdrant-edge-py) under data_dir/qdrant.
    qdrant_url: str = ""
    qdrant_api_key: str | None = None

    host: str = "127.0.0.1"
    port: int = 8080
    # JSON lines on stderr (rag_service/logs.py); "text" for a human at a terminal.
    log_format: Literal["json", "text"] = "json"
    log_level: str = "info"
    bootstrap_key: str | None = None

    default_embedding_model: str = DEFAULT_EMBEDDING_MODEL
    # More models an index may name (comma-separated hub names already in the local
    # cache, or local paths); the shipped all-MiniLM-L6-v2 is always allowed.
    embedding_models: str = ""
    # The encoder variant new indexes get. `auto`: the fastest variant on this machine among
    # those the quality gate (`python -m benchmarks precision`) found eligible, by a short probe
    # at first load (rag_service/stores/encoder_choice.py). torch runs fp32/bf16, onnx fp32/int8.
    embedding_backend: Literal["auto", "torch", "onnx"] = "auto"
    embedding_precision: Literal["auto", "fp32", "bf16", "int8"] = "auto"
    embedding_batch_size: int = 32
    embedding_device: str = "cpu"
    rerank_model: str | None = None

    max_upload_mb: int = 50
    default_chunk_max_characters: int = 1000
    default_chunk_overlap: int = 0
    parse_timeout_s: float = 60.0
    # Added to the parse timeout per MB of upload: parsing is linear in size.
    parse_seconds_per_mb: float = 2.0
    # Address-space limit of each parser process (0 = none).
    parse_memory_mb: int = 4096
    # Zip-based uploads (docx): refuse when they would inflate past this.
    max_unzipped_mb: int = 500

    # BM25 document weights are computed with the index's mean chunk length;
    # when the true mean drifts further than this from the one used, the
    # lexical vectors of the index are re-encoded.
    bm25_avg_len_tolerance: float = 0.1

    # Hybrid fusion: reciprocal rank fusion constant and candidate pool.
    rrf_k: int = 60
    # Weighted RRF of the hybrid mode; a request may override both (rrf_k, fusion_weights).
    fusion_dense_weight: float = 1.0
    fusion_lexical_weight: float = 1.0
    prefetch_multiplier: int = 4
    # Document search (result_type=document), chosen on NFCorpus dev (docs/studies/quality/FINDINGS.md):
    # z-score fusion per document of the best chunk's cosine and the document's BM25, weighted
    # dense:lexical; pseudo-relevance feedback (RM3 on the lexical arm, Rocchio on the dense arm).
    # A request (fusion, fusion_weights, prf, lexical_unit) or the index's defaults override them.
    fusion: Literal["rrf", "zscore"] = "zscore"
    zscore_dense_weight: float = 0.6
    zscore_lexical_weight: float = 0.4
    prf: bool = True
    rm3_docs: int = Field(10, ge=1, le=100)
    rm3_terms: int = Field(60, ge=1, le=1000)
    rm3_original_weight: float = Field(0.5, ge=0.0, le=1.0)
    rocchio_chunks: int = Field(3, ge=1, le=50)
    rocchio_beta: float = Field(1.0, ge=0.0, le=10.0)
    # Each arm of a document search ranks this many candidates (chunks or documents). 500, not the
    # study's 2040: nDCG@10 moved by at most 0.0017 on test and SciFact (dev -0.0056), and each hit
    # turned into a Python object costs about 10 us (2,000 per arm tripled a top_k 10 search).
    document_pool: int = Field(500, ge=10, le=20000)
    # How new indexes are built (an index keeps its own until a reindex): the title in front of
    # every chunk's embedded text, and a whole-document BM25 point per version.
    title_vectors: bool = True
    document_bm25: bool = True
    document_bm25_k1: float = Field(0.6, ge=0.0, le=10.0)
    document_bm25_b: float = Field(0.2, ge=0.0, le=1.0)
    # The lexical side of a longer query keeps this many distinct terms, the most informative
    # (query frequency x IDF estimated from a sample of the index), so its cost stays bounded.
    max_query_terms: int = Field(128, ge=1, le=4096)

    # "inprocess": the API process runs jobs; "off": only `rag-service worker` processes do.
    job_runner: Literal["inprocess", "off"] = "inprocess"
    job_lease_seconds: float = 60.0
    # Files of one batch upload processed at a time, and jobs one runner (the API's or a
    # worker's) runs at once: enough that one file parses while others embed (the group
    # encoder merges their model calls into shared batches).
    ingest_concurrency: int = 4
    job_concurrency: int = 4

    # Webhooks (docs/operations.md): "inprocess" runs the deliverer in the API process (every
    # `rag-service worker` runs one too); "off" leaves delivery to workers.
    webhook_delivery: Literal["inprocess", "off"] = "inprocess"
    # Seconds before each retry after a failed attempt; when the last one fails the endpoint is
    # disabled. The default (Standard Webhooks' usual schedule) spans about 27 hours.
    webhook_retry_schedule_s: str = "5,300,1800,7200,18000,36000,36000"
    webhook_timeout_s: float = 10.0
    webhook_max_response_bytes: int = 65536
    # Endpoints on loopback, private, link-local or metadata addresses are refused unless this is set.
    webhook_allow_private: bool = False
    webhook_concurrency: int = 4
    webhook_lease_seconds: float = 60.0
    # Events are kept this long for the stream's Last-Event-ID resume (and for redelivery).
    event_retention_hours: float = 72.0

    # Requests per API key per minute (0 turns limiting off).
    rate_limit_per_minute: int = 1200
    # Comma-separated origins allowed by CORS; empty means CORS is off.
    cors_origins: str = ""

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "rag.db"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.sqlite_path}"

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    @property
    def max_request_bytes(self) -> int:
        """The whole request body: the file plus multipart framing and form fields."""
        return self.max_upload_bytes + 1024 * 1024

    @model_validator(mode="after")
    def _encoder_variant_exists(self) -> "Settings":
        if (self.embedding_backend, self.embedding_precision) in (("torch", "int8"), ("onnx", "bf16")):
            raise ValueError(f"RAG_EMBEDDING_BACKEND={self.embedding_backend} does not run "
                             f"RAG_EMBEDDING_PRECISION={self.embedding_precision} (torch: fp32, bf16; onnx: fp32, int8)")
        return self

    @property
    def webhook_retry_delays(self) -> list[float]:
        """RAG_WEBHOOK_RETRY_SCHEDULE_S as seconds before each retry (checked at start-up below)."""
        return [float(p) for p in self.webhook_retry_schedule_s.split(",") if p.strip()]

    @model_validator(mode="after")
    def _retry_schedule_parses(self) -> "Settings":
        try:
            delays = self.webhook_retry_delays
        except ValueError:
            delays = [-1.0]
        if any(d < 0 for d in delays):
            raise ValueError("RAG_WEBHOOK_RETRY_SCHEDULE_S must be comma-separated seconds >= 0, like 5,300,1800")
        return self

    @property
    def encoder_cache_dir(self) -> Path:
        """ONNX exports and `auto` decisions, built on this machine and reused by later starts."""
        return self.data_dir / "encoders"

    @property
    def extra_embedding_models(self) -> list[str]:
        return [m.strip() for m in self.embedding_models.split(",") if m.strip()]
