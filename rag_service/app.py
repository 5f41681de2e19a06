"""The FastAPI app: settings and stores are built once in the lifespan."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI, Request, Response
from fastapi_offline import FastAPIOffline
from starlette.staticfiles import StaticFiles

from rag_service.api import (
    batch,
    documents,
    events,
    health,
    indexes,
    keys,
    mcp,
    rag,
    search,
    tools,
    webhooks,
)
from rag_service.api.deps import checked_inputs
from rag_service.api.errors import install_error_handlers
from rag_service.api.limits import StreamingBodyLimit
from rag_service.api.middleware import AuthBeforeBody, RequestMiddleware
from rag_service.config import Settings
from rag_service.context import ServiceContext, build_context
from rag_service.services.auth import AuthService
from rag_service.services.delivery import Deliverer, owed
from rag_service.services.job_handlers import build_job_runner
from rag_service.services.jobs import JobService
from rag_service.services.readiness import Readiness

log = logging.getLogger("rag_service")
# The web console: static files (no build step, libraries vendored), a client of the public API only.
CONSOLE_DIR = Path(__file__).parent / "console"


def create_app(settings: Settings | None = None, ctx: ServiceContext | None = None) -> FastAPI:
    settings = settings or (ctx.settings if ctx else Settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        context = ctx or build_context(settings)
        app.state.ctx = context
        app.state.readiness = Readiness(context)
        app.state.readiness.start()
        if settings.bootstrap_key:
            AuthService(context.db).ensure_bootstrap_key(settings.bootstrap_key)
        if context.metrics is not None:
            context.metrics.watch_jobs(lambda: JobService(context).counts_by_class_and_state())
            context.metrics.watch_deliveries(lambda: owed(context))
        if settings.job_runner == "inprocess":
            context.runner = build_job_runner(context, lease_seconds=settings.job_lease_seconds,
                                              concurrency=settings.job_concurrency)
            context.runner.start()
        if settings.webhook_delivery == "inprocess":
            context.deliverer = Deliverer(context)
            context.deliverer.start()
        try:
            yield
        finally:
            app.state.readiness.stop()
            if context.deliverer is not None:
                context.deliverer.stop()
                context.deliverer = None
            if context.runner is not None:
                context.runner.stop()
                context.runner = None
            if ctx is None:  # this app built the context: it owns the stores and the parser pool
                if context.parser is not None:
                    context.parser.close()
                context.vectors.close()
                context.db.dispose()

    # Every route's path, query and JSON inputs are checked for values the stores can't hold (422).
    # /docs and /redoc load Swagger UI and ReDoc from files this service serves (fastapi-offline
    # bundles them), not from a CDN: they work with no internet. No online validator badge either.
    app = FastAPIOffline(title="RAG service", version="0.1.0", lifespan=lifespan, dependencies=[Depends(checked_inputs)],
                         swagger_ui_parameters={"validatorUrl": None})
    install_error_handlers(app)

    # Innermost: key and role checked before any body is read (added first: inside CORS).
    app.add_middleware(AuthBeforeBody)
    if settings.cors_origins.strip():
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=[o.strip() for o in settings.cors_origins.split(",") if o.strip()],
                           allow_methods=["*"], allow_headers=["*"], expose_headers=["ETag", "X-Request-ID"])
    # Request id, declared-size check, rate limit, metrics, access log (added after CORS: outside it).
    app.add_middleware(RequestMiddleware, settings=settings)

    # Outermost: counts body bytes as they arrive, whatever the headers claim.
    app.add_middleware(StreamingBodyLimit, limit_bytes=settings.max_request_bytes)

    for router in (health.router, indexes.router, batch.router, documents.router, search.router, keys.router, rag.router,
                   webhooks.router, events.router):
        app.include_router(router)

    app.include_router(tools.router)
    mcp.mount(app)
    # Same origin and same keys as the API; the page asks for a key itself, so its files need none.
    app.mount("/console", StaticFiles(directory=CONSOLE_DIR, html=True), name="console")

    @app.get("/metrics", include_in_schema=False)
    def metrics(request: Request) -> Response:
        return Response(request.app.state.ctx.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict:
        return {"ok": True}

    return app
