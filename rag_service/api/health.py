"""Liveness and readiness probes (no key: orchestrators call them)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from rag_service.api.schemas.common import errors_for, returns
from rag_service.api.schemas.status import Health, NotReady, Readiness

router = APIRouter(tags=["health"])


@router.get("/v1/health", responses=returns(Health) | errors_for(422))
def health() -> dict[str, Any]:
    """The process is up and answering; says nothing about its dependencies."""
    return {"status": "ok"}


@router.get("/v1/ready", responses=returns(Readiness) | errors_for(422) | returns(
    NotReady, 503, "`not_ready`: still loading, or a dependency does not answer (`components`; Retry-After)"))
def ready(request: Request) -> JSONResponse:
    """200 once the encoder is loaded and the database and vector store answer; 503 before and whenever one fails."""
    is_ready, body = request.app.state.readiness.check()
    if is_ready:
        return JSONResponse(body)
    failing = sorted(name for name, c in body["components"].items() if not c["ok"])
    return JSONResponse({"error": "not_ready", "code": "not_ready",
                         "message": f"not ready: {', '.join(failing)}", **body},
                        status_code=503, headers={"Retry-After": "2"})
