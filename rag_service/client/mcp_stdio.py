"""`rag-service mcp`: MCP over stdio, a proxy to a running service over HTTP through
`AsyncRagClient` (`RAG_URL`, `RAG_API_KEY`). Tools are listed from and called on the service,
so the tool logic still lives in one place (rag_service/services/tools.py)."""

from __future__ import annotations

from typing import Any

import httpx
from mcp.server.stdio import stdio_server

from rag_service.client import AsyncRagClient, RagError
from rag_service.mcp_common import ToolFailure, build_server


class RemoteBackend:
    def __init__(self, client: Any) -> None:
        self.client = client  # an AsyncRagClient

    async def list_tools(self) -> list[dict[str, Any]]:
        tools = await self.client.openai_tools()
        return [{"name": t["function"]["name"], "description": t["function"]["description"],
                 "input_schema": t["function"]["parameters"]} for t in tools]

    async def call(self, name: str, arguments: dict[str, Any], request: Any) -> dict[str, Any]:
        try:
            return (await self.client.call_tool(name, arguments))["content"]
        except RagError as exc:
            raise ToolFailure(exc.body or {"error": exc.code, "code": exc.code, "message": exc.message}) from None
        except httpx.TransportError as exc:
            message = f"cannot reach the service at {self.client.base_url}: {exc}"
            raise ToolFailure({"error": "service_unreachable", "code": "service_unreachable", "message": message}) from None


async def serve_stdio(base_url: str | None = None, api_key: str | None = None) -> None:
    async with AsyncRagClient(base_url, api_key) as client:
        server = build_server(RemoteBackend(client))
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())
