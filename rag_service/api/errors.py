"""Domain errors as HTTP responses (through the one table in rag_service.error_codes), and the error shape:
{"error": CODE, "code": CODE, "message": "...", ...detail}."""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from rag_service.error_codes import STATUS_BY_CODE
from rag_service.errors import ServiceError
from rag_service.services.values import text_problem


class BodyTooLarge(StarletteHTTPException):
    """Raised from receive(): FastAPI re-raises HTTPExceptions from body parsing
    untouched, so the app's error handler answers 413 payload_too_large."""

    def __init__(self, limit_bytes: int) -> None:
        super().__init__(status_code=413, detail=f"request body is larger than {limit_bytes} bytes")
        self.limit_bytes = limit_bytes


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
    return JSONResponse(_printable(jsonable_encoder(body)), status_code=status, headers=headers)


def _printable(value: Any) -> Any:
    """An error may quote the bad input (a pydantic loc is a dict key): escape what UTF-8
    or JSON cannot carry, so the error itself can always be sent."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8") if text_problem(value) else value
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {_printable(k): _printable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_printable(v) for v in value]
    return value


def _field(loc: list[Any]) -> str:
    """A pydantic error location as the request names the field: ("body", "filters", "year") -> "filters.year"."""
    parts = [str(x) for x in loc]
    if len(parts) > 1 and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    return ".".join(parts) or "body"


# Starlette reports multipart limits only as a 400 with a message, and FastAPI turns
# any other body-parsing failure (JSON nested past Python's recursion limit) into a
# bare 400; both get one of our stable codes with a `reason`.
_MULTIPART_REASONS = (
    ("Too many files", "payload_too_large", "too_many_files"),
    ("Too many fields", "payload_too_large", "too_many_fields"),
    ("Part exceeded maximum size", "payload_too_large", "form_field_too_large"),
)


def _body_parse_error(exc: StarletteHTTPException) -> tuple[str, str, str] | None:
    detail = str(exc.detail)
    for prefix, code, reason in _MULTIPART_REASONS:
        if detail.startswith(prefix):
            return code, detail, reason
    if isinstance(exc.__cause__, RecursionError):
        return "validation_error", "the JSON body is nested too deeply", "too_deeply_nested"
    if detail == "There was an error parsing the body":
        return "validation_error", "the request body could not be parsed", "malformed_body"
    return None


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
        field = "body" if first.get("type") == "json_invalid" else _field(first["loc"])
        return error_response("validation_error", message, request=request, field=field, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 400:
            translated = _body_parse_error(exc)
            if translated is not None:
                code, message, reason = translated
                extra = {"field": "body"} if code == "validation_error" else {}
                return error_response(code, message, request=request, reason=reason, **extra)
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        extra = {"limit_bytes": exc.limit_bytes, "reason": "body_too_large"} if isinstance(exc, BodyTooLarge) else {}
        return error_response(code, str(exc.detail), status=exc.status_code, request=request, **extra)

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    @app.exception_handler(SQLAlchemyTimeoutError)
    async def _database_down(request: Request, exc: Exception):
        # Connection refused, server gone, pool exhausted, SQLite locked: all transient. SQL is one
        # of the stores, so the contract's store-down code applies (Database.session maps the
        # clearly-unreachable cases the same way before they get here).
        import logging

        logging.getLogger("rag_service").warning("database unavailable: %s", type(exc).__name__)
        return error_response("retrieval_unavailable", "the database is unavailable; retry later", request=request,
                              component="database")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        import logging

        logging.getLogger("rag_service").exception("unhandled error")
        return error_response("internal_error", "internal error", status=500, request=request)
