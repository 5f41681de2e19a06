"""OpenAI function calling over HTTP: the tools list and `tools/call`. The tools themselves
(definitions, handlers, citations) are rag_service/services/tools.py, which MCP serves too."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict

from rag_service.api.deps import data_boundary_header, get_ctx, reader
from rag_service.api.schemas.common import KEYED, errors_for, returns
from rag_service.api.schemas.search import OpenAITool, ToolCallResult
from rag_service.context import ServiceContext
from rag_service.errors import ValidationFailed
from rag_service.services.common import Principal
from rag_service.services.tools import ToolContext, call_tool, openai_tools

router = APIRouter(prefix="/v1/tools", tags=["tools"])


class ToolCallFunction(BaseModel):
    name: str
    arguments: dict[str, Any] | str | None = None


class ToolCallBody(BaseModel):
    """`{"name", "arguments"}`, or an OpenAI tool call as the model emitted it
    (`{"id", "type": "function", "function": {"name", "arguments"}}`)."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = None
    arguments: dict[str, Any] | str | None = None
    id: str | None = None
    type: str | None = None
    function: ToolCallFunction | None = None


@router.get("/openai", responses=returns(list[OpenAITool]) | errors_for(*KEYED))
def list_openai_tools(p: Principal = Depends(reader)) -> list[dict[str, Any]]:
    return openai_tools()


@router.post("/call", responses=returns(ToolCallResult) | errors_for(*KEYED, 403, 404, 413))
def call(body: ToolCallBody, p: Principal = Depends(reader),
         header: str | None = Depends(data_boundary_header), ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    name = body.function.name if body.function else body.name
    if not name:
        raise ValidationFailed("name is required", field="name")
    arguments = body.function.arguments if body.function else body.arguments
    out = {"name": name, "content": call_tool(ToolContext(ctx, p, header), name, arguments)}
    if body.id:
        out["tool_call_id"] = body.id
    return out
