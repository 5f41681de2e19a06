"""Agent tools: MCP over streamable HTTP on the app (the SDK's own client), MCP
over stdio (`rag-service mcp` proxying to a running service), and OpenAI
function calling (`/v1/tools/openai`, `/v1/tools/call`)."""

from __future__ import annotations

import json
import sys
import threading
import time
from contextlib import asynccontextmanager

import anyio
import httpx
import httpx2
import pytest
from mcp.client import Client
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from rag_service.app import create_app
from rag_service.client import RagClient
from rag_service.context import build_context
from tests.conftest import new_key

CORPUS = {
    "whales.html": "<h1>Whales</h1><p>The blue whale is the largest animal known to have ever existed, feeding on krill.</p>",
    "coffee.txt": "Espresso is brewed by forcing hot water through finely ground coffee beans under pressure.",
    "bees.md": "# Bees\n\nHoney bees communicate the location of flowers through the waggle dance inside the hive.",
}
TOOL_NAMES = {"search", "get_document", "list_indexes"}


@pytest.fixture
def service_ctx(settings_factory, embedders):
    ctx = build_context(settings_factory(), embedders=embedders)
    yield ctx
    ctx.vectors.close()
    ctx.db.dispose()


@asynccontextmanager
async def running_app(ctx):
    """The app with its lifespan running in this event loop (the MCP session manager's task group lives there)."""
    app = create_app(ctx.settings, ctx=ctx)
    async with app.router.lifespan_context(app):
        yield app


async def seed(app, key: str) -> str:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver",
                                 headers={"X-API-Key": key}) as http:
        index = (await http.post("/v1/indexes", json={"name": "nature"})).json()["id"]
        for n, (name, text) in enumerate(CORPUS.items()):
            r = await http.post(f"/v1/indexes/{index}/documents", files={"file": (name, text.encode())},
                                data={"metadata": json.dumps({"source": f"field-guide-{n}", "year": 2020 + n})})
            assert r.status_code == 201, r.text
        await http.post("/v1/indexes", json={"name": "vault", "privacy_tier": "private"})
        return index


def mcp_http(app, key: str, header: str = "X-API-Key") -> httpx2.AsyncClient:
    value = key if header == "X-API-Key" else f"Bearer {key}"
    return httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://testserver", headers={header: value})


def test_mcp_streamable_http_session_lists_tools_and_searches(service_ctx):
    admin, reader = new_key(service_ctx, role="admin"), new_key(service_ctx, role="reader")

    async def scenario():
        async with running_app(service_ctx) as app:
            index = await seed(app, admin)
            async with mcp_http(app, reader, "Authorization") as http, \
                    streamable_http_client("http://testserver/mcp", http_client=http) as (read, write), \
                    ClientSession(read, write) as session:
                init = await session.initialize()
                assert init.server_info.name == "rag-service"
                tools = {t.name: t for t in (await session.list_tools()).tools}
                assert set(tools) == TOOL_NAMES
                assert tools["search"].input_schema["required"] == ["query"]

                result = await session.call_tool("search", {"query": "largest animal that eats krill", "top_k": 3})
                assert not result.is_error
                body = result.structured_content
                assert json.loads(result.content[0].text) == body
                top = body["results"][0]
                assert top["document_name"] == "whales.html" and "krill" in top["text"]
                cite = top["citation"]
                assert cite["document_name"] == "whales.html" and cite["version"] == 1
                assert cite["position"]["ordinal"] == top["ordinal"] and cite["chunk_id"] == top["chunk_id"]
                assert cite["metadata"] == {"source": "field-guide-0", "year": 2020}
                assert cite["label"].startswith("whales.html v1, chunk ")
                assert body["evidence"]["data_boundary"] == "computer"

                doc = (await session.call_tool("get_document", {"document_id": top["document_id"]})).structured_content
                assert "blue whale" in doc["text"] and doc["version"] == 1 and doc["is_current"]
                assert doc["provenance"]["metadata"]["source"] == "field-guide-0"
                assert doc["provenance"]["filename"] == "whales.html"

                listed = (await session.call_tool("list_indexes", {"data_boundary": "global_public_only"})).structured_content
                assert {i["name"]: i["readable"] for i in listed["indexes"]} == {"nature": False, "vault": False}

                refused = await session.call_tool("search", {"query": "krill", "index_ids": [index],
                                                             "data_boundary": "global_public_only"})
                assert refused.is_error and refused.structured_content["code"] == "data_boundary_violation"
                invalid = await session.call_tool("search", {"query": "krill", "top_k": 0})
                assert invalid.is_error and invalid.structured_content["code"] == "validation_error"

            # The SDK's high-level client negotiates the newer protocol era: same tools, same auth.
            async with mcp_http(app, reader) as http, \
                    Client(streamable_http_client("http://testserver/mcp", http_client=http)) as client:
                assert {t.name for t in (await client.list_tools()).tools} == TOOL_NAMES
                hits = (await client.call_tool("search", {"query": "waggle dance"})).structured_content["results"]
                assert hits[0]["document_name"] == "bees.md"

            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as raw:
                for headers in ({}, {"X-API-Key": "rag_wrong"}):
                    r = await raw.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, headers=headers)
                    assert r.status_code == 401 and r.json()["code"] == "unauthorized"
                    assert r.headers["www-authenticate"].startswith("Bearer")

    anyio.run(scenario)


