"""Values the stores can't represent are a 422 validation_error naming the field, at
every edge, and nothing is saved; a row an older build stored anyway does not break
listings (issue 12, part 2)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from tests.conftest import Api

BIG = 2**63  # one past the signed 64-bit range of SQLite, PostgreSQL and Qdrant integers


def _post_json(api: Api, url: str, raw: str):
    """Send JSON text as written: httpx's own encoder refuses NaN and lone surrogates."""
    return api.post(url, content=raw.encode("utf-8", "surrogatepass"), headers={"Content-Type": "application/json"})


def _refused(r, field: str) -> None:
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["code"] == "validation_error" and body["field"] == field, body


def _listings_ok(api: Api, index_id: str) -> list[dict]:
    for url in ("/v1/indexes", "/v1/documents", f"/v1/indexes/{index_id}/documents"):
        r = api.get(url)
        assert r.status_code == 200, (url, r.text)
    return api.get(f"/v1/indexes/{index_id}/documents").json()["items"]


@pytest.mark.parametrize("raw, field", [
    ('{"a": "\\udc00"}', "metadata.a"),              # lone surrogate value
    ('{"\\ud800x": 1}', "metadata"),                 # lone surrogate key: named by its parent
    ('{"a": {"b": ["ok", "nul\\u0000"]}}', "metadata.a.b.1"),
    ('{"a": NaN}', "metadata.a"),
    ('{"a": Infinity}', "metadata.a"),
    ('{"a": -Infinity}', "metadata.a"),
    ('{"a": 1e309}', "metadata.a"),
    ('{"a": ' + "9" * 4000 + "}", "metadata.a"),
    ('{"a": ' + str(BIG) + "}", "metadata.a"),
    ('{"a": ' + str(-BIG - 1) + "}", "metadata.a"),
])
def test_unstorable_metadata_is_refused_and_nothing_is_saved(api, raw, field):
    index_id = api.create_index()["id"]
    r = api.upload(index_id, "a.txt", b"a document with hostile metadata", metadata=raw)
    _refused(r, field)
    assert _listings_ok(api, index_id) == []
    # the same bytes with honest metadata still upload as version 1
    r = api.upload(index_id, "a.txt", b"a document with hostile metadata", metadata='{"a": -9223372036854775808}')
    assert r.status_code == 201 and r.json()["version"] == 1 and r.json()["metadata"] == {"a": -(2**63)}


def test_metadata_an_older_build_stored_is_listed_with_an_error_marker(api, app_factory):
    index_id = api.create_index()["id"]
    doc = api.upload(index_id, "old.txt", b"written by an older build", metadata='{"a": "fine"}').json()
    ctx = api.client.app.state.ctx
    with ctx.db.engine.begin() as conn:  # what the old build saved: valid JSON text, not valid Unicode
        conn.execute(text("UPDATE document_version SET metadata = :m"), {"m": '{"a": "\\udc00"}'})
    items = _listings_ok(api, index_id)
    assert [d["id"] for d in items] == [doc["id"]]
    assert items[0]["metadata"] == {} and "metadata.a" in items[0]["metadata_error"]
    for url in (f"/v1/documents/{doc['id']}", f"/v1/indexes/{index_id}/documents/by-name/old.txt",
                f"/v1/indexes/{index_id}/documents/by-name/old.txt/versions", f"/v1/documents/{doc['id']}/versions/1"):
        r = api.get(url)
        assert r.status_code == 200, (url, r.text)
        assert "metadata_error" in (r.json()["items"][0] if "items" in r.json() else r.json())
    hits = api.search("older build", index_id).json()["results"]
    assert hits and hits[0]["metadata"] == {} and "metadata_error" in hits[0]
    r = api.delete(f"/v1/documents/{doc['id']}")
    assert r.status_code == 200 and r.json()["deleted"] is True
    assert api.post(f"/v1/documents/{doc['id']}/restore").status_code == 200


