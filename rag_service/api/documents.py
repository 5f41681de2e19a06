from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Header, Path, Query, UploadFile
from fastapi.responses import JSONResponse

from rag_service.api.conditional import expected_version
from rag_service.api.deps import (
    Paging,
    boundary,
    data_boundary_header,
    editor,
    get_ctx,
    reader,
)
from rag_service.api.schemas.common import KEYED, errors_for, returns
from rag_service.api.schemas.documents import (
    AsyncUpload,
    DeletedDocument,
    DocumentPage,
    DocumentView,
    VersionDetail,
    VersionListing,
)
from rag_service.context import ServiceContext
from rag_service.errors import PayloadTooLarge, ValidationFailed
from rag_service.services.access import Boundary
from rag_service.services.common import Principal
from rag_service.services.documents import DocumentService
from rag_service.services.uploads import UploadService
from rag_service.services.values import INT64_MAX, json_object

router = APIRouter(tags=["documents"])

MAX_METADATA_BYTES = 64 * 1024
# A version number in a path: the database's signed 64-bit integer.
VersionNumber = Annotated[int, Path(ge=1, le=INT64_MAX)]


def _metadata(raw: str | None) -> dict[str, Any]:
    if raw is None or raw.strip() == "":
        return {}
    if len(raw.encode("utf-8", "surrogatepass")) > MAX_METADATA_BYTES:
        raise ValidationFailed(f"metadata is larger than {MAX_METADATA_BYTES} bytes", field="metadata")
    return json_object(raw, "metadata")


def _read_limited(file: UploadFile, limit: int) -> bytes:
    chunks, total = [], 0
    while True:
        block = file.file.read(1024 * 1024)
        if not block:
            return b"".join(chunks)
        total += len(block)
        if total > limit:
            raise PayloadTooLarge(f"the file is larger than the {limit // (1024 * 1024)} MB limit (RAG_MAX_UPLOAD_MB)",
                                  limit_bytes=limit)
        chunks.append(block)


# One file and a few fields; Starlette would otherwise accept 1000 of each.
UPLOAD_FORM_LIMITS = {"max_files": 1, "max_fields": 8}
UPLOAD_ANSWERS = (returns(DocumentView, 201, "a new version, indexed")
                  | returns(DocumentView, 200, "unchanged: the same bytes and metadata as the latest version")
                  | returns(AsyncUpload, 202, "`?async=true`: the version is claimed and an ingest job queued")
                  | errors_for(*KEYED, 403, 404, 409, 413, 415))
# A document read, write or version: the index or document may be missing, the boundary may refuse.
ONE_DOCUMENT = errors_for(*KEYED, 403, 404)


@router.post("/v1/indexes/{index_id}/documents", status_code=201, form_limits=UPLOAD_FORM_LIMITS,
             responses=UPLOAD_ANSWERS)
def upload_document(
    index_id: str,
    file: UploadFile = File(...),
    name: str | None = Form(None),
    metadata: str | None = Form(None),
    if_version: str | None = Form(None),
    if_match: str | None = Header(None),
    run_async: bool = Query(False, alias="async"),
    data_boundary: str | None = Form(None, max_length=100),
    account_id: str | None = Form(None, max_length=200),
    outside: str | None = Depends(data_boundary_header),
    p: Principal = Depends(editor),
    ctx: ServiceContext = Depends(get_ctx),
):
    under = Boundary.of(data_boundary, outside, account_id=account_id)  # sync and async alike
    data = _read_limited(file, ctx.settings.max_upload_bytes)
    from fastapi.encoders import jsonable_encoder

    if run_async:
        job, view = UploadService(ctx).upload_async(
            p, index_id, data, file.filename or "", name, _metadata(metadata), expected_version(if_version, if_match),
            under)
        if job is None:  # identical to the latest version: nothing to do
            return JSONResponse(jsonable_encoder(view), status_code=200, headers={"ETag": view["etag"]})
        return JSONResponse(jsonable_encoder({**job, "document": view}), status_code=202)
    view, created = UploadService(ctx).upload(
        p, index_id, data, file.filename or "", name, _metadata(metadata), expected_version(if_version, if_match), under
    )
    return JSONResponse(jsonable_encoder(view), status_code=201 if created else 200, headers={"ETag": view["etag"]})


