"""The reindex job: shadow build, evaluation gates (precision, latency, stale memory), alias swap, rollback."""

import json
import threading
import time

from tests.api.test_rag import wait_job
from tests.conftest import Api, new_key

DOCS = {
    "volcanoes": "# Volcanoes\n\nMagma rises through the crust and erupts as lava.\n\n# Ash\n\nVolcanic ash clouds disrupt flights.",
    "oceans": "# Oceans\n\nThe Pacific is the deepest ocean, with the Mariana Trench.\n\n# Tides\n\nThe moon's gravity drives tides.",
    "forests": "# Forests\n\nRainforests hold half of all plant species.\n\n# Fire\n\nSome pine cones open only after wildfires.",
}
EVAL = {"queries": {"q1": "lava eruption magma", "q2": "deepest ocean trench", "q3": "pine cones after fire"},
        "qrels": {"q1": {"volcanoes": 1}, "q2": {"oceans": 1}, "q3": {"forests": 1}}}


def _setup(app_factory):
    client, ctx = app_factory()
    api = Api(client, new_key(ctx))
    index = api.create_index(chunk_max_characters=60)
    for name, text in DOCS.items():
        assert api.upload(index["id"], f"{name}.md", text.encode(), name=name).status_code == 201
    return api, ctx, index


def test_reindex_swaps_when_not_worse_and_rolls_back(app_factory):
    api, ctx, index = _setup(app_factory)
    i = index["id"]
    before = api.get(f"/v1/indexes/{i}/documents/by-name/oceans/versions").json()["items"][0]["chunk_count"]
    # latency has its own tests below; generous limits keep a noisy CI machine out of this one
    r = api.post("/v1/rag/jobs", json={"job_class": "reindex", "index_id": i, "params": {
        "chunk_max_characters": 2000, "eval": EVAL, "max_latency_ratio": 100, "latency_slack_ms": 1000}})
    assert r.status_code == 202, r.text
    job = wait_job(api, r.json()["id"])
    assert job["status"] == "succeeded", job
    result = job["result"]
    assert result["swapped"] is True and result["new"]["hybrid"]["ndcg@10"] >= result["old"]["hybrid"]["ndcg@10"] - 0.01
    after = api.get(f"/v1/indexes/{i}").json()
    assert after["chunking"]["max_characters"] == 2000 and after["collection_alias"] == result["shadow_collection"]
    versions = api.get(f"/v1/indexes/{i}/documents/by-name/oceans/versions").json()["items"]
    assert versions[0]["chunk_count"] == 1 < before
    hits = api.search("Mariana Trench", i).json()["results"]
    assert hits[0]["document_name"] == "oceans" and "Tides" in hits[0]["text"]  # one bigger chunk now
    # uploads keep working on the new collection and stay versioned
    api.upload(i, "oceans.md", b"# Oceans\n\nThe Atlantic is widening every year.", name="oceans")
    hits = api.search("Mariana Trench deepest", i, top_k=10).json()["results"]
    assert all(h["version"] == 2 for h in hits if h["document_name"] == "oceans")

    r = api.post("/v1/rag/jobs", json={"job_class": "reindex", "index_id": i, "params": {"rollback": True}})
    job = wait_job(api, r.json()["id"])
    assert job["status"] == "succeeded" and job["result"]["rolled_back"] is True
    back = api.get(f"/v1/indexes/{i}").json()
    assert back["chunking"]["max_characters"] == 60 and back["collection_alias"] == index["collection_alias"]
    # the version uploaded after the swap is served after the rollback too
    hits = api.search("Atlantic widening", i).json()["results"]
    assert hits and hits[0]["document_name"] == "oceans" and hits[0]["version"] == 2
    # each swap was reported as it committed (the event stream and webhooks get index.reindexed)
    stream = api.get("/v1/events", params={"timeout_s": 0.3, "types": "index.reindexed"},
                     headers={"Last-Event-ID": "0"}).text
    swaps = [json.loads(line[5:])["data"] for line in stream.splitlines() if line.startswith("data:")]
    assert [(s["rolled_back"], s["collection"]) for s in swaps] == [
        (False, result["shadow_collection"]), (True, index["collection_alias"])]
    assert all(s["index_id"] == i for s in swaps) and swaps[0]["chunk_max_characters"] == 2000


def test_reindex_keeps_old_collection_when_worse(app_factory):
    api, ctx, index = _setup(app_factory)
    i = index["id"]
    r = api.post("/v1/rag/jobs", json={"job_class": "reindex", "index_id": i,
                                       "params": {"chunk_max_characters": 2000, "eval": EVAL, "max_ndcg_drop": -0.5}})
    job = wait_job(api, r.json()["id"])
    assert job["status"] == "succeeded" and job["result"]["swapped"] is False
    assert "worse" in job["result"]["reason"]
    assert not ctx.vectors.collection_exists(job["result"]["shadow_collection"])
    assert api.get(f"/v1/indexes/{i}").json()["collection_alias"] == index["collection_alias"]
    assert api.search("lava magma", i).json()["results"][0]["document_name"] == "volcanoes"


def test_reindex_needs_an_eval_set_and_a_change(app_factory):
    api, ctx, index = _setup(app_factory)
    i = index["id"]
    job = wait_job(api, api.post("/v1/rag/jobs", json={"job_class": "reindex", "index_id": i,
                                                        "params": {"chunk_max_characters": 500}}).json()["id"])
    assert job["status"] == "failed" and "eval" in job["error"]
    job = wait_job(api, api.post("/v1/rag/jobs", json={"job_class": "reindex", "index_id": i,
                                                        "params": {"eval": EVAL}}).json()["id"])
    assert job["status"] == "failed" and "nothing to change" in job["error"]