def test_integers_past_int64_are_refused_in_search_versions_and_etags(api):
    index_id = api.create_index()["id"]
    doc = api.upload(index_id, "y.txt", b"the year document", metadata='{"year": 2020}').json()
    search = f"/v1/indexes/{index_id}/search"
    _refused(_post_json(api, search, f'{{"query": "year", "filters": {{"year": {BIG}}}}}'), "filters.year")
    _refused(_post_json(api, search, f'{{"query": "year", "filters": {{"year": {{"gte": {-BIG - 1}}}}}}}'),
             "filters.year.gte")
    _refused(_post_json(api, search, f'{{"query": "year", "as_of_version": {BIG}}}'), "as_of_version")
    call = {"name": "search", "arguments": {"query": "year", "filters": {"year": BIG}}}
    _refused(_post_json(api, "/v1/tools/call", json.dumps(call)), "arguments.filters.year")
    openai_call = {"function": {"name": "search", "arguments": json.dumps(call["arguments"])}}
    _refused(_post_json(api, "/v1/tools/call", json.dumps(openai_call)), "arguments.filters.year")
    _refused(api.get(f"/v1/documents/{doc['id']}/versions/{BIG}"), "version")
    _refused(api.get(f"/v1/indexes/{index_id}/documents/{doc['id']}/versions/{BIG}"), "version")
    r = api.post(f"/v1/indexes/{index_id}/documents", files={"file": ("y.txt", b"the year document, v2")},
                 headers={"If-Match": '"v' + "9" * 5000 + '"'})
    _refused(r, "If-Match")
    _refused(api.upload(index_id, "y.txt", b"the year document, v2", if_version=str(BIG)), "if_version")
    assert api.get(f"/v1/documents/{doc['id']}").json()["latest_version"] == 1
    # the edges still take every value in range
    r = _post_json(api, search, f'{{"query": "year", "filters": {{"year": {2**63 - 1}}}, "as_of_version": {2**63 - 1}}}')
    assert r.status_code == 200 and r.json()["results"] == []


@pytest.mark.parametrize("raw, field", [
    ('{"query": "x", "top_k": true}', "top_k"),
    ('{"query": "x", "rrf_k": false}', "rrf_k"),
    ('{"query": "x", "as_of_version": true}', "as_of_version"),
    ('{"query": "x", "filters": {"year": {"gte": NaN}}}', "filters.year.gte"),
    ('{"query": "x", "filters": {"year": Infinity}}', "filters.year"),
    ('{"query": "x", "fusion_weights": [NaN, 1]}', "fusion_weights.0"),
    ('{"query": "x", "min_score": -Infinity}', "min_score"),
    ('{"query": "x\\u0000y"}', "query"),
    ('{"query": "x\\udc00"}', "query"),
    ('{"query": "x", "filters": {"team": "\\ud800"}}', "filters.team"),
])
def test_loose_search_values_are_refused(api, raw, field):
    index_id = api.create_index()["id"]
    api.upload(index_id, "a.txt", b"something to search for")
    _refused(_post_json(api, f"/v1/indexes/{index_id}/search", raw), field)


def test_unstorable_names_and_parameters_are_refused(api):
    _refused(_post_json(api, "/v1/indexes", '{"name": "bad\\udc00name"}'), "name")
    _refused(_post_json(api, "/v1/indexes", '{"name": "nul\\u0000name"}'), "name")
    _refused(_post_json(api, "/v1/indexes", '{"name": "n", "chunk_max_characters": true}'), "chunk_max_characters")
    _refused(_post_json(api, "/v1/indexes", '{"name": "n", "bm25_k1": NaN}'), "bm25_k1")
    index_id = api.create_index()["id"]
    _refused(api.get(f"/v1/indexes/{index_id}/documents", params={"name_prefix": "a\x00b"}), "name_prefix")
    _refused(api.get(f"/v1/indexes/{index_id}/documents/by-name/a%00b"), "name")
    _refused(api.get("/v1/documents/a%00b"), "document_id")
    assert api.get("/v1/indexes").json()["total"] == 1


