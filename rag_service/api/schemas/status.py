"""Answers of /v1/health, /v1/ready and /v1/rag/status (services/readiness.py, services/status.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from rag_service.api.schemas.common import Encoder, ErrorBody, ResponseModel


class Health(ResponseModel):
    status: str = Field(description="ok")


class ReadyComponent(ResponseModel):
    ok: bool
    state: str | None = Field(None, description="encoder only: loading, loaded or failed")
    error: str | None = None


class WarmUp(ResponseModel):
    indexes: int = Field(description="recently used indexes the warm-up searched (their shards opened)")
    search: Literal["ok", "failed"] | None = Field(
        description="one whole search over the latest index, as a request runs it (nothing recorded); "
                    "null when there is no index yet or the warm-up has not reached it")


class Readiness(ResponseModel):
    ready: bool
    ready_after_s: float | None = Field(description="seconds from start until the warm-up finished")
    components: dict[str, ReadyComponent] = Field(description="encoder, database, vector_store")
    warm_up: WarmUp


class NotReady(ErrorBody, Readiness):
    """503 `not_ready`: the encoder still loads, or the database or vector store does not answer."""


class Probe(ResponseModel):
    """One component, probed now. Optional components carry `configured`; one not configured
    is not probed (`reachable: false`) and does not degrade the status."""

    reachable: bool
    probe_ms: float | None = None
    error: str | None = None
    configured: bool | None = None
    kind: str | None = Field(None, description="metadata_db and vector_store: which one")


class Components(ResponseModel):
    metadata_db: Probe
    vector_store: Probe
    embedder: Probe
    job_runner: Probe
    reranker: Probe
    webhook_deliverer: Probe


class RetrievalModes(ResponseModel):
    """live, unavailable, available_when_configured or planned."""

    dense: str
    lexical: str
    hybrid: str
    rerank: str
    graph: str
    visual: str


class EncoderRequest(ResponseModel):
    backend: str
    precision: str


class Encoders(ResponseModel):
    requested: EncoderRequest = Field(description="RAG_EMBEDDING_BACKEND / RAG_EMBEDDING_PRECISION")
    decisions: list[dict[str, Any]] = Field(description="how `auto` decided, per model")
    loaded: list[Encoder]


class EventsStatus(ResponseModel):
    event_stream: str
    webhooks: str
    event_types: list[str]
    retention_hours: float


class LatestEval(ResponseModel):
    job_id: str | None
    created_at: datetime
    metrics: dict[str, Any]


class ProjectSummary(ResponseModel):
    indexes: int
    documents: int
    versions: int
    chunks: int
    jobs: dict[str, int] = Field(description="jobs per state")
    latest_eval: dict[str, LatestEval] = Field(description="index id -> its latest eval run")


class RagStatus(ResponseModel):
    status: str = Field(description="ok, or degraded when a configured component does not answer")
    components: Components
    retrieval_modes: RetrievalModes
    embedding_models: list[str]
    embedding_models_loaded: list[str]
    encoders: Encoders
    rerank_model: str | None
    data_boundaries: list[str]
    privacy_tiers: list[str]
    boundary_policy: dict[str, dict[str, str]] = Field(description="boundary -> tier -> yes, no or same_account")
    job_classes: dict[str, str] = Field(description="job class -> live or planned")
    events: EventsStatus
    project: ProjectSummary | None = Field(None, description="with a key only: the key's project")
