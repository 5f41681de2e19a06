"""The Python client: every endpoint against the app, typed errors, retries."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import anyio
import httpx
import pytest

from rag_service.client import (
    AsyncRagClient,
    Conflict,
    DataBoundaryViolation,
    Forbidden,
    NotFound,
    RagClient,
    RagError,
    RateLimited,
    RetrievalUnavailable,
    RetryPolicy,
    Unauthorized,
    UnsupportedMediaType,
    ValidationError,
    VersionConflict,
    parse_retry_after,
)
from tests.conftest import new_key


@pytest.fixture
def rag(app_factory) -> RagClient:
    client, ctx = app_factory()
    return RagClient(http=client, api_key=new_key(ctx))


def test_indexes_documents_versions_and_search(rag, tmp_path):
    index = rag.create_index("handbook", privacy_tier="private", chunk_max_characters=400)
    i = index["id"]
    assert rag.get_index(i)["name"] == "handbook"
    assert rag.update_index(i, description="HR policies")["description"] == "HR policies"
    assert [x["id"] for x in rag.list_indexes()["items"]] == [i]
    assert rag.find_index("handbook")["id"] == i and rag.find_index(i)["id"] == i and rag.find_index("nope") is None

    path = tmp_path / "leave.md"
    path.write_text("# Leave\n\nParental leave is sixteen weeks at full pay.")
    v1 = rag.upload(i, path, metadata={"author": "hr", "year": 2026})
    assert v1["name"] == "leave.md" and v1["version"] == 1 and v1["metadata"] == {"author": "hr", "year": 2026}
    same = rag.upload(i, path, metadata={"author": "hr", "year": 2026})
    assert same["unchanged"] is True and same["version"] == 1
    v2 = rag.upload(i, b"Parental leave is twenty weeks at full pay.", name="leave.md", filename="leave.txt", if_version=1)
    assert v2["version"] == 2
    rag.upload(i, b"Desks are booked through the office app.", name="desks.txt")

    assert rag.list_documents(i)["total"] == 2 and rag.list_documents()["total"] == 2
    assert rag.list_documents(i, name_prefix="desk")["items"][0]["name"] == "desks.txt"
    doc = rag.get_document_by_name(i, "leave.md")
    assert doc["id"] == v1["id"] and rag.get_document(doc["id"], index_id=i)["version"] == 2
    versions = rag.document_versions(i, "leave.md")["items"]
    assert [v["version"] for v in versions] == [1, 2] and [v["current"] for v in versions] == [False, True]
    old = rag.get_version(doc["id"], 1)
    assert "sixteen weeks" in old["text"] and old["chunks"][0]["ordinal"] == 0

    hits = rag.search("how long is parental leave", index_id=i, top_k=3, mode="hybrid")["results"]
    assert hits[0]["document_name"] == "leave.md" and hits[0]["version"] == 2
    assert rag.search("parental leave", filters={"author": "hr"})["results"] == []  # v2 has no metadata
    docs = rag.search("parental leave", index_ids=[i], result_type="document")["results"]
    assert docs[0]["best_chunk"]["document_id"] == doc["id"]

    assert rag.delete_document(doc["id"])["deleted"] is True
    assert rag.list_documents(i)["total"] == 1 and rag.list_documents(i, include_deleted=True)["total"] == 2
    assert rag.restore_document(doc["id"], index_id=i)["deleted"] is False
    assert rag.delete_document(doc["id"], hard=True, index_id=i)["points_remaining"] == 0
    assert rag.delete_index(i) is None
    with pytest.raises(NotFound):
        rag.get_index(i)


def test_version_conflict_carries_the_current_version(rag):
    i = rag.create_index("docs")["id"]
    rag.upload(i, b"first", name="a.txt")
    rag.upload(i, b"second", name="a.txt")
    with pytest.raises(VersionConflict) as err:
        rag.upload(i, b"third", name="a.txt", if_version=1)
    exc = err.value
    assert exc.current_version == 2 and exc.expected_version == 1
    assert exc.status == 409 and exc.code == "version_conflict" and isinstance(exc, Conflict)
    assert exc.body["current_version"] == 2 and "latest version is 2" in exc.message
    with pytest.raises(VersionConflict) as err:
        rag.upload(i, b"create only", name="a.txt", if_version=0)
    assert err.value.current_version == 2
    assert rag.upload(i, b"third", name="a.txt", if_version=2)["version"] == 3


def test_errors_are_typed_by_code(app_factory):
    client, ctx = app_factory()
    admin = RagClient(http=client, api_key=new_key(ctx))
    i = admin.create_index("vault", privacy_tier="private")["id"]
    with pytest.raises(Unauthorized):
        RagClient(http=client, api_key="rag_wrong").list_indexes()
    with pytest.raises(Unauthorized):
        RagClient(http=client, api_key="").list_indexes()
    with pytest.raises(Forbidden) as err:
        RagClient(http=client, api_key=new_key(ctx, role="reader")).create_index("nope")
    assert err.value.code == "forbidden" and not isinstance(err.value, DataBoundaryViolation)
    with pytest.raises(DataBoundaryViolation) as err:
        admin.search("x", index_id=i, data_boundary="global_public_only")
    assert err.value.status == 403 and isinstance(err.value, Forbidden) and err.value.body["indexes_excluded"]
    with pytest.raises(NotFound):
        admin.get_document("missing")
    with pytest.raises(ValidationError) as err:
        admin.search("x", mode="fuzzy")
    assert err.value.body["field"] == "mode"
    with pytest.raises(ValidationError) as err:
        admin.upload(i, b"", name="empty.txt")
    assert err.value.code == "empty_document" and err.value.request_id
    with pytest.raises(UnsupportedMediaType):
        admin.upload(i, b"MZ...", name="tool.exe")
    with pytest.raises(Conflict):
        admin.create_index("vault")
    with pytest.raises(ValueError):
        admin.upload(i, b"bytes without a name")


def test_async_client_against_the_app(app_factory):
    client, ctx = app_factory()
    key = new_key(ctx)

    async def scenario():
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=client.app), base_url="http://testserver")
        async with http, AsyncRagClient(http=http, api_key=key) as rag:
            i = (await rag.create_index("async"))["id"]
            await rag.upload(i, b"Tide pools hold anemones and small crabs.", name="tides.txt", metadata={"k": 1})
            assert (await rag.find_index("async"))["id"] == i
            hits = (await rag.search("anemones in tide pools"))["results"]
            assert hits[0]["document_name"] == "tides.txt"
            with pytest.raises(VersionConflict) as err:
                await rag.upload(i, b"changed", name="tides.txt", if_version=0)
            assert err.value.current_version == 1
            tools = await rag.openai_tools()
            assert {t["function"]["name"] for t in tools} == {"search", "get_document", "list_indexes"}
            call = await rag.call_tool("search", {"query": "anemones"})
            assert [h["chunk_id"] for h in call["content"]["results"]] == [h["chunk_id"] for h in hits]

    anyio.run(scenario)


# -- retries (no app needed: a mock transport) ---------------------------------------
def scripted(*responses: httpx.Response):
    calls: list[httpx.Request] = []
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return handler, calls


def unavailable(retry_after: str | None = "2") -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return httpx.Response(503, headers=headers, json={"error": "retrieval_unavailable", "code": "retrieval_unavailable",
                                                      "message": "vector store unavailable"})


def test_retries_503_honouring_retry_after():
    handler, calls = scripted(unavailable("2"), unavailable("3"), httpx.Response(200, json={"results": []}))
    slept: list[float] = []
    rag = RagClient("http://rag.test", "k", transport=httpx.MockTransport(handler), sleep=slept.append)
    assert rag.search("x") == {"results": []}
    assert slept == [2.0, 3.0] and len(calls) == 3
    assert all(c.headers["x-api-key"] == "k" and c.url.path == "/v1/search" for c in calls)
    assert json.loads(calls[-1].content) == {"query": "x"}


def test_retries_are_bounded_and_back_off_exponentially():
    handler, calls = scripted(unavailable(None))
    slept: list[float] = []
    rag = RagClient("http://rag.test", "k", transport=httpx.MockTransport(handler), sleep=slept.append,
                    retry=RetryPolicy(max_attempts=4, backoff=0.5))
    with pytest.raises(RetrievalUnavailable) as err:
        rag.status()
    assert len(calls) == 4 and slept == [0.5, 1.0, 2.0]
    assert err.value.status == 503 and err.value.code == "retrieval_unavailable"


def test_rate_limited_with_http_date_and_cap():
    later = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=120), usegmt=True)
    limited = httpx.Response(429, headers={"Retry-After": later}, json={"code": "rate_limited", "message": "slow down"})
    handler, calls = scripted(limited)
    slept: list[float] = []
    rag = RagClient("http://rag.test", "k", transport=httpx.MockTransport(handler), sleep=slept.append,
                    retry=RetryPolicy(max_attempts=2, max_delay=10))
    with pytest.raises(RateLimited) as err:
        rag.list_indexes()
    assert slept == [10] and len(calls) == 2 and 100 < err.value.retry_after <= 120
    assert parse_retry_after("7") == 7 and parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_other_errors_and_posts_are_not_retried_beyond_their_answer():
    handler, calls = scripted(httpx.Response(500, text="boom"))
    rag = RagClient("http://rag.test", "k", transport=httpx.MockTransport(handler), sleep=lambda s: None)
    with pytest.raises(RagError) as err:
        rag.upload("i", b"x", name="a.txt")
    assert len(calls) == 1 and err.value.status == 500 and err.value.code == "http_500" and err.value.message == "boom"


def test_connection_refused_is_retried_then_raised():
    attempts = []

    def handler(request):
        attempts.append(request)
        raise httpx.ConnectError("refused", request=request)

    rag = RagClient("http://rag.test", "k", transport=httpx.MockTransport(handler), sleep=lambda s: None,
                    retry=RetryPolicy(max_attempts=3))
    with pytest.raises(httpx.ConnectError):
        rag.health()
    assert len(attempts) == 3


def test_async_client_retries_honouring_retry_after():
    handler, calls = scripted(unavailable("1.5"), httpx.Response(200, json={"status": "ok"}))
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async def scenario():
        async with AsyncRagClient("http://rag.test", "k", transport=httpx.MockTransport(handler), sleep=sleep) as rag:
            return await rag.status()

    assert anyio.run(scenario) == {"status": "ok"} and slept == [1.5] and len(calls) == 2


def test_status_and_job_routes():
    seen: list[tuple[str, str, dict | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.raw_path.decode(), json.loads(request.content) if request.content else None))
        return httpx.Response(200, json={"ok": True})

    with RagClient("http://rag.test/", "k", transport=httpx.MockTransport(handler)) as rag:
        rag.status()
        rag.list_jobs(status="running")
        rag.create_job("eval", index_id="i1", data_boundary="computer", params={"k": 5})
        rag.get_job("j/1")
        rag.cancel_job("j1")
        rag.get_evidence("e1")
    assert seen == [
        ("GET", "/v1/rag/status", None),
        ("GET", "/v1/rag/jobs?page=1&per_page=50&status=running", None),
        ("POST", "/v1/rag/jobs", {"job_class": "eval", "index_id": "i1", "data_boundary": "computer", "params": {"k": 5}}),
        ("GET", "/v1/rag/jobs/j%2F1", None),
        ("POST", "/v1/rag/jobs/j1/cancel", None),
        ("GET", "/v1/rag/evidence/e1", None),
    ]


def test_defaults_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("RAG_URL", "http://env.test:9000/")
    monkeypatch.setenv("RAG_API_KEY", "rag_env")
    seen = []
    rag = RagClient(transport=httpx.MockTransport(lambda r: seen.append(r) or httpx.Response(200, json={})))
    rag.health()
    assert str(seen[0].url) == "http://env.test:9000/healthz" and seen[0].headers["x-api-key"] == "rag_env"


def test_every_error_code_the_server_answers_raises_the_class_of_its_status():
    # One table (rag_service.error_codes) feeds the server's answers and the client's classes:
    # a code added on the server with a status the client has no class for fails here.
    from rag_service.error_codes import STATUS_BY_CODE

    for code, status in STATUS_BY_CODE.items():
        rag = RagClient("http://rag.test", "k", retry=RetryPolicy(max_attempts=1),
                        transport=httpx.MockTransport(lambda r, c=code, s=status: httpx.Response(
                            s, json={"error": c, "code": c, "message": "no"})))
        with pytest.raises(RagError) as caught:
            rag.status()
        assert caught.value.code == code and caught.value.status == status
        assert getattr(type(caught.value), "status", None) == status, (code, type(caught.value))


def test_search_sends_the_fusion_settings_and_the_service_takes_them(rag):
    index = rag.create_index("fusion")
    rag.upload(index["id"], b"Plovers nest on shingle beaches.", filename="plover.txt")
    answer = rag.search("plovers", index_id=index["id"], mode="hybrid", rrf_k=7, fusion_weights=(2.0, 0.5), explain=True)
    assert answer["results"] and answer["results"][0]["text"].startswith("Plovers")
    seen = []
    mock = RagClient("http://rag.test", "k", transport=httpx.MockTransport(
        lambda r: seen.append(json.loads(r.content)) or httpx.Response(200, json={})))
    mock.search("q", rrf_k=7, fusion_weights=(2.0, 0.5))
    assert seen == [{"query": "q", "rrf_k": 7, "fusion_weights": [2.0, 0.5]}]


def test_search_takes_every_field_of_the_service_search_model_and_nothing_else():
    # The client derives its search parameters from the model the routes take: a field added to
    # the service is at once a keyword of client.search, and a typo fails before any request.
    from rag_service.search_params import SearchParams

    seen = []
    rag = RagClient("http://rag.test", "k", transport=httpx.MockTransport(
        lambda r: seen.append(json.loads(r.content)) or httpx.Response(200, json={})))
    example = {"top_k": 3, "mode": "lexical", "result_type": "document", "filters": {"a": 1}, "min_score": 0.1,
               "as_of_version": 2, "include_history": True, "data_boundary": "computer", "account_id": "acc",
               "index_ids": ["i"], "rerank": False, "explain": False, "rrf_k": 7, "fusion_weights": [1.0, 2.0],
               "fusion": "zscore", "prf": False, "lexical_unit": "chunk"}
    assert set(example) | {"query"} == set(SearchParams.model_fields)
    rag.search("q", **example)
    assert seen == [{"query": "q", **example}]
    SearchParams.model_validate(seen[0])  # what the client sends is what the service takes
    with pytest.raises(TypeError, match="topk"):
        rag.search("q", topk=3)
    assert len(seen) == 1