def test_job_params_are_validated_at_submission(api):
    index_id = api.create_index()["id"]
    api.upload(index_id, "d1.txt", b"photosynthesis turns light into energy", name="d1")
    good = {"queries": {"q1": "light energy"}, "qrels": {"q1": {"d1": 1}}}
    bad = [
        ("eval", {**good, "modes": ["quantum"]}, "params.modes.0"),
        ("eval", {**good, "top_k": True}, "params.top_k"),
        ("eval", {}, "params"),
        ("eval", {"queries_jsonl": "{not json", "qrels": {"q1": {"d1": 1}}}, "params"),
        ("eval", {**good, "surprise": 1}, "params.surprise"),
        ("reindex", {"chunk_max_characters": 10, "eval": good}, "params.chunk_max_characters"),
        ("reindex", {"chunk_max_characters": 500, "eval": {"queries": {"q": "x"}}}, "params.eval"),
        ("purge", {"retain_versions": 0}, "params.retain_versions"),
        ("reconcile", {"stuck_after_seconds": "soon"}, "params.stuck_after_seconds"),
    ]
    for job_class, params, field in bad:
        r = api.post("/v1/rag/jobs", json={"job_class": job_class, "index_id": index_id, "params": params})
        _refused(r, field)
    _refused(_post_json(api, "/v1/rag/jobs", '{"job_class": "purge", "params": {"older_than_seconds": NaN}}'),
             "params.older_than_seconds")
    assert api.get("/v1/rag/jobs").json()["jobs"]["total"] == 0  # nothing was queued
    r = api.post("/v1/rag/jobs", json={"job_class": "eval", "index_id": index_id, "params": {**good, "modes": ["lexical"]}})
    assert r.status_code == 202, r.text


def test_pydantic_errors_name_the_field(api):
    r = api.post("/v1/indexes", json={"name": "n", "privacy_tier": "public", "unknown": 1})
    _refused(r, "unknown")
    r = _post_json(api, "/v1/search", '{"query": "x", "top_k": 0}')
    _refused(r, "top_k")
    r = _post_json(api, "/v1/search", '{"query": ')
    _refused(r, "body")


def test_mcp_tool_arguments_get_the_same_value_rules(settings_factory, embedders):
    """MCP arguments are decoded by the SDK, not by the HTTP edge: call_tool checks them itself."""
    import anyio
    from mcp.client.session import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    from rag_service.context import build_context
    from tests.api.test_tools_mcp import mcp_http, running_app, seed
    from tests.conftest import new_key

    ctx = build_context(settings_factory(), embedders=embedders)
    key = new_key(ctx)

    async def scenario():
        async with running_app(ctx) as app:
            await seed(app, key)
            async with mcp_http(app, key) as http, \
                    streamable_http_client("http://testserver/mcp", http_client=http) as (read, write), \
                    ClientSession(read, write) as session:
                await session.initialize()
                for args, field in (({"query": "krill", "filters": {"year": BIG}}, "arguments.filters.year"),
                                    ({"query": "krill", "top_k": True}, "arguments.top_k"),
                                    ({"document_id": "x", "version": BIG}, "arguments.version")):
                    name = "get_document" if "document_id" in args else "search"
                    result = await session.call_tool(name, args)
                    assert result.is_error, result
                    assert result.structured_content["code"] == "validation_error"
                    assert result.structured_content["field"] == field
                ok = await session.call_tool("search", {"query": "krill", "filters": {"year": 2**63 - 1}})
                assert not ok.is_error and ok.structured_content["results"] == []

    try:
        anyio.run(scenario)
    finally:
        ctx.vectors.close()
        ctx.db.dispose()
