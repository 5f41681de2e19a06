"""Request dependencies: the service context, the caller's principal, paging.

The ones that do no I/O are `async def`: FastAPI runs a plain `def` dependency in its thread
pool, and a search paid one thread hop per dependency (four, about a millisecond together)."""

from __future__ import annotations

from fastapi import Depends, Header, Query, Request, params
from starlette.concurrency import run_in_threadpool

from rag_service.context import ServiceContext
from rag_service.services.access import Boundary, boundary_value
from rag_service.services.auth import AuthService
from rag_service.services.common import Principal
from rag_service.services.values import check_text, check_value


async def get_ctx(request: Request) -> ServiceContext:
    return request.app.state.ctx


def api_key_from(request: Request) -> str | None:
    key = request.headers.get("x-api-key")
    if key:
        return key.strip()
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return None


async def principal(request: Request, ctx: ServiceContext = Depends(get_ctx)) -> Principal:
    # AuthBeforeBody (api/middleware.py) authenticates body-carrying requests before the
    # body is read and leaves the principal here; everything else is authenticated now
    # (a SQL lookup: in the thread pool, off the event loop).
    p = getattr(request.state, "principal", None)
    if p is None:
        p = await run_in_threadpool(AuthService(ctx.db).authenticate, api_key_from(request))
        request.state.principal = p
    return p


def requires(role: str):
    async def _check(p: Principal = Depends(principal)) -> Principal:
        AuthService.require(p, role)
        return p

    _check.required_role = role  # read by AuthBeforeBody to refuse before the body is read
    return _check


reader = requires("reader")
editor = requires("editor")
admin = requires("admin")


class Paging:
    def __init__(self, page: int = Query(1, ge=1, le=100000), per_page: int = Query(50, ge=1, le=500)) -> None:
        self.page = page
        self.per_page = per_page


async def data_boundary_header(x_data_boundary: str | None = Header(None, max_length=100),
                         data_boundary: str | None = Query(None, max_length=100)) -> str | None:
    """The data_boundary named outside the body (header or query); routes with a body field
    combine it with that through access.boundary_value (two different values: 422)."""
    return boundary_value(x_data_boundary, data_boundary)


async def boundary(given: str | None = Depends(data_boundary_header),
             account_id: str | None = Query(None, max_length=200)) -> Boundary:
    """The boundary of a request without a body field for it (reads, deletes)."""
    return Boundary.of(given, account_id=account_id)


def _is_json(content_type: str | None) -> bool:
    """FastAPI's own rule for parsing a body as JSON (no type, application/json, application/*+json)."""
    if not content_type:
        return True
    mime = content_type.split(";", 1)[0].strip().lower()
    return mime == "application/json" or (mime.startswith("application/") and mime.endswith("+json"))


async def checked_inputs(request: Request) -> None:
    """App-wide: path and query parameters and the JSON body hold only values the stores
    can represent (services/values.py), before any route or model sees them. FastAPI has
    parsed a route's JSON body before dependencies run, so this reads the cached value."""
    for name, value in request.path_params.items():
        if isinstance(value, str):
            check_text(value, name)
    for name, value in request.query_params.multi_items():
        check_text(name, "query")
        check_text(value, name)
    body_field = getattr(request.scope.get("route"), "body_field", None)
    if body_field is None or isinstance(body_field.field_info, params.Form):
        return  # no JSON body (multipart fields are checked where they are decoded)
    if _is_json(request.headers.get("content-type")) and await request.body():
        body = await request.json()
        if not isinstance(body, dict):
            check_value(body, "body")
            return
        for key, value in body.items():  # fields named as the models name them: "filters.year"
            check_text(key, "body")
            check_value(value, key)
