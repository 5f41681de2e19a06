"""The MCP server both doors share: the official `mcp` SDK's low-level `Server` over a tool
backend, so the input schemas are the very ones the OpenAI endpoint serves. The service mounts
it with in-process tools (rag_service/api/mcp.py, streamable HTTP at /mcp); `rag-service mcp`
runs it over stdio with the tools of a running service (rag_service/client/mcp_stdio.py). It
imports the SDK only, so the stdio proxy starts without loading the service."""

from __future__ import annotations

import json
from typing import Any, Protocol

import mcp_types as types
from mcp.server.lowlevel import Server

import rag_service


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
