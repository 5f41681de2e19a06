"""What every HTTP request gets, in one plain ASGI layer: a request id, the declared
size check, per-key rate limiting, the latency metric and the access log line.

One layer rather than several `@app.middleware("http")` functions because each of
those (BaseHTTPMiddleware) wraps the request in its own task group and response
stream; on a 2-core machine that overhead was a visible share of a search.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

import anyio
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rag_service.api.deps import api_key_from
from rag_service.api.errors import error_response
from rag_service.api.ratelimit import RateLimiter
from rag_service.config import Settings
from rag_service.errors import ServiceError
from rag_service.logs import request_id_var
from rag_service.services.auth import AuthService

access_log = logging.getLogger("rag_service.access")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_REQUEST_ID = re.compile(r"[A-Za-z0-9._\-]{1,128}")


def clean_request_id(value: str | None) -> str | None:
    """A caller's X-Request-ID is echoed and logged: accept only a short token."""
    return value if value and _REQUEST_ID.fullmatch(value) else None


class RequestMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.limiter = RateLimiter(settings.rate_limit_per_minute) if settings.rate_limit_per_minute > 0 else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = clean_request_id(Headers(scope=scope).get("x-request-id")) or uuid.uuid4().hex
        request = Request(scope, receive)
        request.state.request_id = request_id  # error bodies read it from here
        token = request_id_var.set(request_id)
        added = [(b"x-request-id", request_id.encode())]
        status = 500  # if the app dies before answering, the error middleware outside us answers 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", []), *added]}
            await send(message)

        try:
            refusal = self._refusal(request, added)
            if refusal is not None:
                await refusal(scope, receive, send_with_headers)
            else:
                await self.app(scope, receive, send_with_headers)
        finally:
            self._observe(scope, request, status, started)
            request_id_var.reset(token)

    def _refusal(self, request: Request, added: list[tuple[bytes, bytes]]):
        """A response that ends the request before the app sees it, or None."""
        length = request.headers.get("content-length")
        # Refuse a declared oversized body before reading any of it; bodies without a
        # Content-Length are counted while they stream (limits.StreamingBodyLimit).
        if length and length.isdigit() and int(length) > self.settings.max_request_bytes:
            return error_response("payload_too_large", f"request body is larger than the "
                                  f"{self.settings.max_upload_mb} MB limit (RAG_MAX_UPLOAD_MB)", request=request,
                                  limit_bytes=self.settings.max_upload_bytes)
        key = api_key_from(request)
        if self.limiter is None or not key:
            return None
        decision = self.limiter.check(key)
        limits = {"X-RateLimit-Limit": str(decision.limit), "X-RateLimit-Remaining": str(decision.remaining),
                  "X-RateLimit-Reset": str(decision.reset_s)}
        if not decision.allowed:
            return error_response("rate_limited", f"more than {decision.limit} requests a minute for this key",
                                  request=request, headers={**limits, "Retry-After": str(decision.reset_s)})
        added.extend((name.lower().encode(), value.encode()) for name, value in limits.items())
        return None

    @staticmethod
    def _observe(scope: Scope, request: Request, status: int, started: float) -> None:
        elapsed = time.perf_counter() - started
        route = getattr(scope.get("route"), "path", "unmatched")  # the template: never an id or a name
        ctx = getattr(getattr(scope.get("app"), "state", None), "ctx", None)
        if getattr(ctx, "metrics", None) is not None:
            ctx.metrics.http.labels(request.method, route, str(status)).observe(elapsed)
        principal = getattr(request.state, "principal", None)
        access_log.info("%s %s %s", request.method, route, status, extra={
            "method": request.method, "route": route, "status": status, "duration_ms": round(elapsed * 1000, 1),
            "key_id": getattr(principal, "key_id", None), "project_id": getattr(principal, "project_id", None)})


def role_table(app) -> list[tuple[re.Pattern[str], frozenset[str], str]]:
    """(path regex, methods, least role) for every route that declares a role with
    `requires(role)` (api/deps.py), in the order the router tries them. Built from the same
    route listing the OpenAPI schema is built from, so included routers are covered."""
    from fastapi.routing import APIRoute, iter_route_contexts
    from starlette.routing import compile_path

    table = []
    for route in iter_route_contexts(app.routes):
        original = route.original_route
        role = _declared_role(original.dependant) if isinstance(original, APIRoute) else None
        if role and route.path:
            table.append((compile_path(route.path)[0], frozenset(route.methods or ()), role))
    return table


def _declared_role(dependant) -> str | None:
    for dep in getattr(dependant, "dependencies", ()):
        role = getattr(dep.call, "required_role", None) or _declared_role(dep)
        if role:
            return role
    return None


class AuthBeforeBody:
    """Authenticate the key and check the route's role before the app reads a body.

    FastAPI reads and parses a route's body (a whole multipart upload) before it resolves the
    route's dependencies, so without this a request with no key or a reader's key was refused
    only after its body had arrived. Here the refusal goes out before `receive` is called once,
    with `Connection: close` (the unread body is never drained). The principal is left on the
    request state, where the `principal` dependency picks it up instead of looking the key up
    again. Sits inside CORS, so refusals carry CORS headers like every other answer.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._roles: list[tuple[re.Pattern[str], frozenset[str], str]] | None = None

    def _role(self, scope: Scope) -> str | None:
        """The role the matching route needs; None for routes without one (public, or /mcp,
        which authenticates itself before reading)."""
        if self._roles is None:
            self._roles = role_table(scope["app"])
        path, root = scope["path"], scope.get("root_path", "")
        path = path[len(root):] if root and path.startswith(root) else path  # as the router sees it
        for pattern, methods, role in self._roles:
            if scope["method"] in methods and pattern.match(path):
                return role
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan" and self._roles is None:
            # Built at startup, before /v1/ready: walking every route's dependencies takes tens of
            # milliseconds, which the first request with a body paid (measured: the first search
            # after ready at several times the later ones).
            self._roles = role_table(scope["app"])
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        role = self._role(scope)
        if role is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope)  # headers only: no receive, so nothing can read the body here
        try:
            principal = await anyio.to_thread.run_sync(
                AuthService(scope["app"].state.ctx.db).authenticate, api_key_from(request))
            AuthService.require(principal, role)
        except ServiceError as exc:
            response = error_response(exc.code, exc.message, request=request, headers={"Connection": "close"},
                                      **exc.detail)
        except (DBAPIError, PoolTimeout):
            response = error_response("retrieval_unavailable", "the database is unavailable; retry later",
                                      request=request, headers={"Connection": "close"}, component="database")
        else:
            request.state.principal = principal
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)
