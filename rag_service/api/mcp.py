"""MCP over streamable HTTP at `/mcp` on the service's own app (`mount(app)`): the agent tools
of rag_service/services/tools.py with the same API-key auth as the REST API. It runs
*stateless* with JSON responses: every HTTP request carries its key and is served on its own, so
any API replica can answer any request and a revoked key stops working at once. (The stdio door,
`rag-service mcp`, is rag_service/client/mcp_stdio.py; both share rag_service/mcp_common.py.)
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import APIRouter, FastAPI
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from rag_service.api.deps import api_key_from
from rag_service.api.errors import error_response
from rag_service.errors import ServiceError
from rag_service.mcp_common import ToolFailure, build_server
from rag_service.services.access import boundary_value
from rag_service.services.auth import AuthService
from rag_service.services.tools import ToolContext, call_tool, tool_specs

MCP_PATH = "/mcp"
_TOOL_CONTEXT = "rag_service.tool_context"  # ASGI scope key: set by the auth gate, read by the tool handler


# -- in the service: streamable HTTP -----------------------------------------
class LocalBackend:
    """Runs the tools in-process with the principal the auth gate put on the request."""

    async def list_tools(self) -> list[dict[str, Any]]:
        return tool_specs()

    async def call(self, name: str, arguments: dict[str, Any], request: Any) -> dict[str, Any]:
        tc = request.scope[_TOOL_CONTEXT] if request is not None else None
        if tc is None:  # the gate always sets it; never run a tool without a caller
            raise ToolFailure({"error": "unauthorized", "code": "unauthorized", "message": "no authenticated caller"})
        try:
            return await anyio.to_thread.run_sync(call_tool, tc, name, arguments)
        except ServiceError as exc:
            raise ToolFailure({"error": exc.code, "code": exc.code, "message": exc.message, **exc.detail}) from None


class _AuthGate:
    """ASGI endpoint for /mcp: the REST API's key check, then the SDK's transport."""

    def __init__(self, holder: dict[str, Any]) -> None:
        self.holder = holder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        app = scope["app"]
        try:
            principal = await anyio.to_thread.run_sync(AuthService(app.state.ctx.db).authenticate, api_key_from(request))
            # The boundary the HTTP request names applies to every tool call it carries (the tools
            # run the access gate with it; an argument naming another boundary is refused).
            boundary = boundary_value(request.headers.get("x-data-boundary"), request.query_params.get("data_boundary"))
        except ServiceError as exc:
            headers = {"WWW-Authenticate": 'Bearer realm="rag-service"'} if exc.code == "unauthorized" else None
            await error_response(exc.code, exc.message, headers=headers, request=request, **exc.detail)(scope, receive, send)
            return
        scope[_TOOL_CONTEXT] = ToolContext(app.state.ctx, principal, boundary)
        await self.holder["manager"].handle_request(scope, receive, send)


def mount(app: FastAPI, path: str = MCP_PATH) -> None:
    """Serve MCP at `path` on `app`. The SDK's session manager needs a running
    task group: it is started by this router's lifespan, which FastAPI merges
    into the app's (after the app's own, so the service context exists first).
    A fresh manager per lifespan, since one can run only once."""
    server = build_server(LocalBackend())
    holder: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_app: Any):
        # No DNS-rebinding Host/Origin allow-list: every request needs an API key,
        # which a rebinding page does not have, and the service runs behind any host name.
        holder["manager"] = StreamableHTTPSessionManager(app=server, stateless=True, json_response=True)
        async with holder["manager"].run():
            yield

    router = APIRouter(lifespan=lifespan)
    router.routes.append(Route(path, endpoint=_AuthGate(holder), methods=["GET", "POST", "DELETE"], include_in_schema=False))
    app.include_router(router)


