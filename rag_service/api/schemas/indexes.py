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
    collection_alias: str
    document_count: int = Field(description="live (not deleted) documents")
    created_at: datetime
    updated_at: datetime


class IndexPage(Page):
    items: list[IndexView]