def _reindex_with_slow_shadow(api, ctx, index, monkeypatch, slow_calls: int | None, slack_ms: float) -> dict:
    """Reindex while searches on the rebuilt collection take 0.5 s longer: every one of them
    (slow_calls None) or only the first slow_calls."""
    slowed = []

    def slowed_down(real):
        def call(alias, request):
            if alias != index["collection_alias"] and (slow_calls is None or len(slowed) < slow_calls):
                slowed.append(alias)
                time.sleep(0.5)
            return real(alias, request)
        return call

    # Every query a search makes: the store's fused one, and the document search's arm batches.
    for name in ("search", "query_arms"):
        monkeypatch.setattr(ctx.vectors, name, slowed_down(getattr(ctx.vectors, name)))
    r = api.post("/v1/rag/jobs", json={"job_class": "reindex", "index_id": index["id"], "params": {
        "chunk_max_characters": 2000, "eval": EVAL, "max_latency_ratio": 1.5, "latency_slack_ms": slack_ms}})
    job = wait_job(api, r.json()["id"])
    assert slowed and job["status"] == "succeeded", job
    return job["result"]


def test_reindex_refuses_a_collection_that_answers_slower(app_factory, monkeypatch):
    api, ctx, index = _setup(app_factory)
    result = _reindex_with_slow_shadow(api, ctx, index, monkeypatch, slow_calls=None, slack_ms=20)
    assert result["swapped"] is False and result["failed_gates"] == ["latency"], result
    gate = result["gates"]["latency"]["modes"]["hybrid"]
    assert gate["new_p95_ms"] > gate["limit_ms"] and result["gates"]["precision"]["passed"]
    assert "p95" in result["reason"] and not ctx.vectors.collection_exists(result["shadow_collection"])
    assert api.get(f"/v1/indexes/{index['id']}").json()["collection_alias"] == index["collection_alias"]


def test_reindex_latency_gate_shrugs_off_one_slow_query(app_factory, monkeypatch):
    """One hiccup (a GC pause, a noisy neighbour) on the rebuilt collection is outvoted: each query
    runs old/new interleaved, latency_rounds times, and counts with its median."""
    api, ctx, index = _setup(app_factory)
    result = _reindex_with_slow_shadow(api, ctx, index, monkeypatch, slow_calls=1, slack_ms=100)
    assert result["swapped"] is True, (result.get("reason"), result["gates"]["latency"])
    assert result["new"]["hybrid"]["latency_rounds"] == 3 and result["new"]["hybrid"]["latency_ms_p95"] < 500


def _write_during_build(monkeypatch, api, index_id, skip_catch_up: bool):
    """While the shadow is being built, delete `forests` and upload oceans v2 (from the test
    thread, while the job waits); with skip_catch_up the job forgets to apply them."""
    from rag_service.services import reindex

    built, written = threading.Event(), threading.Event()
    real_fill = reindex.fill_collection

    def fill(ctx, target, idx, progress=None):
        n = real_fill(ctx, target, idx, progress)
        if not built.is_set():
            built.set()
            written.wait(120)
        return n

    monkeypatch.setattr(reindex, "fill_collection", fill)
    if skip_catch_up:
        monkeypatch.setattr(reindex, "catch_up", lambda *a, **k: 0)
    r = api.post("/v1/rag/jobs", json={"job_class": "reindex", "index_id": index_id, "params": {
        "chunk_max_characters": 2000, "eval": EVAL, "max_latency_ratio": 100, "latency_slack_ms": 1000}})
    assert built.wait(120)
    docs = {d["name"]: d for d in api.get(f"/v1/indexes/{index_id}/documents").json()["items"]}
    assert api.delete(f"/v1/indexes/{index_id}/documents/{docs['forests']['id']}").status_code in (200, 204)
    new = b"# Oceans\n\nThe Atlantic widens by a few centimetres a year along the ridge."
    assert api.upload(index_id, "oceans.md", new, name="oceans").status_code == 201
    written.set()
    return wait_job(api, r.json()["id"])


def test_reindex_reflects_writes_made_during_the_build(app_factory, monkeypatch):
    api, ctx, index = _setup(app_factory)
    i = index["id"]
    job = _write_during_build(monkeypatch, api, i, skip_catch_up=False)
    result = job["result"]
    assert job["status"] == "succeeded" and result["swapped"] is True, result.get("reason")
    stale = result["gates"]["stale"]
    assert stale["passed"] and stale["stale_hits"] == 0 and stale["versions_missing"] == 0
    hits = api.search("pine cones wildfires", i, top_k=10).json()["results"]
    assert all(h["document_name"] != "forests" for h in hits)
    hits = api.search("Atlantic widens ridge", i).json()["results"]
    assert hits[0]["document_name"] == "oceans" and hits[0]["version"] == 2


def test_reindex_refuses_a_collection_that_missed_writes_made_during_the_build(app_factory, monkeypatch):
    api, ctx, index = _setup(app_factory)
    i = index["id"]
    job = _write_during_build(monkeypatch, api, i, skip_catch_up=True)
    result = job["result"]
    assert job["status"] == "succeeded" and result["swapped"] is False and "stale" in result["failed_gates"], job
    assert "current versions" in result["reason"]
    stale = result["gates"]["stale"]
    assert stale["versions_missing"] == 1 and stale["live_points"] != stale["live_points_expected"]
    assert api.get(f"/v1/indexes/{i}").json()["collection_alias"] == index["collection_alias"]
    hits = api.search("Atlantic widens ridge", i).json()["results"]  # the old collection still serves, current
    assert hits[0]["document_name"] == "oceans" and hits[0]["version"] == 2
