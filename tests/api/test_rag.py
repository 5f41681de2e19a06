"""Data boundaries, evidence, audit log, /v1/rag/status and /v1/rag/jobs."""

import json
import time
from types import SimpleNamespace

import pytest

from rag_service.services.job_handlers.ingest import run_ingest
from rag_service.stores.vector import DOCUMENT_POINT, Filter, Match
from tests.conftest import Api, new_key


def wait_job(api, job_id, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = api.get(f"/v1/rag/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish: {job}")


@pytest.fixture
def tiers(api):
    ids = {}
    for tier in ("public", "mesh_safe", "private", "personal"):
        ids[tier] = api.create_index(f"idx-{tier}", privacy_tier=tier)["id"]
        api.upload(ids[tier], f"{tier}.txt", f"The {tier} tier holds facts about lighthouses.".encode())
    return api, ids


def test_boundary_policy_on_search(tiers):
    api, ids = tiers
    # explicit index the boundary may not read: 403 and nothing else
    r = api.search("lighthouses", ids["private"], data_boundary="global_public_only")
    assert r.status_code == 403 and r.json()["code"] == "data_boundary_violation" and "results" not in r.json()
    r = api.search("lighthouses", index_ids=[ids["public"], ids["personal"]], data_boundary="global_public_only")
    assert r.status_code == 403
    # all indexes: skipped and listed
    body = api.search("lighthouses", data_boundary="global_public_only", top_k=20).json()
    assert {h["index_id"] for h in body["results"]} == {ids["public"], ids["mesh_safe"]}
    excluded = {e["index_id"] for e in body["evidence"]["indexes_excluded"]}
    assert excluded == {ids["private"], ids["personal"]}
    assert body["data_boundary"] == "global_public_only" and body["privacy_tiers_read"] == ["mesh_safe", "public"]
    # header form
    r = api.post("/v1/search", json={"query": "lighthouses"}, headers={"X-Data-Boundary": "private_supercomputer"})
    assert {e["privacy_tier"] for e in r.json()["evidence"]["indexes_excluded"]} == {"personal"}
    assert api.post("/v1/search", json={"query": "x"}, headers={"X-Data-Boundary": "nowhere"}).status_code == 422
    # default boundary computer reads everything
    body = api.search("lighthouses", top_k=20).json()
    assert len({h["index_id"] for h in body["results"]}) == 4 and body["data_boundary"] == "computer"


def test_account_sync_reads_personal_only_for_same_account(tiers):
    api, ids = tiers
    ctx = api.client.app.state.ctx
    from sqlmodel import select

    from rag_service.models import Index, Project

    with ctx.db.session() as s:
        project = s.get(Project, s.exec(select(Index.project_id).where(Index.id == ids["personal"])).one())
        project.account_id = "acct-42"
        s.add(project)
        s.commit()
    r = api.search("lighthouses", ids["personal"], data_boundary="account_supercomputer_sync")
    assert r.status_code == 403
    r = api.search("lighthouses", ids["personal"], data_boundary="account_supercomputer_sync", account_id="acct-7")
    assert r.status_code == 403
    r = api.search("lighthouses", ids["personal"], data_boundary="account_supercomputer_sync", account_id="acct-42")
    assert r.status_code == 200 and r.json()["results"]
    assert api.search("x", ids["private"], data_boundary="account_supercomputer_sync", account_id="acct-42").status_code == 403


def test_evidence_is_stored_and_project_scoped(app_factory):
    client, ctx = app_factory()
    a, b = Api(client, new_key(ctx, "a")), Api(client, new_key(ctx, "b"))
    i = a.create_index()["id"]
    a.upload(i, "x.txt", b"Evidence about tides and the moon.")
    body = a.search("tides moon", i).json()
    ev_id = body["evidence"]["evidence_id"]
    stored = a.get(f"/v1/rag/evidence/{ev_id}").json()
    assert stored["evidence_id"] == ev_id and stored["query"] == "tides moon"
    assert stored["results"][0]["chunk_id"] == body["results"][0]["chunk_id"]
    assert stored["data_boundary"] == "computer" and stored["privacy_tiers_read"] == ["private"]
    assert b.get(f"/v1/rag/evidence/{ev_id}").status_code == 404


def test_audit_log_records_writes_deletes_keys_and_refusals(app_factory):
    client, ctx = app_factory()
    api = Api(client, new_key(ctx))
    i = api.create_index(privacy_tier="private")["id"]
    doc = api.upload(i, "a.txt", b"audit me please").json()
    api.delete(f"/v1/documents/{doc['id']}")
    api.post("/v1/keys", json={"role": "reader"})
    api.search("audit", i, data_boundary="global_public_only")
    log = api.get("/v1/audit-log").json()
    actions = [row["action"] for row in log["items"]]
    for action in ("index.create", "document.upload", "document.delete", "key.create", "boundary.refused"):
        assert action in actions, actions
    only = api.get("/v1/audit-log", params={"action": "document.upload"}).json()
    assert only["total"] == 1 and only["items"][0]["target_id"] == doc["id"]
    future = api.get("/v1/audit-log", params={"since": "2999-01-01T00:00:00"}).json()
    assert future["total"] == 0
    csv_text = api.get("/v1/audit-log", params={"format": "csv"}).text
    assert csv_text.splitlines()[0].startswith("id,created_at,action") and "document.upload" in csv_text
    reader = Api(client, new_key(ctx, role="reader"))
    assert reader.get("/v1/audit-log").status_code == 403


def test_status_global_and_project(app_factory):
    client, ctx = app_factory()
    api = Api(client, new_key(ctx))
    i = api.create_index()["id"]
    api.upload(i, "a.txt", b"status counts this document")
    anon = client.get("/v1/rag/status").json()
    assert anon["status"] == "ok" and "project" not in anon
    for name in ("metadata_db", "vector_store", "embedder", "job_runner"):
        assert anon["components"][name]["reachable"] is True and anon["components"][name]["probe_ms"] >= 0
    modes = anon["retrieval_modes"]
    assert (modes["dense"], modes["lexical"], modes["hybrid"]) == ("live", "live", "live")
    assert modes["rerank"] == "available_when_configured" and modes["graph"] == modes["visual"] == "planned"
    assert anon["embedding_models"] == ["all-MiniLM-L6-v2"]
    assert anon["boundary_policy"]["global_public_only"]["private"] == "no"
    project = api.get("/v1/rag/status").json()["project"]
    assert (project["indexes"], project["documents"], project["versions"], project["chunks"]) == (1, 1, 1, 1)
    assert set(project["jobs"]) == {"queued", "running", "succeeded", "failed", "cancelled"}
    assert client.get("/v1/rag/status", headers={"X-API-Key": "bad"}).status_code == 401


def test_status_tells_the_truth_when_components_fail(app_factory, monkeypatch):
    client, ctx = app_factory()

    def boom(*a, **k):
        raise ConnectionError("down for the test")

    monkeypatch.setattr(ctx.db, "ping", boom)
    body = client.get("/v1/rag/status").json()
    assert body["status"] == "degraded" and body["components"]["metadata_db"]["reachable"] is False
    assert body["retrieval_modes"]["hybrid"] == "unavailable"
    monkeypatch.undo()

    registry = ctx.embedders
    monkeypatch.setattr(registry, "get", boom)
    body = client.get("/v1/rag/status").json()
    assert body["components"]["embedder"]["reachable"] is False and body["retrieval_modes"]["dense"] == "unavailable"
    assert body["retrieval_modes"]["lexical"] == "live"
    monkeypatch.undo()

    ctx.runner.stop()
    body = client.get("/v1/rag/status").json()
    assert body["status"] == "degraded" and body["components"]["job_runner"]["reachable"] is False

    ctx.vectors.close()
    body = client.get("/v1/rag/status").json()
    assert body["components"]["vector_store"]["reachable"] is False
    assert body["retrieval_modes"]["lexical"] == "unavailable"


def test_status_ok_when_jobs_run_in_worker_processes(app_factory):
    client, ctx = app_factory(job_runner="off")  # not broken: configured to run elsewhere
    body = client.get("/v1/rag/status").json()
    assert body["status"] == "ok" and body["components"]["job_runner"]["configured"] is False


def test_jobs_contract_and_refusals(tiers):
    api, ids = tiers
    body = api.get("/v1/rag/jobs").json()
    classes = {c["job_class"]: c for c in body["contract"]["job_classes"]}
    assert {"ingest", "eval", "reconcile", "purge"} <= {k for k, c in classes.items() if c["status"] == "live"}
    assert classes["graph_summary"]["status"] == "planned" and body["contract"]["policy"]["computer"]["personal"] == "yes"
    assert body["jobs"]["items"] == [] and body["jobs"]["total"] == 0
    r = api.post("/v1/rag/jobs", json={"job_class": "graph_summary", "index_id": ids["public"]})
    assert r.status_code == 501 and r.json()["code"] == "rag_job_runner_not_live"
    r = api.post("/v1/rag/jobs", json={"job_class": "visual_rag", "index_id": ids["public"]})
    assert r.status_code == 501
    for tier in ("private", "personal"):
        r = api.post("/v1/rag/jobs", json={"job_class": "reconcile", "index_id": ids[tier], "data_boundary": "global_public_only"})
        assert r.status_code == 403 and r.json()["code"] == "data_boundary_violation"
    r = api.post("/v1/rag/jobs", json={"job_class": "purge", "privacy_tier": "private"},
                 headers={"X-Data-Boundary": "global_public_only"})
    assert r.status_code == 403
    assert api.get("/v1/rag/jobs").json()["jobs"]["total"] == 0  # nothing was queued
    assert api.post("/v1/rag/jobs", json={"job_class": "nope"}).status_code == 422
    assert api.post("/v1/rag/jobs", json={"job_class": "eval"}).status_code == 422  # needs index_id


def test_async_ingest_job(api):
    i = api.create_index()["id"]
    api.upload(i, "big.md", b"# Old\n\nThe old text mentions the albatross.")
    r = api.post(f"/v1/indexes/{i}/documents", params={"async": "true"},
                 files={"file": ("big.md", b"# New\n\n" + b"The new text is about the pelican. " * 50)})
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["job_class"] == "ingest" and job["status"] in ("queued", "running", "succeeded")
    assert job["document"]["version"] == 2
    done = wait_job(api, job["id"])
    assert done["status"] == "succeeded" and done["progress"] == 100 and done["result"]["version"] == 2
    assert done["attempts"] == 1 and done["started_at"] and done["finished_at"]
    # The job answers as a synchronous upload does: chunks embedded and reused (the repeated
    # sentence makes identical chunks, embedded once).
    result = done["result"]
    assert 0 < result["chunks_embedded"] < result["chunk_count"]
    assert result["chunks_embedded"] + result["chunks_reused"] == result["chunk_count"]
    hits = api.search("pelican", i).json()["results"]
    assert hits and all(h["version"] == 2 for h in hits)
    # An attempt that finds the version already ready (the worker died after promoting it, before
    # recording the job's end) answers with the same counts, from what the first attempt stored.
    retry = SimpleNamespace(runner=SimpleNamespace(ctx=api.client.app.state.ctx), progress=lambda _: None,
                            job=SimpleNamespace(params=done["params"]))
    again = run_ingest(retry)
    assert again["already_ready"] is True
    assert {k: again[k] for k in result} == result
    # conditional async upload still answers 409 at once
    r = api.post(f"/v1/indexes/{i}/documents", params={"async": "true"}, data={"if_version": "1"},
                 files={"file": ("big.md", b"another")})
    assert r.status_code == 409 and r.json()["current_version"] == 2
    # a corrupt file fails its job, and the served version stays
    r = api.post(f"/v1/indexes/{i}/documents", params={"async": "true"}, files={"file": ("big.pdf", b"%PDF garbage")},
                 data={"name": "big.md"})
    failed = wait_job(api, r.json()["id"])
    assert failed["status"] == "failed" and "corrupt" in failed["error"]
    assert api.search("pelican", i).json()["results"][0]["version"] == 2


def test_eval_job_scores_a_labelled_set(api):
    i = api.create_index()["id"]
    docs = {"d1": "Photosynthesis converts light into chemical energy in plants.",
            "d2": "The French Revolution began in 1789 with the storming of the Bastille.",
            "d3": "Black holes form when massive stars collapse under gravity.",
            "d4": "Sourdough bread rises thanks to wild yeast and lactic acid bacteria."}
    for name, text in docs.items():
        api.upload(i, f"{name}.txt", text.encode(), name=name)
    queries = {"q1": "how do plants make energy from light", "q2": "storming of the Bastille", "q3": "collapse of massive stars"}
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}, "q3": {"d3": 1}}
    r = api.post("/v1/rag/jobs", json={"job_class": "eval", "index_id": i, "params": {"queries": queries, "qrels": qrels}})
    assert r.status_code == 202
    job = wait_job(api, r.json()["id"])
    assert job["status"] == "succeeded", job
    for mode in ("dense", "lexical", "hybrid"):
        m = job["result"]["modes"][mode]
        assert m["ndcg@10"] == pytest.approx(1.0) and m["recall@100"] == 1.0 and m["mrr@10"] == 1.0
        assert m["latency_ms_p50"] > 0 and m["latency_ms_p99"] >= m["latency_ms_p50"]
    latest = api.get("/v1/rag/status").json()["project"]["latest_eval"][i]
    assert latest["job_id"] == job["id"] and latest["metrics"]["hybrid"]["ndcg@10"] == pytest.approx(1.0)
    # the same set as BEIR files' text
    r = api.post("/v1/rag/jobs", json={"job_class": "eval", "index_id": i, "params": {
        "queries_jsonl": "\n".join(json.dumps({"_id": k, "text": v}) for k, v in queries.items()),
        "qrels_tsv": "query-id\tcorpus-id\tscore\nq1\td2\t1\nq2\td2\t1\n", "modes": ["lexical"]}})
    m = wait_job(api, r.json()["id"])["result"]["modes"]["lexical"]
    assert m["queries"] == 2 and 0.4 < m["mrr@10"] < 1.0
    r = api.post("/v1/rag/jobs", json={"job_class": "eval", "index_id": i, "params": {}})
    assert r.status_code == 422 and r.json()["field"] == "params"  # refused at submission, not a failed job
    # An eval may rank deeper than a search request may (top_k up to 1000, for Recall@1000).
    r = api.post("/v1/rag/jobs", json={"job_class": "eval", "index_id": i, "params": {
        "queries": queries, "qrels": qrels, "top_k": 500, "modes": ["hybrid"]}})
    deep = wait_job(api, r.json()["id"])
    assert deep["status"] == "succeeded", deep
    assert deep["result"]["modes"]["hybrid"]["ndcg@10"] == pytest.approx(1.0)


