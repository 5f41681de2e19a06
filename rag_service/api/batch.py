"""POST /v1/indexes/{id}/documents/batch: many `file` parts, one answer item per file."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from rag_service.api.deps import data_boundary_header, editor, get_ctx
from rag_service.api.errors import STATUS_BY_CODE
from rag_service.api.schemas.common import KEYED, errors_for, returns
from rag_service.api.schemas.documents import BatchResult
from rag_service.context import ServiceContext
from rag_service.errors import PayloadTooLarge, ValidationFailed
from rag_service.services.access import Boundary
from rag_service.services.batch import BatchFile, BatchOutcome, BatchUploadService
from rag_service.services.common import Principal
from rag_service.services.values import loads, parse_int64

router = APIRouter(tags=["documents"])

MAX_BATCH_FILES = 1000
MANIFEST_KEYS = {"name", "metadata", "if_version"}


def _entry(raw: Any, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ValidationFailed(f"{where} must be an object with name, metadata, if_version", field=where)
    unknown = set(raw) - MANIFEST_KEYS
    if unknown:
        raise ValidationFailed(f"{where} has unknown keys {sorted(unknown)}; allowed: {sorted(MANIFEST_KEYS)}",
                               field=where)
    name, metadata, if_version = raw.get("name"), raw.get("metadata", {}), raw.get("if_version")
    if name is not None and not isinstance(name, str):
        raise ValidationFailed(f"{where}.name must be a string", field=f"{where}.name")
    if not isinstance(metadata, dict):
        raise ValidationFailed(f"{where}.metadata must be a JSON object", field=f"{where}.metadata")
    if isinstance(if_version, str):
        if_version = parse_int64(if_version, f"{where}.if_version")
    elif if_version is not None and (isinstance(if_version, bool) or not isinstance(if_version, int)):
        raise ValidationFailed(f"{where}.if_version must be an integer", field=f"{where}.if_version")
    return {"name": name, "metadata": metadata, "if_version": if_version}


def parse_manifest(raw: str | None, filenames: list[str]) -> list[dict[str, Any]]:
    """Per-file name, metadata and if_version: a JSON array in file order, or an object keyed by filename."""
    empty = {"name": None, "metadata": {}, "if_version": None}
    if raw is None or raw.strip() == "":
        return [dict(empty) for _ in filenames]
    value = loads(raw, "manifest")
    if isinstance(value, list):
        if len(value) != len(filenames):
            raise ValidationFailed(f"manifest has {len(value)} entries for {len(filenames)} files", field="manifest")
        return [_entry(v, f"manifest[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        unknown = set(value) - set(filenames)
        if unknown:
            raise ValidationFailed(f"manifest names files that were not sent: {sorted(unknown)[:5]}", field="manifest")
        return [_entry(value[f], f"manifest.{f}") if f in value else dict(empty) for f in filenames]
    raise ValidationFailed("manifest must be a JSON array (one entry per file) or an object keyed by filename",
                           field="manifest")


def _item(outcome: BatchOutcome) -> dict[str, Any]:
    if outcome.error is not None:
        err = outcome.error
        return {"status_code": STATUS_BY_CODE.get(err.code, 500), "filename": outcome.filename, "error": err.code,
                "code": err.code, "message": err.message, **err.detail}
    if outcome.job is not None:
        return {"status_code": 202, "filename": outcome.filename, **outcome.job, "document": outcome.view}
    # `status` stays the document's (ready, pending...), as in a single upload's answer.
    return {"status_code": 201 if outcome.created else 200, "filename": outcome.filename, **(outcome.view or {})}


@router.post("/v1/indexes/{index_id}/documents/batch", status_code=201,
             form_limits={"max_files": MAX_BATCH_FILES, "max_fields": 8},
             responses=returns(BatchResult, 201, "every file was stored (or unchanged, or queued)")
             | returns(BatchResult, 207, "at least one file failed: see each item's status_code and code")
             | errors_for(*KEYED, 403, 404, 413))
def upload_batch(
    index_id: str,
    file: list[UploadFile] = File(..., description="one part per document"),
    manifest: str | None = Form(None, description="JSON: [{name, metadata, if_version}, ...] in file order, "
                                                  "or {filename: {...}}"),
    data_boundary: str | None = Form(None, max_length=100),
    account_id: str | None = Form(None, max_length=200),
    outside: str | None = Depends(data_boundary_header),
    run_async: bool = Query(False, alias="async"),
    p: Principal = Depends(editor),
    ctx: ServiceContext = Depends(get_ctx),
) -> JSONResponse:
    under = Boundary.of(data_boundary, outside, account_id=account_id)
    filenames = [f.filename or "upload" for f in file]
    entries = parse_manifest(manifest, filenames)
    limit = ctx.settings.max_upload_bytes
    files = []
    for part, filename, entry in zip(file, filenames, entries):
        data = part.file.read(limit + 1)
        if len(data) > limit:
            raise PayloadTooLarge(f"{filename} is larger than the {limit // (1024 * 1024)} MB limit "
                                  "(RAG_MAX_UPLOAD_MB)", limit_bytes=limit, filename=filename)
        files.append(BatchFile(data=data, filename=filename, **entry))
    outcomes = BatchUploadService(ctx).upload(p, index_id, files, under, run_async=run_async)
    items = [_item(o) for o in outcomes]
    failed = sum(i["status_code"] >= 400 for i in items)
    return JSONResponse(jsonable_encoder({"items": items, "total": len(items), "failed": failed}),
                        status_code=207 if failed else 201)