@router.get("/v1/indexes/{index_id}/documents", responses=returns(DocumentPage) | ONE_DOCUMENT)
def list_index_documents(index_id: str, paging: Paging = Depends(), include_deleted: bool = False,
                         name_prefix: str | None = None, p: Principal = Depends(reader),
                         under: Boundary = Depends(boundary), ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    return DocumentService(ctx).list(p, index_id, paging.page, paging.per_page, include_deleted, name_prefix, under)


@router.get("/v1/indexes/{index_id}/documents/by-name/{name:path}/versions",
            responses=returns(VersionListing) | ONE_DOCUMENT)
def document_versions(index_id: str, name: str, p: Principal = Depends(reader), under: Boundary = Depends(boundary),
                      ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    return DocumentService(ctx).versions(p, index_id, name, under)


@router.get("/v1/indexes/{index_id}/documents/by-name/{name:path}", responses=returns(DocumentView) | ONE_DOCUMENT)
def document_by_name(index_id: str, name: str, p: Principal = Depends(reader), under: Boundary = Depends(boundary),
                     ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    return DocumentService(ctx).get_by_name(p, index_id, name, under)


@router.get("/v1/indexes/{index_id}/documents/{document_id}", responses=returns(DocumentView) | ONE_DOCUMENT)
def get_index_document(index_id: str, document_id: str, p: Principal = Depends(reader),
                       under: Boundary = Depends(boundary), ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    return DocumentService(ctx).get(p, document_id, index_id, under)


@router.get("/v1/indexes/{index_id}/documents/{document_id}/versions/{version}",
            responses=returns(VersionDetail) | ONE_DOCUMENT)
def get_index_document_version(index_id: str, document_id: str, version: VersionNumber,
                               p: Principal = Depends(reader), under: Boundary = Depends(boundary),
                               ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    return DocumentService(ctx).version(p, document_id, version, index_id, under)


@router.delete("/v1/indexes/{index_id}/documents/{document_id}", responses=returns(DeletedDocument) | ONE_DOCUMENT)
def delete_index_document(index_id: str, document_id: str, hard: bool = Query(False),
                          p: Principal = Depends(editor), under: Boundary = Depends(boundary),
                          ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    return DocumentService(ctx).delete(p, document_id, hard, index_id, under)


@router.post("/v1/indexes/{index_id}/documents/{document_id}/restore",
             responses=returns(DocumentView) | ONE_DOCUMENT)
def restore_index_document(index_id: str, document_id: str, p: Principal = Depends(editor),
                           under: Boundary = Depends(boundary), ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    return DocumentService(ctx).restore(p, document_id, index_id, under)


@router.get("/v1/documents", responses=returns(DocumentPage) | errors_for(*KEYED))
def list_documents(paging: Paging = Depends(), include_deleted: bool = False, name_prefix: str | None = None,
                   p: Principal = Depends(reader), under: Boundary = Depends(boundary),
                   ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    return DocumentService(ctx).list(p, None, paging.page, paging.per_page, include_deleted, name_prefix, under)


@router.get("/v1/documents/{document_id}", responses=returns(DocumentView) | ONE_DOCUMENT)
def get_document(document_id: str, p: Principal = Depends(reader), under: Boundary = Depends(boundary),
                 ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    return DocumentService(ctx).get(p, document_id, boundary=under)


@router.get("/v1/documents/{document_id}/versions/{version}", responses=returns(VersionDetail) | ONE_DOCUMENT)
def get_document_version(document_id: str, version: VersionNumber, p: Principal = Depends(reader),
                         under: Boundary = Depends(boundary), ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    return DocumentService(ctx).version(p, document_id, version, boundary=under)


@router.delete("/v1/documents/{document_id}", responses=returns(DeletedDocument) | ONE_DOCUMENT)
def delete_document(document_id: str, hard: bool = Query(False), p: Principal = Depends(editor),
                    under: Boundary = Depends(boundary), ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    return DocumentService(ctx).delete(p, document_id, hard, boundary=under)


@router.post("/v1/documents/{document_id}/restore", responses=returns(DocumentView) | ONE_DOCUMENT)
def restore_document(document_id: str, p: Principal = Depends(editor), under: Boundary = Depends(boundary),
                     ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    return DocumentService(ctx).restore(p, document_id, boundary=under)
