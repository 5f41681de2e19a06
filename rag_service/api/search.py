from __future__ import annotations

from fastapi import APIRouter, Depends

from rag_service.api.deps import data_boundary_header, get_ctx, reader
from rag_service.api.responses import PlainJSONResponse
from rag_service.api.schemas.common import KEYED, errors_for, returns
from rag_service.api.schemas.search import SearchResponse
from rag_service.context import ServiceContext
from rag_service.search_params import SearchParams
from rag_service.services.common import Principal
from rag_service.services.search import SearchService

router = APIRouter(tags=["search"])
# An index named (path or index_ids) may be missing (404) or refused by the boundary (403).
SEARCH_ANSWERS = returns(SearchResponse) | errors_for(*KEYED, 403, 404, 413)


def _search(body: SearchParams, p: Principal, ctx: ServiceContext, header: str | None,
            index_id: str | None) -> PlainJSONResponse:
    return PlainJSONResponse(SearchService(ctx).search(p, body, path_index=index_id, header_boundary=header))


@router.post("/v1/search", responses=SEARCH_ANSWERS)
def search_all(body: SearchParams, header: str | None = Depends(data_boundary_header),
               p: Principal = Depends(reader), ctx: ServiceContext = Depends(get_ctx)) -> PlainJSONResponse:
    return _search(body, p, ctx, header, None)


@router.post("/v1/indexes/{index_id}/search", responses=SEARCH_ANSWERS)
def search_index(index_id: str, body: SearchParams,
                 header: str | None = Depends(data_boundary_header), p: Principal = Depends(reader),
                 ctx: ServiceContext = Depends(get_ctx)) -> PlainJSONResponse:
    return _search(body, p, ctx, header, index_id)
