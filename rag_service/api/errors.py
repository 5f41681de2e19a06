"""The one table from domain error codes to HTTP responses, and the error shape:
{"error": CODE, "code": CODE, "message": "...", ...detail}."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from rag_service.errors import ServiceError

STATUS_BY_CODE = {
    "unauthorized": 401,
    "forbidden": 403,
    "data_boundary_violation": 403,
    "not_found": 404,
    "conflict": 409,
    "version_conflict": 409,
    "payload_too_large": 413,
    "unsupported_media_type": 415,
    "validation_error": 422,
    "empty_document": 422,
    "corrupt_document": 422,
    "rerank_not_configured": 422,
    "rate_limited": 429,
    "rag_job_runner_not_live": 501,
    "retrieval_unavailable": 503,
}

_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
               409: "conflict", 413: "payload_too_large", 415: "unsupported_media_type", 422: "validation_error",
               429: "rate_limited", 503: "retrieval_unavailable"}


def error_response(code: str, message: str, status: int | None = None, headers: dict | None = None,
                   request: Request | None = None, **detail: Any) -> JSONResponse:
    body = {"error": code, "code": code, "message": message, **detail}
    request_id = getattr(getattr(request, "state", None), "request_id", None) if request else None
    if request_id:
        body["request_id"] = request_id
    status = status or STATUS_BY_CODE.get(code, 500)
    if status == 503:
        headers = {"Retry-After": "5", **(headers or {})}
    return JSONResponse(jsonable_encoder(body), status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError):
        return error_response(exc.code, exc.message, request=request, **exc.detail)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        errors = [
            {"loc": list(e.get("loc", [])), "msg": e.get("msg"), "type": e.get("type")} for e in exc.errors()
        ]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        message = f"{'.'.join(str(x) for x in first['loc'])}: {first['msg']}"
        return error_response("validation_error", message, request=request, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return error_response(code, str(exc.detail), status=exc.status_code, request=request)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        import logging

        logging.getLogger("rag_service").exception("unhandled error")
        return error_response("internal_error", "internal error", status=500, request=request)
