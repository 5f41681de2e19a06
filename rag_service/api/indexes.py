from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from rag_service.api.deps import Paging, editor, get_ctx, reader
from rag_service.api.schemas.common import KEYED, errors_for, returns
from rag_service.api.schemas.indexes import IndexPage, IndexView
from rag_service.context import ServiceContext
from rag_service.search_params import SearchDefaults
from rag_service.services.common import Principal
from rag_service.services.indexes import IndexService

router = APIRouter(prefix="/v1/indexes", tags=["indexes"])


class IndexCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(None, max_length=4000)
    privacy_tier: str | None = None
    embedding_model: str | None = Field(None, max_length=500)
    chunk_max_characters: int | None = None
    chunk_overlap: int | None = None
    bm25_k1: float | None = None
    bm25_b: float | None = None
    # How the collection is built (defaults: RAG_TITLE_VECTORS, RAG_DOCUMENT_BM25*); a reindex changes them.
    title_vectors: StrictBool | None = None
    document_bm25: StrictBool | None = None
    document_bm25_k1: float | None = Field(None, ge=0, le=10, allow_inf_nan=False)
    document_bm25_b: float | None = Field(None, ge=0, le=1, allow_inf_nan=False)


class IndexPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # mode / rrf_k / fusion_weights a search of this index uses where the request leaves them out;
    # {} returns every field to the service's default.
    search_defaults: SearchDefaults | None = None
    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=4000)
    privacy_tier: str | None = None
    bm25_k1: float | None = None
    bm25_b: float | None = None
    # The document points' BM25 (document-level lexical search); a change re-encodes them.
    document_bm25_k1: float | None = None
    document_bm25_b: float | None = None


@router.get("", responses=returns(IndexPage) | errors_for(*KEYED))
def list_indexes(paging: Paging = Depends(), p: Principal = Depends(reader), ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    return IndexService(ctx).list(p, paging.page, paging.per_page)


@router.post("", status_code=201, responses=returns(IndexView, 201) | errors_for(*KEYED, 403, 409, 413))
def create_index(body: IndexCreate, p: Principal = Depends(editor), ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    return IndexService(ctx).create(p, body.model_dump())


@router.get("/{index_id}", responses=returns(IndexView) | errors_for(*KEYED, 404))
def get_index(index_id: str, p: Principal = Depends(reader), ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    return IndexService(ctx).get(p, index_id)


@router.patch("/{index_id}", responses=returns(IndexView) | errors_for(*KEYED, 403, 404, 409, 413))
def update_index(index_id: str, body: IndexPatch, p: Principal = Depends(editor), ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    return IndexService(ctx).update(p, index_id, body.model_dump(exclude_unset=True))


@router.delete("/{index_id}", status_code=204, responses=errors_for(*KEYED, 403, 404))
def delete_index(index_id: str, p: Principal = Depends(editor), ctx: ServiceContext = Depends(get_ctx)) -> Response:
    IndexService(ctx).delete(p, index_id)
    return Response(status_code=204)
