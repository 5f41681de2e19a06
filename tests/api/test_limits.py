"""Per-key rate limiting and CORS configuration."""

from rag_service.api.ratelimit import RateLimiter
from tests.conftest import Api, new_key


def test_rate_limit_headers_and_429(app_factory):
    client, ctx = app_factory(rate_limit_per_minute=3)
    api = Api(client, new_key(ctx))
    first = api.get("/v1/indexes")
    assert first.headers["X-RateLimit-Limit"] == "3" and first.headers["X-RateLimit-Remaining"] == "2"
    assert int(first.headers["X-RateLimit-Reset"]) >= 1
    api.get("/v1/indexes")
    api.get("/v1/indexes")
    limited = api.get("/v1/indexes")
    assert limited.status_code == 429 and limited.json()["code"] == "rate_limited"
    assert int(limited.headers["Retry-After"]) >= 1 and limited.headers["X-RateLimit-Remaining"] == "0"
    other = Api(client, new_key(ctx, "other"))
    assert other.get("/v1/indexes").status_code == 200  # limits are per key


def test_rate_limit_window_resets():
    now = [1000.0]
    limiter = RateLimiter(2, clock=lambda: now[0])
    assert [limiter.check("k").allowed for _ in range(3)] == [True, True, False]
    now[0] += 60
    assert limiter.check("k").allowed


def test_cors_off_by_default_and_configurable(app_factory):
    client, _ = app_factory()
    r = client.options("/v1/indexes", headers={"Origin": "https://app.example", "Access-Control-Request-Method": "GET"})
    assert "access-control-allow-origin" not in r.headers
    client, _ = app_factory(cors_origins="https://app.example")
    r = client.options("/v1/indexes", headers={"Origin": "https://app.example", "Access-Control-Request-Method": "GET"})
    assert r.headers["access-control-allow-origin"] == "https://app.example"


def test_metrics_endpoint(app_factory):
    client, ctx = app_factory()
    api = Api(client, new_key(ctx))
    i = api.create_index()["id"]
    api.upload(i, "m.txt", b"metrics count this upload of text")
    api.search("metrics upload", i)
    api.post("/v1/rag/jobs", json={"job_class": "reconcile", "index_id": i})
    text = client.get("/metrics").text
    assert 'rag_http_request_seconds_count{method="POST",route="/v1/indexes/{index_id}/search",status="200"} 1.0' in text
    assert "rag_ingest_chunks_total 1.0" in text and "rag_ingest_bytes_total" in text
    assert 'rag_vector_query_seconds_count{mode="hybrid"} 1.0' in text
    assert 'rag_embedding_batch_seconds_count{kind="query"}' in text
    assert 'rag_jobs{job_class="reconcile"' in text and "rag_search_stale_dropped_total 0.0" in text
    assert api.key not in text
