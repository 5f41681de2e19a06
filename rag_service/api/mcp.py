"""The MCP server: the agent tools of rag_service.api.tools over the Model
Context Protocol (official `mcp` SDK, low-level `Server`, so the input schemas
are the very ones the OpenAI endpoint serves).

Two ways in:
- streamable HTTP at `/mcp` on the service's own app (`mount(app)`), with the
  same API-key auth as the REST API. It runs *stateless* with JSON responses:
  every HTTP request carries its key and is served on its own, so any API
  replica can answer any request and a revoked key stops working at once.
- stdio (`rag-service mcp`), a proxy to a running service over HTTP through
  `AsyncRagClient` (`RAG_URL`, `RAG_API_KEY`): tools are listed from and called
  on the service, so the tool logic still lives in one place.
"""

from __future__ import annotations

import json
from contextlib import asynccontextmanager
from typing import Any, Protocol

import anyio
import mcp_types as types
from fastapi import APIRouter, FastAPI
from mcp.server.lowlevel import Server
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

import rag_service
from rag_service.errors import ServiceError

MCP_PATH = "/mcp"
_TOOL_CONTEXT = "rag_service.tool_context"  # ASGI scope key: set by the auth gate, read by the tool handler


class ToolFailure(Exception):
    """A tool call answered with an error body in the service's error shape."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(body.get("message", "tool failed"))
        self.body = body


class ToolBackend(Protocol):
    async def list_tools(self) -> list[dict[str, Any]]: ...  # [{"name", "description", "input_schema"}]

    async def call(self, name: str, arguments: dict[str, Any], request: Any) -> dict[str, Any]: ...


def _result(payload: dict[str, Any], is_error: bool = False) -> types.CallToolResult:
    text = json.dumps(payload, ensure_ascii=False, default=str)
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], structured_content=payload,
                                is_error=is_error)


def build_server(backend: ToolBackend) -> Server:
    async def list_tools(ctx, params) -> types.ListToolsResult:
        specs = await backend.list_tools()
        return types.ListToolsResult(
            tools=[types.Tool(name=s["name"], description=s["description"], input_schema=s["input_schema"]) for s in specs]
        )

    async def call_tool(ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
        try:
            return _result(await backend.call(params.name, dict(params.arguments or {}), ctx.request))
        except ToolFailure as exc:
            return _result(exc.body, is_error=True)

    return Server(
        "rag-service",
        version=rag_service.__version__,
        instructions=(
            "Retrieval over versioned document indexes. Call list_indexes to see what exists, search to find "
            "passages, get_document to read a whole document or an older version. Quote the citation of each "
            "passage you use."
        ),
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


# -- in the service: streamable HTTP -----------------------------------------
class LocalBackend:
    """Runs the tools in-process with the principal the auth gate put on the request."""

    async def list_tools(self) -> list[dict[str, Any]]:
        from rag_service.api.tools import tool_specs

        return tool_specs()

    async def call(self, name: str, arguments: dict[str, Any], request: Any) -> dict[str, Any]:
        from rag_service.api.tools import call_tool

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
        from rag_service.api.deps import api_key_from
        from rag_service.api.errors import error_response
        from rag_service.api.tools import ToolContext
        from rag_service.services.access import boundary_value
        from rag_service.services.auth import AuthService

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
        scope[_TOOL_CONTEXT] = ToolContext.from_app(app, principal, boundary)
        await self.holder["manager"].handle_request(scope, receive, send)


def mount(app: FastAPI, path: str = MCP_PATH) -> None:
    """Serve MCP at `path` on `app`. The SDK's session manager needs a running
    task group: it is started by this router's lifespan, which FastAPI merges
    into the app's (after the app's own, so the service context exists first).
    A fresh manager per lifespan, since one can run only once."""
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

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


# -- stdio: a proxy to a running service ---------------------------------------
class RemoteBackend:
    def __init__(self, client: Any) -> None:
        self.client = client  # an AsyncRagClient

    async def list_tools(self) -> list[dict[str, Any]]:
        tools = await self.client.openai_tools()
        return [{"name": t["function"]["name"], "description": t["function"]["description"],
                 "input_schema": t["function"]["parameters"]} for t in tools]

    async def call(self, name: str, arguments: dict[str, Any], request: Any) -> dict[str, Any]:
        import httpx

        from rag_service.client import RagError

        try:
            return (await self.client.call_tool(name, arguments))["content"]
        except RagError as exc:
            raise ToolFailure(exc.body or {"error": exc.code, "code": exc.code, "message": exc.message}) from None
        except httpx.TransportError as exc:
            message = f"cannot reach the service at {self.client.base_url}: {exc}"
            raise ToolFailure({"error": "service_unreachable", "code": "service_unreachable", "message": message}) from None


async def serve_stdio(base_url: str | None = None, api_key: str | None = None) -> None:
    from mcp.server.stdio import stdio_server

    from rag_service.client import AsyncRagClient

    async with AsyncRagClient(base_url, api_key) as client:
        server = build_server(RemoteBackend(client))
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())
