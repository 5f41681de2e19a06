"""/v1/rag/*: status, jobs, evidence; /v1/audit-log."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from rag_service.api.deps import (
    Paging,
    admin,
    api_key_from,
    data_boundary_header,
    editor,
    get_ctx,
    reader,
)
from rag_service.api.schemas.admin import AuditPage
from rag_service.api.schemas.common import KEYED, errors_for, returns
from rag_service.api.schemas.jobs import Job, JobListing
from rag_service.api.schemas.search import EvidenceRecord
from rag_service.api.schemas.status import RagStatus
from rag_service.context import ServiceContext
from rag_service.services.access import boundary_value
from rag_service.services.audit import AuditService
from rag_service.services.auth import AuthService
from rag_service.services.common import Principal
from rag_service.services.jobs import JobService, contract
from rag_service.services.status import StatusService

router = APIRouter(tags=["rag"])


@router.get("/v1/rag/status", responses=returns(RagStatus) | errors_for(*KEYED))
def rag_status(request: Request, ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    principal = None
    key = api_key_from(request)
    if key:
        principal = AuthService(ctx.db).authenticate(key)  # a wrong key is 401, not silently global
    return StatusService(ctx).status(principal)


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    job_class: str
    data_boundary: str | None = None
    privacy_tier: str | None = None
    account_id: str | None = Field(None, max_length=200)
    index_id: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)


@router.get("/v1/rag/jobs", responses=returns(JobListing) | errors_for(*KEYED))
def list_jobs(paging: Paging = Depends(), status: str | None = None, p: Principal = Depends(reader),
              ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    return {"contract": contract(), "jobs": JobService(ctx).list(p, paging.page, paging.per_page, status)}


@router.post("/v1/rag/jobs", status_code=202,
             responses=returns(Job, 202, "queued") | errors_for(*KEYED, 403, 404, 413, 501))
def submit_job(body: JobCreate, header: str | None = Depends(data_boundary_header), p: Principal = Depends(editor),
               ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    data = body.model_dump()
    data["data_boundary"] = boundary_value(body.data_boundary, header)  # header and body disagree: 422
    return JobService(ctx).submit(p, data)


@router.get("/v1/rag/jobs/{job_id}", responses=returns(Job) | errors_for(*KEYED, 404))
def get_job(job_id: str, p: Principal = Depends(reader), ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    return JobService(ctx).get(p, job_id)


@router.post("/v1/rag/jobs/{job_id}/cancel", responses=returns(Job) | errors_for(*KEYED, 403, 404))
def cancel_job(job_id: str, p: Principal = Depends(editor), ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    return JobService(ctx).cancel(p, job_id)


@router.get("/v1/rag/evidence/{evidence_id}", responses=returns(EvidenceRecord) | errors_for(*KEYED, 404))
def get_evidence(evidence_id: str, p: Principal = Depends(reader), ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    return AuditService(ctx).evidence(p, evidence_id)


@router.get("/v1/audit-log", responses={200: {"model": AuditPage, "content": {"text/csv": {"schema": {"type": "string"}}},
                                             "description": "a page of entries (JSON), or the same page as CSV"}}
            | errors_for(*KEYED, 403))
def audit_log(paging: Paging = Depends(), action: str | None = None, since: datetime | None = None,
              until: datetime | None = None, format: str = Query("json", pattern="^(json|csv)$"),
              p: Principal = Depends(admin), ctx: ServiceContext = Depends(get_ctx)):
    page = AuditService(ctx).log(p, action, since, until, paging.page, paging.per_page)
    if format == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["id", "created_at", "action", "key_id", "target_type", "target_id", "detail"])
        for row in page["items"]:
            writer.writerow([row["id"], row["created_at"], row["action"], row["key_id"], row["target_type"],
                             row["target_id"], json.dumps(row["detail"], default=str)])
        return Response(buf.getvalue(), media_type="text/csv",
                        headers={"Content-Disposition": "attachment; filename=audit-log.csv"})
    return JSONResponse(jsonable_encoder(page))
