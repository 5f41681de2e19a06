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

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rag_service.api.deps import api_key_from
from rag_service.api.errors import error_response
from rag_service.config import Settings
from rag_service.logs import request_id_var
from rag_service.services.ratelimit import RateLimiter

access_log = logging.getLogger("rag_service.access")
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
                                  f"{self.settings.max_upload_mb} MB limit", request=request,
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
