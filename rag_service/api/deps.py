"""Request dependencies: the service context, the caller's principal, paging."""

from __future__ import annotations

from fastapi import Depends, Header, Query, Request

from rag_service.context import ServiceContext
from rag_service.services.auth import AuthService
from rag_service.services.common import Principal


def get_ctx(request: Request) -> ServiceContext:
    return request.app.state.ctx


def api_key_from(request: Request) -> str | None:
    key = request.headers.get("x-api-key")
    if key:
        return key.strip()
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return None


def principal(request: Request, ctx: ServiceContext = Depends(get_ctx)) -> Principal:
    p = AuthService(ctx.db).authenticate(api_key_from(request))
    request.state.principal = p
    return p


def requires(role: str):
    def _check(p: Principal = Depends(principal)) -> Principal:
        AuthService.require(p, role)
        return p

    return _check


reader = requires("reader")
editor = requires("editor")
admin = requires("admin")


class Paging:
    def __init__(self, page: int = Query(1, ge=1, le=100000), per_page: int = Query(50, ge=1, le=500)) -> None:
        self.page = page
        self.per_page = per_page


def data_boundary_header(x_data_boundary: str | None = Header(None)) -> str | None:
    return x_data_boundary


def json_object(raw: str, field: str) -> dict:
    """A JSON object sent as text (multipart metadata, OpenAI tool arguments), or validation_error."""
    import json

    from rag_service.errors import ValidationFailed

    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ValidationFailed(f"{field} is not valid JSON: {exc}", field=field) from None
    if not isinstance(value, dict):
        raise ValidationFailed(f"{field} must be a JSON object", field=field)
    return value
