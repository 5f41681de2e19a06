"""Answers of the search routes, evidence records and the agent tools
(services/search.py; api/tools.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from rag_service.api.schemas.common import Encoder, IndexExclusion, ResponseModel


class Position(ResponseModel):
    ordinal: int = Field(description="the chunk's place in its version, from 0")
    page: int | None
    section: str | None


class Explain(ResponseModel):
    """How the hit ranked: the fields of the modes that ran are set, the others null."""

    fused_score: float | None
    dense_rank: int | None
    dense_score: float | None
    lexical_rank: int | None
    lexical_score: float | None
    retrieval_score: float | None = Field(None, description="rerank only: the score before reranking")
    rerank_score: float | None = Field(None, description="rerank only: the cross-encoder's score")


class ChunkHit(ResponseModel):
    """A passage of the served version of a live document (result_type chunk)."""

    chunk_id: str
    document_id: str
    document_name: str | None
    index_id: str
    index_name: str
    version: int
    text: str
    score: float
    metadata: dict[str, Any] = Field(description="the version's provenance metadata")
    metadata_error: str | None = None
    ordinal: int
    page: int | None
    section: str | None
    position: Position
    explain: Explain
    highlights: list[str] = Field(description="snippets with the query's terms in <em>")


class DocumentHit(ResponseModel):
    """One document with its best chunk (result_type document)."""

    document_id: str
    document_name: str | None
    index_id: str
    version: int
    score: float
    metadata: dict[str, Any]
    best_chunk: ChunkHit
    matching_chunks: int = Field(description="its chunks among the candidates")


class EvidenceHit(ResponseModel):
    chunk_id: str
    document_id: str
    version: int
    score: float


class SearchEvidence(ResponseModel):
    """What the search did, recorded as an evidence record (GET /v1/rag/evidence/{id})."""

    evidence_id: str | None
    mode: str
    model: str | list[str] = Field(description="the embedding model, or a list when the searched indexes differ")
    models: list[str]
    encoder: Encoder | list[Encoder] | None = Field(description="a list when the searched indexes differ; "
                                                                "null when no index was searched")
    query: str
    top_k: int
    result_type: str
    filters: dict[str, Any]
    reranked: bool
    data_boundary: str
    privacy_tiers_read: list[str]
    indexes_searched: list[str]
    indexes_excluded: list[IndexExclusion] = Field(description="indexes the data_boundary may not read, skipped")
    stale_dropped: int = Field(description="hits dropped because SQL no longer serves their version")
    result_count: int
    results: list[EvidenceHit]
    latency_ms: float


class SearchResponse(ResponseModel):
    results: list[ChunkHit | DocumentHit] = Field(description="best first: chunks, or documents (result_type)")
    evidence: SearchEvidence
    data_boundary: str
    privacy_tiers_read: list[str]


class EvidenceRecord(SearchEvidence):
    evidence_id: str
    kind: str = Field(description="search")
    created_at: datetime


class ToolFunction(ResponseModel):
    name: str
    description: str
    parameters: dict[str, Any] = Field(description="the JSON Schema of the arguments")


class OpenAITool(ResponseModel):
    """An OpenAI function-calling tool definition."""

    type: str = Field(description="function")
    function: ToolFunction


class ToolCallResult(ResponseModel):
    name: str
    content: dict[str, Any] = Field(description="the tool's result: search results with citations, a document "
                                                "with its text and provenance, or the indexes")
    tool_call_id: str | None = Field(None, description="the `id` of an OpenAI tool call, echoed")
