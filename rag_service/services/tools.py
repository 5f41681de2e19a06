"""Agent tools: `search`, `get_document`, `list_indexes`.

Each tool is defined once here (arguments model, description, handler calling the services
with the caller's Principal, so the access gate runs in every call). Three doors serve the same
definitions: OpenAI function calling (`GET /v1/tools/openai`, `POST /v1/tools/call`, in
rag_service/api/tools.py) and MCP (rag_service/api/mcp.py over streamable HTTP; rag_service/client/mcp_stdio.py over stdio, by calling the first). Every
result carries citations an agent can quote: document name, version, chunk position and the
provenance metadata given at upload.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, ConfigDict, Field, StrictInt
from pydantic import ValidationError as PydanticValidationError

from rag_service.context import ServiceContext
from rag_service.errors import NotFound, ValidationFailed
from rag_service.search_params import SearchParams
from rag_service.services.access import AccessService, Boundary
from rag_service.services.boundaries import BOUNDARIES
from rag_service.services.common import Principal
from rag_service.services.documents import DocumentService
from rag_service.services.indexes import IndexService
from rag_service.services.search import SearchService
from rag_service.services.values import INT64_MAX, check_value, json_object

MAX_LIST_INDEXES = 500
_BOUNDARY_DOC = (
    "data boundary the read runs under: " + ", ".join(BOUNDARIES) + " (default computer: this deployment only)"
)


@dataclass(frozen=True)
class ToolContext:
    """Who calls, and the services to call with. `boundary` is the data_boundary the HTTP
    request named outside the arguments (X-Data-Boundary or ?data_boundary=): every tool runs
    under it, and an argument that names a different one is refused."""

    ctx: ServiceContext
    principal: Principal
    boundary: str | None = None

    @property
    def search_service(self) -> SearchService:
        return SearchService(self.ctx)

    def under(self, data_boundary: str | None, account_id: str | None) -> Boundary:
        return Boundary.of(data_boundary, self.boundary, account_id=account_id)


# -- arguments ----------------------------------------------------------------
class GetDocumentArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    document_id: str | None = Field(None, max_length=200)
    index_id: str | None = Field(None, max_length=200)
    name: str | None = Field(None, max_length=512)
    version: StrictInt | None = Field(None, ge=1, le=INT64_MAX)
    include_chunks: bool = False
    max_characters: StrictInt = Field(20000, ge=100, le=1_000_000)
    data_boundary: str | None = None
    account_id: str | None = Field(None, max_length=200)


class ListIndexesArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    data_boundary: str | None = None
    account_id: str | None = Field(None, max_length=200)


# -- citations ----------------------------------------------------------------
def citation(row: dict[str, Any]) -> dict[str, Any]:
    """What an agent quotes for one chunk: where it is, which version, from what source."""
    position = row.get("position") or {"ordinal": row.get("ordinal"), "page": row.get("page"), "section": row.get("section")}
    label = f"{row.get('document_name')} v{row.get('version')}, chunk {position.get('ordinal')}"
    if position.get("page") is not None:
        label += f", p. {position['page']}"
    if position.get("section"):
        label += f", \u00a7 {position['section']}"
    return {
        "label": label,
        "document_name": row.get("document_name"),
        "document_id": row.get("document_id"),
        "index_id": row.get("index_id"),
        "index_name": row.get("index_name"),
        "version": row.get("version"),
        "chunk_id": row.get("chunk_id"),
        "position": position,
        "metadata": row.get("metadata") or {},
    }


# -- handlers -----------------------------------------------------------------
def run_search(tc: ToolContext, args: SearchParams) -> dict[str, Any]:
    out = tc.search_service.search(tc.principal, args, header_boundary=tc.boundary)
    for row in out["results"]:
        row["citation"] = citation(row.get("best_chunk") or row)
    return out


def run_get_document(tc: ToolContext, args: GetDocumentArgs) -> dict[str, Any]:
    under = tc.under(args.data_boundary, args.account_id)
    documents = DocumentService(tc.ctx)  # the access gate runs in each read (audited refusals)
    if args.document_id:
        doc = documents.get(tc.principal, args.document_id, args.index_id, under)
    elif args.index_id and args.name:
        doc = documents.get_by_name(tc.principal, args.index_id, args.name, under)
    else:
        raise ValidationFailed("give document_id, or index_id and name", field="document_id")
    index = AccessService(tc.ctx).resolve(tc.principal, doc["index_id"])
    boundary = under.name
    number = args.version or doc["current_version"] or doc["latest_version"]
    version = documents.version(tc.principal, doc["id"], number, boundary=under)
    text = version.pop("text") or ""
    chunks = version.pop("chunks")
    out = {
        "document": doc,
        "version": number,
        "is_current": number == doc["current_version"],
        "status": version["status"],
        "text": text[: args.max_characters],
        "truncated": len(text) > args.max_characters,
        "characters": len(text),
        "provenance": {k: version[k] for k in ("metadata", "filename", "media_type", "content_hash", "size_bytes",
                                                 "created_at", "ready_at")},
        "citation": {
            "label": f"{doc['name']} v{number}",
            "document_name": doc["name"],
            "document_id": doc["id"],
            "index_id": index.id,
            "index_name": index.name,
            "version": number,
            "metadata": version["metadata"],
        },
        "data_boundary": boundary,
    }
    if args.include_chunks:
        out["chunks"] = chunks
    return out


def run_list_indexes(tc: ToolContext, args: ListIndexesArgs) -> dict[str, Any]:
    under = tc.under(args.data_boundary, args.account_id)
    listing = IndexService(tc.ctx).list(tc.principal, 1, MAX_LIST_INDEXES)
    refused = {e["index_id"] for e in AccessService(tc.ctx).partition(tc.principal, "read", under)[1]}
    keys = ("id", "name", "description", "privacy_tier", "document_count", "embedding_model")
    indexes = [{k: i[k] for k in keys} | {"readable": i["id"] not in refused} for i in listing["items"]]
    return {"indexes": indexes, "total": listing["total"], "data_boundary": under.name}


# -- the registry -------------------------------------------------------------
@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    arguments: type[BaseModel]
    run: Callable[[ToolContext, Any], dict[str, Any]]
    field_docs: dict[str, str]

    def input_schema(self) -> dict[str, Any]:
        schema = _strip_titles(self.arguments.model_json_schema())
        for field, doc in self.field_docs.items():
            schema["properties"][field]["description"] = doc
        return schema


def _strip_titles(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip_titles(v) for k, v in node.items() if k != "title" or not isinstance(v, str)}
    if isinstance(node, list):
        return [_strip_titles(v) for v in node]
    return node


TOOLS: dict[str, Tool] = {
    t.name: t
    for t in (
        Tool(
            name="search",
            description=(
                "Search the project's document indexes (hybrid dense + BM25 by default) and return the best "
                "matching passages of the current version of each live document, best first. Each result has "
                "its text, score, highlights and a citation (document name, version, chunk position, provenance "
                "metadata) to quote. Indexes the data boundary may not read are skipped (or refused when named)."
            ),
            arguments=SearchParams,
            run=run_search,
            field_docs={
                "query": "what to look for, in natural language or keywords; up to 32,000 characters (a whole passage works)",
                "top_k": "how many results (1-100)",
                "result_type": "chunk (passages) or document (one row per document with its best chunk)",
                "mode": "hybrid (default), dense (semantic) or lexical (BM25 keywords)",
                "filters": 'metadata filters, e.g. {"author": "hr", "year": {"gte": 2025}, "tags": ["a", "b"]}',
                "min_score": "drop results scoring below this",
                "as_of_version": "search this version number of each document instead of the current one",
                "include_history": "also search older ready versions",
                "data_boundary": _BOUNDARY_DOC,
                "account_id": "the account a personal-tier read is for (account_supercomputer_sync)",
                "index_ids": "search only these index ids (from list_indexes); default all",
                "rerank": "rerank with the configured cross-encoder",
                "explain": "include per-result ranking details",
                "rrf_k": "hybrid only: the RRF constant (default 60)",
                "fusion_weights": "hybrid only: [dense, lexical] fusion weights (default [1, 1])",
            },
        ),
        Tool(
            name="get_document",
            description=(
                "Read a document (its current version, or any older one) with its text and provenance: "
                "filename, media type, content hash, upload metadata. Give document_id, or index_id and name."
            ),
            arguments=GetDocumentArgs,
            run=run_get_document,
            field_docs={
                "document_id": "the document id (from a search result or a citation)",
                "index_id": "the index id, with name",
                "name": "the document name, with index_id",
                "version": "a version number; default the current version",
                "include_chunks": "also return the version's chunks with their positions",
                "max_characters": "cut the text after this many characters",
                "data_boundary": _BOUNDARY_DOC,
                "account_id": "the account a personal-tier read is for",
            },
        ),
        Tool(
            name="list_indexes",
            description=(
                "List the project's document indexes: id, name, description, privacy tier, document count, "
                "and whether the given data boundary may read each one."
            ),
            arguments=ListIndexesArgs,
            run=run_list_indexes,
            field_docs={"data_boundary": _BOUNDARY_DOC, "account_id": "the account a personal-tier read is for"},
        ),
    )
}


def tool_specs() -> list[dict[str, Any]]:
    return [{"name": t.name, "description": t.description, "input_schema": t.input_schema()} for t in TOOLS.values()]


def openai_tools() -> list[dict[str, Any]]:
    return [
        {"type": "function", "function": {"name": s["name"], "description": s["description"], "parameters": s["input_schema"]}}
        for s in tool_specs()
    ]


def parse_arguments(arguments: dict[str, Any] | str | None) -> dict[str, Any]:
    """OpenAI sends arguments as a JSON string; MCP and most callers as an object."""
    if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
        return {}
    if isinstance(arguments, str):
        return json_object(arguments, "arguments")
    if not isinstance(arguments, dict):
        raise ValidationFailed("arguments must be a JSON object", field="arguments")
    return arguments


def call_tool(tc: ToolContext, name: str, arguments: dict[str, Any] | str | None) -> dict[str, Any]:
    tool = TOOLS.get(name)
    if tool is None:
        raise NotFound(f"unknown tool {name!r}", tool=name, available=sorted(TOOLS))
    try:
        # MCP arguments arrive decoded by the SDK: the same value rules as every HTTP body.
        args = tool.arguments.model_validate(check_value(parse_arguments(arguments), "arguments"))
    except PydanticValidationError as exc:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        first = errors[0]
        raise ValidationFailed(f"{'.'.join(str(x) for x in first['loc']) or 'arguments'}: {first['msg']}",
                               field=".".join(["arguments", *(str(x) for x in first["loc"])]), tool=name,
                               errors=errors) from None
    return jsonable_encoder(tool.run(tc, args))
