from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from rag_service.api.deps import data_boundary_header, get_ctx, reader
from rag_service.api.schemas.common import KEYED, errors_for, returns
from rag_service.api.schemas.search import SearchResponse
from rag_service.context import ServiceContext
from rag_service.services.access import boundary_value
from rag_service.services.common import Principal
from rag_service.services.search import MAX_QUERY_CHARS, SearchParams, SearchService
from rag_service.services.values import INT64_MAX, INT64_MIN

router = APIRouter(tags=["search"])
# An index named (path or index_ids) may be missing (404) or refused by the boundary (403).
SEARCH_ANSWERS = returns(SearchResponse) | errors_for(*KEYED, 403, 404, 413)


# Integers are JSON integers (a boolean is not 1) that fit the stores' signed 64 bits;
# numbers are finite. Strings and filters are checked app-wide (api/deps.py checked_inputs).
Int64 = Annotated[StrictInt, Field(ge=INT64_MIN, le=INT64_MAX)]
Finite = Annotated[float, Field(allow_inf_nan=False)]


class SearchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(max_length=MAX_QUERY_CHARS)
    top_k: StrictInt = Field(10, ge=1, le=100)
    result_type: str = "chunk"
    mode: str = "hybrid"
    filters: dict[str, Any] | None = None
    min_score: Finite | None = None
    as_of_version: Int64 | None = Field(None, ge=1)
    include_history: bool = False
    data_boundary: str | None = None
    account_id: str | None = None
    index_ids: list[str] | None = Field(None, max_length=100)
    rerank: bool = False
    explain: bool = True
    # Hybrid fusion for this request (defaults: RAG_RRF_K and RAG_FUSION_*_WEIGHT).
    rrf_k: StrictInt | None = Field(None, ge=1, le=1000)
    fusion_weights: list[Finite] | None = Field(None, min_length=2, max_length=2,
                                                description="[dense, lexical] weights of the RRF fusion, each 0-100")


def to_search_params(body: SearchBody, header_boundary: str | None) -> SearchParams:
    data = body.model_dump()
    data["data_boundary"] = boundary_value(body.data_boundary, header_boundary)  # two different: 422
    weights = data.pop("fusion_weights")
    data["weights"] = tuple(float(w) for w in weights) if weights is not None else None
    return SearchParams(**data)


def _search(request: Request, body: SearchBody, p: Principal, ctx: ServiceContext, header: str | None,
            index_id: str | None) -> dict[str, Any]:
    return SearchService(ctx).search(p, to_search_params(body, header), path_index=index_id)


@router.post("/v1/search", responses=SEARCH_ANSWERS)
def search_all(request: Request, body: SearchBody, header: str | None = Depends(data_boundary_header),
               p: Principal = Depends(reader), ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    return _search(request, body, p, ctx, header, None)


@router.post("/v1/indexes/{index_id}/search", responses=SEARCH_ANSWERS)
def search_index(index_id: str, request: Request, body: SearchBody,
                 header: str | None = Depends(data_boundary_header), p: Principal = Depends(reader),
                 ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    return _search(request, body, p, ctx, header, index_id)