def test_reconcile_repairs_drift(app_factory):
    client, ctx = app_factory()
    api = Api(client, new_key(ctx))
    index = api.create_index(chunk_max_characters=200)
    i, alias = index["id"], index["collection_alias"]
    a = api.upload(i, "a.md", ("# A\n\n" + "Alpha paragraph about canals. " * 30).encode()).json()
    b = api.upload(i, "b.txt", b"Beta text about bridges.").json()
    api.upload(i, "b.txt", b"Beta text, second version, about tunnels.")
    ctx.vectors.delete(alias, Filter(must=(Match("document_id", a["id"]),)))  # lost points
    ctx.vectors.set_payload(alias, Filter(must=(Match("document_id", b["id"]),)), {"live": 1})  # stale flags
    assert api.search("alpha canals", i, mode="lexical").json()["results"] == []
    r = api.post("/v1/rag/jobs", json={"job_class": "reconcile", "index_id": i})
    job = wait_job(api, r.json()["id"])
    assert job["status"] == "succeeded"
    assert job["result"]["found_count"] >= 2 and job["result"]["fixed_count"] >= 2
    assert api.search("alpha canals", i, mode="lexical").json()["results"][0]["document_id"] == a["id"]
    assert ctx.vectors.count(alias, Filter(must=(Match("document_id", b["id"]), Match("live", 1)), must_not=(DOCUMENT_POINT,))) == 1
    again = wait_job(api, api.post("/v1/rag/jobs", json={"job_class": "reconcile", "index_id": i}).json()["id"])
    assert again["result"]["found_count"] == 0


