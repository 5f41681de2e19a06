"""Answers of /v1/indexes (services/indexes.py `index_view`)."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from rag_service.api.schemas.common import Encoder, Page, ResponseModel


class Chunking(ResponseModel):
    max_characters: int
    overlap: int


class Bm25(ResponseModel):
    k1: float
    b: float
    avg_len: float = Field(description="the index's average chunk length in tokens")


class DocumentBm25(ResponseModel):
    enabled: bool = Field(description="one whole-document BM25 point per version: the lexical arm of document search")
    k1: float
    b: float
    avg_len: float = Field(description="the index's average document length in tokens")


class SearchDefaultsView(ResponseModel):
    mode: str
    rrf_k: int
    fusion_weights: list[float] = Field(description="[dense, lexical]")
    fusion: str = Field(description="document search: rrf or zscore")
    prf: bool = Field(description="document search: pseudo-relevance feedback (RM3, Rocchio)")
    lexical_unit: str = Field(description="document search: document or chunk BM25")
    source: dict[str, str] = Field(description="per field: service (the service's default) or index (its own)")


class IndexView(ResponseModel):
    id: str
    name: str
    description: str
    privacy_tier: str = Field(description="public, mesh_safe, private or personal")
    embedding_model: str
    embedding_dim: int
    encoder: Encoder = Field(description="fixed at creation; only a reindex job changes it")
    chunking: Chunking
    bm25: Bm25
    title_vectors: bool = Field(description="chunks embedded with the document's title in front (fixed until a reindex)")
    document_bm25: DocumentBm25
    collection_alias: str
    document_count: int = Field(description="live (not deleted) documents")
    search_defaults: SearchDefaultsView = Field(description="what a search of this index alone uses where the "
                                                            "request leaves a field out")
    created_at: datetime
    updated_at: datetime


class IndexPage(Page):
    items: list[IndexView]
