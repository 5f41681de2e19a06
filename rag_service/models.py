"""SQL tables: the source of truth. Qdrant only indexes what is here."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, Column, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(value: datetime) -> datetime:
    """A stored datetime with its zone: SQLite hands them back naive, and they were written in UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def new_id() -> str:
    return uuid.uuid4().hex


class Project(SQLModel, table=True):
    id: str = Field(default_factory=new_id, primary_key=True)
    name: str = Field(index=True, unique=True)
    account_id: str | None = None
    created_at: datetime = Field(default_factory=utcnow)


class ApiKey(SQLModel, table=True):
    id: str = Field(default_factory=new_id, primary_key=True)
    project_id: str = Field(foreign_key="project.id", index=True)
    # sha256 of the key: the key itself is shown once and never stored.
    key_hash: str = Field(index=True, unique=True)
    prefix: str
    role: str
    name: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    revoked_at: datetime | None = None


class Index(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: str = Field(default_factory=new_id, primary_key=True)
    project_id: str = Field(foreign_key="project.id", index=True)
    name: str
    description: str = ""
    privacy_tier: str = "private"
    embedding_model: str
    # The encoder variant the index's vectors came from (with embedding_model: its identity).
    # Rows from before these columns were torch fp32, the only encoder the service had.
    embedding_backend: str = Field(default="torch", sa_column_kwargs={"server_default": "torch"})
    embedding_precision: str = Field(default="fp32", sa_column_kwargs={"server_default": "fp32"})
    embedding_dim: int
    chunk_max_characters: int
    chunk_overlap: int
    bm25_k1: float = 1.2
    bm25_b: float = 0.75
    # Mean chunk length (tokens) the stored lexical vectors were encoded with.
    bm25_avg_len: float = 0.0
    # How the collection was built (fixed until a reindex; rows from before these columns: neither).
    # title_vectors: each chunk is embedded with the document's title in front (pipelines/chunk.py
    # embedding_text). document_bm25: one point per version carries the whole document's BM25
    # weights (`bm25_doc`), the lexical arm of document-level search.
    title_vectors: bool = Field(default=False, sa_column_kwargs={"server_default": "0"})
    document_bm25: bool = Field(default=False, sa_column_kwargs={"server_default": "0"})
    document_bm25_k1: float = Field(default=0.6, sa_column_kwargs={"server_default": "0.6"})
    document_bm25_b: float = Field(default=0.2, sa_column_kwargs={"server_default": "0.2"})
    # Mean document length (tokens) the document points were encoded with.
    document_bm25_avg_len: float = Field(default=0.0, sa_column_kwargs={"server_default": "0"})
    collection: str
    # What a rollback returns to: the settings and collection before the last reindex swap.
    previous: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Document(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("index_id", "name"),)

    id: str = Field(default_factory=new_id, primary_key=True)
    project_id: str = Field(foreign_key="project.id", index=True)
    index_id: str = Field(foreign_key="index.id", index=True)
    name: str
    # Highest version number handed out; the compare-and-swap target.
    latest_version: int = 0
    # Highest version that is ready: the only one search may serve.
    current_version: int | None = None
    deleted_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class DocumentVersion(SQLModel, table=True):
    __tablename__ = "document_version"
    __table_args__ = (UniqueConstraint("document_id", "version"),)

    id: str = Field(default_factory=new_id, primary_key=True)
    document_id: str = Field(foreign_key="document.id", index=True)
    version: int
    content_hash: str
    size_bytes: int
    media_type: str
    filename: str
    doc_metadata: dict[str, Any] = Field(default_factory=dict, sa_column=Column("metadata", JSON))
    status: str = "pending"
    error: str | None = None
    chunk_count: int = 0
    # Of chunk_count: how many were sent to the model, and how many came from the
    # embedding cache (text unchanged since an earlier version or document).
    chunks_embedded: int = 0
    chunks_reused: int = 0
    text: str = ""
    created_by_key_id: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    ready_at: datetime | None = None


class Chunk(SQLModel, table=True):
    id: str = Field(primary_key=True)  # the deterministic vector point id
    version_id: str = Field(foreign_key="document_version.id", index=True)
    document_id: str = Field(index=True)
    index_id: str = Field(index=True)
    # The collection generation this chunking belongs to (a reindex builds a new one).
    collection: str = Field(default="", index=True)
    version: int
    ordinal: int
    text: str
    content_hash: str
    token_count: int = 0
    page: int | None = None
    element_type: str | None = None
    section: str | None = None


class EmbeddingCache(SQLModel, table=True):
    """Embeddings by (encoder identity, chunk content hash): unchanged text is never re-embedded,
    and a vector of one backend/precision is never served for another."""

    __tablename__ = "embedding_cache"

    model: str = Field(primary_key=True)
    backend: str = Field(default="torch", primary_key=True)
    precision: str = Field(default="fp32", primary_key=True)
    content_hash: str = Field(primary_key=True)
    vector: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class Evidence(SQLModel, table=True):
    id: str = Field(default_factory=new_id, primary_key=True)
    project_id: str = Field(index=True)
    kind: str = "search"
    body: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    created_at: datetime = Field(default_factory=utcnow)


class AuditLog(SQLModel, table=True):
    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    project_id: str = Field(index=True)
    key_id: str | None = None
    action: str = Field(index=True)
    target_type: str | None = None
    target_id: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    created_at: datetime = Field(default_factory=utcnow, index=True)



class Job(SQLModel, table=True):
    id: str = Field(default_factory=new_id, primary_key=True)
    project_id: str = Field(index=True)
    job_class: str
    status: str = Field(default="queued", index=True)
    data_boundary: str = "computer"
    privacy_tier: str | None = None
    account_id: str | None = None
    index_id: str | None = None
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    progress: int = 0
    result: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    error: str | None = None
    attempts: int = 0
    max_attempts: int = 3
    cancel_requested: int = 0
    lease_owner: str | None = None
    lease_expires_at: datetime | None = Field(default=None, index=True)
    created_by_key_id: str | None = None
    evidence: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    created_at: datetime = Field(default_factory=utcnow, index=True)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime = Field(default_factory=utcnow)


class UploadBlob(SQLModel, table=True):
    """Bytes of an asynchronous upload until its ingest job has indexed them."""

    __tablename__ = "upload_blob"

    version_id: str = Field(primary_key=True)
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class IndexSearchDefaults(SQLModel, table=True):
    """Search settings an index uses where a request leaves them out: stored by a `tune` job that
    proved them better on a labelled set, or by PATCH /v1/indexes/{id}. A table of its own, so
    databases made before it get it from create_all (there are no migrations)."""

    __tablename__ = "index_search_defaults"

    index_id: str = Field(primary_key=True)
    settings: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    source: str = "patch"  # "tune" or "patch"
    job_id: str | None = None
    updated_at: datetime = Field(default_factory=utcnow)


class EvalRun(SQLModel, table=True):
    __tablename__ = "eval_run"

    id: str = Field(default_factory=new_id, primary_key=True)
    project_id: str = Field(index=True)
    index_id: str = Field(index=True)
    job_id: str | None = None
    metrics: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    created_at: datetime = Field(default_factory=utcnow, index=True)


class Event(SQLModel, table=True):
    """The transactional outbox: one row per lifecycle change, written in the transaction of the
    change it reports, so a committed change always has its event (docs/operations.md)."""

    # sqlite_autoincrement: a seq is never handed out twice, even after retention empties the
    # table, so an SSE client's Last-Event-ID stays meaningful.
    __table_args__ = {"sqlite_autoincrement": True}

    seq: int | None = Field(default=None, primary_key=True)  # the stream's id: and the order of changes
    id: str = Field(default_factory=lambda: f"msg_{new_id()}", index=True, unique=True)  # webhook-id
    project_id: str = Field(index=True)
    type: str
    index_id: str | None = None
    document_id: str | None = None  # deliveries to one endpoint for one document keep this order
    webhook_id: str | None = None  # webhook.test: addressed to this endpoint only
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    created_at: datetime = Field(default_factory=utcnow, index=True)


class Webhook(SQLModel, table=True):
    id: str = Field(default_factory=lambda: f"wh_{new_id()}", primary_key=True)
    project_id: str = Field(index=True)
    url: str
    events: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    description: str = ""
    # Standard Webhooks secret (whsec_<base64>): shown once; the HMAC needs it in clear.
    secret: str
    # After a rotation the old secret signs too, for a grace period, so receivers can switch over.
    previous_secret: str | None = None
    previous_secret_until: datetime | None = None
    enabled: bool = True
    disabled_reason: str | None = None
    disabled_at: datetime | None = None
    created_by_key_id: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class WebhookDelivery(SQLModel, table=True):
    """One event owed to one endpoint: leased, attempted and retried like a job."""

    __tablename__ = "webhook_delivery"

    id: str = Field(default_factory=lambda: f"dlv_{new_id()}", primary_key=True)
    project_id: str = Field(index=True)
    webhook_id: str = Field(index=True)
    event_seq: int = Field(index=True)
    event_id: str
    event_type: str
    document_id: str | None = None
    # pending -> delivering -> succeeded | failed (the last retry failed: the endpoint is disabled)
    status: str = Field(default="pending", index=True)
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, index=True)
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    last_status_code: int | None = None
    last_latency_ms: float | None = None
    last_error: str | None = None
    # Every attempt: at, status_code, latency_ms, error (capped to the last 50).
    history: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON))
    redelivery_of: str | None = None
    created_at: datetime = Field(default_factory=utcnow, index=True)
    delivered_at: datetime | None = None