def test_purge_hard_deletes_old_soft_deletes_and_drops_old_versions(app_factory):
    client, ctx = app_factory()
    api = Api(client, new_key(ctx))
    index = api.create_index()
    i, alias = index["id"], index["collection_alias"]
    gone = api.upload(i, "gone.txt", b"to be purged soon").json()
    api.delete(f"/v1/documents/{gone['id']}")
    keep = None
    for n in range(4):
        keep = api.upload(i, "keep.txt", f"keep version {n} text".encode()).json()
    r = api.post("/v1/rag/jobs", json={"job_class": "purge", "index_id": i,
                                       "params": {"older_than_seconds": 0, "retain_versions": 2}})
    job = wait_job(api, r.json()["id"])
    assert job["status"] == "succeeded", job
    assert [d["document_id"] for d in job["result"]["purged_documents"]] == [gone["id"]]
    assert sorted(v["version"] for v in job["result"]["archived_versions"]) == [1, 2]
    assert api.get(f"/v1/documents/{gone['id']}").status_code == 404
    assert ctx.vectors.count(alias, Filter(must=(Match("document_id", gone["id"]),))) == 0
    assert ctx.vectors.count(alias, Filter(must=(Match("document_id", keep["id"]), Match("version", 1)))) == 0
    assert ctx.vectors.count(alias, Filter(must=(Match("document_id", keep["id"]), Match("version", 3)), must_not=(DOCUMENT_POINT,))) == 1
    versions = api.get(f"/v1/indexes/{i}/documents/by-name/keep.txt/versions").json()["items"]
    assert [v["status"] for v in versions] == ["archived", "archived", "ready", "ready"]