def test_stdio_mcp_proxies_to_a_running_service(service_ctx):
    import uvicorn

    admin = new_key(service_ctx, role="admin")
    server = uvicorn.Server(uvicorn.Config(create_app(service_ctx.settings, ctx=service_ctx), host="127.0.0.1", port=0,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
        with RagClient(url, admin) as rag:
            index = rag.create_index("nature")["id"]
            for name, text in CORPUS.items():
                rag.upload(index, text.encode(), name=name)

        async def scenario():
            params = StdioServerParameters(command=sys.executable, args=["-m", "rag_service.cli", "mcp", "--url", url],
                                           env={"RAG_API_KEY": admin, "HF_HUB_OFFLINE": "1", "DO_NOT_TRACK": "1"})
            with anyio.fail_after(60):
                async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
                    await check(session)

        async def check(session):
            await session.initialize()
            assert {t.name for t in (await session.list_tools()).tools} == TOOL_NAMES
            result = await session.call_tool("search", {"query": "espresso coffee beans", "top_k": 2})
            assert not result.is_error
            assert result.structured_content["results"][0]["citation"]["document_name"] == "coffee.txt"
            missing = await session.call_tool("get_document", {"document_id": "nope"})
            assert missing.is_error and missing.structured_content["code"] == "not_found"

        anyio.run(scenario)
    finally:
        server.should_exit = True
        thread.join(30)


# -- OpenAI function calling ------------------------------------------------------
@pytest.fixture
def corpus(api):
    i = api.create_index("nature")["id"]
    for n, (name, text) in enumerate(CORPUS.items()):
        assert api.upload(i, name, text.encode(), metadata=json.dumps({"source": f"guide-{n}"})).status_code == 201
    return api, i


def test_openai_tools_schema(api):
    tools = api.get("/v1/tools/openai").json()
    assert [t["type"] for t in tools] == ["function"] * 3
    by_name = {t["function"]["name"]: t["function"] for t in tools}
    assert set(by_name) == TOOL_NAMES
    search = by_name["search"]["parameters"]
    assert search["type"] == "object" and search["required"] == ["query"] and search["additionalProperties"] is False
    assert {"query", "top_k", "mode", "filters", "data_boundary", "index_ids"} <= set(search["properties"])
    assert all(p.get("description") for p in search["properties"].values())
    assert "title" not in json.dumps(search)
    assert by_name["get_document"]["parameters"]["properties"]["version"]
    assert api.client.get("/v1/tools/openai").status_code == 401


@pytest.mark.parametrize("body", [{"mode": "hybrid"}, {"mode": "dense", "top_k": 3}, {"mode": "lexical"},
                                  {"result_type": "document"}, {"filters": {"source": "guide-0"}}])
def test_openai_tool_call_returns_the_hits_of_search(corpus, body):
    api, i = corpus
    query = "whales feeding on krill"
    expected = api.search(query, **body).json()["results"]
    # OpenAI sends arguments as a JSON string.
    r = api.post("/v1/tools/call", json={"name": "search", "arguments": json.dumps({"query": query, **body})})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["name"] == "search"
    got = out["content"]["results"]
    key = "document_id" if body.get("result_type") == "document" else "chunk_id"
    assert expected and [h[key] for h in got] == [h[key] for h in expected]
    assert [h["score"] for h in got] == [h["score"] for h in expected]
    assert all(h["citation"]["document_name"] == h["document_name"] for h in got)


def test_openai_tool_call_shape_and_reader_key(corpus):
    api, i = corpus
    reader = new_key(api.client.app.state.ctx, role="reader")
    call = {"id": "call_1", "type": "function",
            "function": {"name": "get_document", "arguments": json.dumps({"index_id": i, "name": "coffee.txt"})}}
    r = api.client.post("/v1/tools/call", json=call, headers={"X-API-Key": reader})
    assert r.status_code == 200, r.text
    assert r.json()["tool_call_id"] == "call_1" and "Espresso" in r.json()["content"]["text"]
    listed = api.post("/v1/tools/call", json={"name": "list_indexes"}).json()["content"]
    assert [x["name"] for x in listed["indexes"]] == ["nature"] and listed["indexes"][0]["document_count"] == 3


def test_get_document_versions_chunks_and_boundary(corpus):
    api, i = corpus
    api.upload(i, "coffee.txt", b"Filter coffee drips hot water through ground beans by gravity alone.")

    def get(**args):
        arguments = {"index_id": i, "name": "coffee.txt", **args}
        return api.post("/v1/tools/call", json={"name": "get_document", "arguments": arguments})

    current = get().json()["content"]
    assert current["version"] == 2 and current["is_current"] and "gravity" in current["text"]
    old = get(version=1, include_chunks=True).json()["content"]
    assert old["version"] == 1 and not old["is_current"] and "Espresso" in old["text"]
    assert old["chunks"] and old["chunks"][0]["ordinal"] == 0 and old["citation"]["label"] == "coffee.txt v1"
    cut = get(max_characters=100).json()["content"]
    assert cut["characters"] > 0 and cut["truncated"] is (cut["characters"] > 100)
    r = get(data_boundary="global_public_only")
    assert r.status_code == 403 and r.json()["code"] == "data_boundary_violation"
    assert get(version=9).status_code == 404


@pytest.mark.parametrize("call, status, code", [
    ({"name": "summon"}, 404, "not_found"),
    ({"name": "search", "arguments": {"q": "x"}}, 422, "validation_error"),
    ({"name": "search", "arguments": "{not json"}, 422, "validation_error"),
    ({"name": "search", "arguments": "[1, 2]"}, 422, "validation_error"),
    ({"name": "search", "arguments": {"query": "x", "mode": "fuzzy"}}, 422, "validation_error"),
    ({"name": "search", "arguments": {"query": "x", "data_boundary": "moon"}}, 422, "validation_error"),
    ({"name": "get_document", "arguments": {}}, 422, "validation_error"),
    ({"name": "get_document", "arguments": {"document_id": "missing"}}, 404, "not_found"),
    ({"arguments": {}}, 422, "validation_error"),
])
def test_tool_call_errors_have_the_standard_shape(corpus, call, status, code):
    api, _ = corpus
    r = api.post("/v1/tools/call", json=call)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"] == body["code"] == code and body["message"]


def test_tool_boundary_refusal_and_tenant_isolation(corpus):
    api, i = corpus
    r = api.post("/v1/tools/call", json={"name": "search", "arguments": {"query": "krill", "index_ids": [i],
                                                                         "data_boundary": "global_public_only"}})
    assert r.status_code == 403 and r.json()["code"] == "data_boundary_violation"
    everywhere = api.post("/v1/tools/call", json={"name": "search", "arguments": {
        "query": "krill", "data_boundary": "global_public_only"}}).json()["content"]
    assert everywhere["results"] == [] and everywhere["evidence"]["indexes_excluded"][0]["index_id"] == i
    other = new_key(api.client.app.state.ctx, project="other", role="reader")
    r = api.client.post("/v1/tools/call", headers={"X-API-Key": other},
                        json={"name": "get_document", "arguments": {"index_id": i, "name": "coffee.txt"}})
    assert r.status_code == 404
