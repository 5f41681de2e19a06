"""The FastAPI app: settings and stores are built once in the lifespan."""

from __future__ import annotations

import logging
import re
import time
import uuid
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response

from rag_service.api import documents, indexes, keys, rag, search
from rag_service.api.deps import api_key_from
from rag_service.api.errors import error_response, install_error_handlers
from rag_service.config import Settings
from rag_service.context import ServiceContext, build_context
from rag_service.limits import StreamingBodyLimit
from rag_service.logs import request_id_var
from rag_service.services.auth import AuthService
from rag_service.services.jobs import JobRunner, JobService
from rag_service.services.ratelimit import RateLimiter
from rag_service.services.search import Reranker, SearchService

log = logging.getLogger("rag_service")
access_log = logging.getLogger("rag_service.access")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._\-]{1,128}")


def _clean_request_id(value: str | None) -> str | None:
    """A caller's X-Request-ID is echoed and logged: accept only a short token."""
    return value if value and _REQUEST_ID.fullmatch(value) else None


def _access_log(request: Request, status: int, started: float) -> None:
    principal = getattr(request.state, "principal", None)
    route = getattr(request.scope.get("route"), "path", "unmatched")  # the template: never a document name
    access_log.info("%s %s %s", request.method, route, status, extra={
        "method": request.method, "route": route, "status": status,
        "duration_ms": round((time.perf_counter() - started) * 1000, 1),
        "key_id": getattr(principal, "key_id", None), "project_id": getattr(principal, "project_id", None)})


def create_app(settings: Settings | None = None, ctx: ServiceContext | None = None) -> FastAPI:
    settings = settings or (ctx.settings if ctx else Settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        context = ctx or build_context(settings)
        app.state.ctx = context
        reranker = Reranker(settings.rerank_model)
        app.state.search_service = lambda c: SearchService(c, reranker)
        if settings.bootstrap_key:
            AuthService(context.db).ensure_bootstrap_key(settings.bootstrap_key)
        if context.metrics is not None:
            context.metrics.watch_jobs(lambda: JobService(context).counts_by_class_and_state())
        if settings.job_runner == "inprocess":
            context.runner = JobRunner(context, lease_seconds=settings.job_lease_seconds)
            context.runner.start()
        try:
            yield
        finally:
            if context.runner is not None:
                context.runner.stop()
                context.runner = None
            if ctx is None:
                context.vectors.close()
                context.db.dispose()

    app = FastAPI(title="RAG service", version="0.1.0", lifespan=lifespan)
    install_error_handlers(app)

    limiter = RateLimiter(settings.rate_limit_per_minute) if settings.rate_limit_per_minute > 0 else None

    @app.middleware("http")
    async def rate_limit(request: Request, call_next):
        key = api_key_from(request)
        if limiter is None or not key:
            return await call_next(request)
        decision = limiter.check(key)
        headers = {"X-RateLimit-Limit": str(decision.limit), "X-RateLimit-Remaining": str(decision.remaining),
                   "X-RateLimit-Reset": str(decision.reset_s)}
        if not decision.allowed:
            return error_response("rate_limited", f"more than {decision.limit} requests a minute for this key",
                                  request=request, headers={**headers, "Retry-After": str(decision.reset_s)})
        response = await call_next(request)
        response.headers.update(headers)
        return response

    if settings.cors_origins.strip():
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=[o.strip() for o in settings.cors_origins.split(",") if o.strip()],
                           allow_methods=["*"], allow_headers=["*"], expose_headers=["ETag", "X-Request-ID"])

    @app.middleware("http")
    async def observe(request: Request, call_next):
        started = time.perf_counter()
        response = await call_next(request)
        metrics = getattr(getattr(request.app.state, "ctx", None), "metrics", None)
        if metrics is not None:
            route = getattr(request.scope.get("route"), "path", "unmatched")  # the template, never an id
            metrics.http.labels(request.method, route, str(response.status_code)).observe(time.perf_counter() - started)
        return response

    @app.middleware("http")
    async def request_id_and_size(request: Request, call_next):
        request.state.request_id = _clean_request_id(request.headers.get("x-request-id")) or uuid.uuid4().hex
        token = request_id_var.set(request.state.request_id)
        started = time.perf_counter()
        try:
            length = request.headers.get("content-length")
            # Refuse an oversized body before reading any of it (multipart adds a little overhead);
            # bodies without a Content-Length are counted while streaming (StreamingBodyLimit).
            if length and length.isdigit() and int(length) > settings.max_request_bytes:
                response = error_response("payload_too_large",
                                          f"request body is larger than the {settings.max_upload_mb} MB limit",
                                          request=request, limit_bytes=settings.max_upload_bytes)
            else:
                response = await call_next(request)
            response.headers["X-Request-ID"] = request.state.request_id
            _access_log(request, response.status_code, started)
            return response
        finally:
            request_id_var.reset(token)

    # Outermost: counts body bytes as they arrive, whatever the headers claim.
    app.add_middleware(StreamingBodyLimit, limit_bytes=settings.max_request_bytes)

    for router in (indexes.router, documents.router, search.router, keys.router, rag.router):
        app.include_router(router)
    from rag_service import mcp_server  # agent tools: OpenAI function calling, and MCP at /mcp
    from rag_service.api import tools

    app.include_router(tools.router)
    mcp_server.mount(app)

    @app.get("/metrics", include_in_schema=False)
    def metrics(request: Request) -> Response:
        return Response(request.app.state.ctx.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict:
        return {"ok": True}

    return app