def test_project_wide_purge_touches_only_indexes_its_boundary_may_read(app_factory):
    client, ctx = app_factory()
    api = Api(client, new_key(ctx))
    public, private = api.create_index("open", privacy_tier="public"), api.create_index("vault", privacy_tier="private")
    docs = {}
    for index in (public, private):
        docs[index["name"]] = api.upload(index["id"], "old.txt", b"soft deleted long ago").json()
        api.delete(f"/v1/documents/{docs[index['name']]['id']}")
    r = api.post("/v1/rag/jobs", json={"job_class": "purge", "data_boundary": "global_public_only",
                                       "params": {"older_than_seconds": 0}})
    job = wait_job(api, r.json()["id"])
    assert job["status"] == "succeeded", job
    assert [d["document_id"] for d in job["result"]["purged_documents"]] == [docs["open"]["id"]]
    assert job["result"]["indexes_excluded"] == [{"index_id": private["id"], "privacy_tier": "private"}]
    # The private index's soft-deleted document is still there to restore.
    assert api.post(f"/v1/documents/{docs['vault']['id']}/restore").status_code == 200


def test_cancel_queued_job(app_factory):
    client, ctx = app_factory(job_runner="off")
    api = Api(client, new_key(ctx))
    i = api.create_index()["id"]
    job = api.post("/v1/rag/jobs", json={"job_class": "reconcile", "index_id": i}).json()
    assert job["status"] == "queued"
    cancelled = api.post(f"/v1/rag/jobs/{job['id']}/cancel").json()
    assert cancelled["status"] == "cancelled"
    other = Api(client, new_key(ctx, "someone-else"))
    assert other.get(f"/v1/rag/jobs/{job['id']}").status_code == 404
    assert other.post(f"/v1/rag/jobs/{job['id']}/cancel").status_code == 404
