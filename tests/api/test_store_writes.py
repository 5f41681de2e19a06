"""Issue 11: an upload writes to the vector store once per chunk batch, not in several
set_payload rounds, and what it writes never serves stale text."""

from __future__ import annotations

from rag_service.services.ingestion import IngestionService
from rag_service.stores.vector import DOCUMENT_POINT, Filter, Match, StoreUnavailable
from tests.conftest import Api, new_key


def _spy_writes(ctx, monkeypatch) -> list[str]:
    calls: list[str] = []
    for name in ("upsert", "set_payload", "delete"):
        real = getattr(ctx.vectors, name)

        def spy(*args, _real=real, _name=name, **kwargs):
            calls.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(ctx.vectors, name, spy)
    return calls


def _texts(api, query, index_id):
    return [(h["document_name"], h["version"], h["text"]) for h in
            api.search(query, index_id, top_k=10).json()["results"]]


def test_a_new_document_is_one_store_write_and_a_new_version_one_more(app_factory, monkeypatch):
    client, ctx = app_factory()
    api = Api(client, new_key(ctx))
    index_id = api.create_index()["id"]
    calls = _spy_writes(ctx, monkeypatch)
    assert api.upload(index_id, "kelp.txt", b"Kelp forests grow half a metre a day.", name="kelp").status_code == 201
    assert calls == ["upsert"]  # no flag flips for a new document
    assert [v for _, v, _ in _texts(api, "kelp forests grow", index_id)] == [1]

    calls.clear()
    r = api.upload(index_id, "kelp.txt", b"Kelp forests shelter sea otters.", name="kelp")
    assert r.status_code == 201 and r.json()["version"] == 2
    assert calls == ["upsert", "set_payload"]  # the new points, then the old ones go dark
    hits = _texts(api, "kelp forests", index_id)
    assert hits and all(v == 2 and "otters" in t for _, v, t in hits)
    alias = api.get(f"/v1/indexes/{index_id}").json()["collection_alias"]
    live_v1 = Filter(must=(Match("name", "kelp"), Match("version", 1), Match("live", 1)))
    assert ctx.vectors.count(alias, live_v1) == 0


def test_a_version_that_fails_after_its_points_were_written_leaves_none_behind(app_factory, monkeypatch):
    client, ctx = app_factory()
    api = Api(client, new_key(ctx))
    index_id = api.create_index()["id"]
    assert api.upload(index_id, "reef.txt", b"Coral reefs cover one percent of the sea floor.", name="reef").status_code == 201
    real_upsert = ctx.vectors.upsert

    def upsert_then_connection_drops(*args, **kwargs):
        real_upsert(*args, **kwargs)  # the points are in, written live
        raise StoreUnavailable("connection reset after the write (simulated)")

    monkeypatch.setattr(ctx.vectors, "upsert", upsert_then_connection_drops)
    r = api.upload(index_id, "reef.txt", b"Coral reefs bleach in warm water.", name="reef")
    assert r.status_code == 503 and r.json()["code"] == "retrieval_unavailable"
    monkeypatch.setattr(ctx.vectors, "upsert", real_upsert)
    alias = api.get(f"/v1/indexes/{index_id}").json()["collection_alias"]
    assert ctx.vectors.count(alias, Filter(must=(Match("name", "reef"), Match("version", 2)))) == 0
    hits = _texts(api, "coral reefs bleach warm", index_id)
    assert hits and all(v == 1 and "floor" in t for _, v, t in hits)
    versions = api.get(f"/v1/indexes/{index_id}/documents/by-name/reef/versions").json()["items"]
    assert sorted((v["version"], v["status"]) for v in versions) == [(1, "ready"), (2, "failed")]


def test_reconcile_drops_the_points_a_failed_version_could_not_remove(app_factory, monkeypatch):
    from tests.api.test_rag import wait_job

    client, ctx = app_factory()
    api = Api(client, new_key(ctx))
    index_id = api.create_index()["id"]
    doc_id = api.upload(index_id, "reef.txt", b"Coral reefs cover one percent of the sea floor.", name="reef").json()["id"]
    real_upsert = ctx.vectors.upsert

    def upsert_then_connection_drops(*args, **kwargs):
        real_upsert(*args, **kwargs)
        raise StoreUnavailable("connection reset after the write (simulated)")

    monkeypatch.setattr(ctx.vectors, "upsert", upsert_then_connection_drops)
    monkeypatch.setattr(IngestionService, "_drop_points", lambda *a, **k: None)  # the store is still away
    assert api.upload(index_id, "reef.txt", b"Coral reefs bleach in warm water.", name="reef").status_code == 503
    monkeypatch.undo()
    alias = api.get(f"/v1/indexes/{index_id}").json()["collection_alias"]
    failed_points = Filter(must=(Match("name", "reef"), Match("version", 2)))
    assert ctx.vectors.count(alias, failed_points) > 0
    job = api.post("/v1/rag/jobs", json={"job_class": "reconcile", "index_id": index_id}).json()
    report = wait_job(api, job["id"])["result"]
    assert {"document_id": doc_id, "version": 2, "action": "points dropped"} in report["fixed"]
    assert ctx.vectors.count(alias, failed_points) == 0


def test_the_bm25_mean_is_checked_once_per_share_of_the_index_not_per_upload():
    svc = IngestionService.__new__(IngestionService)
    svc._bm25_checks = {}
    assert svc._bm25_check_due("i", 5)  # never checked: check
    svc._bm25_checks["i"] = [0.0, 10_000.0]  # as live_mean_tokens leaves it: 10k live chunks
    assert not svc._bm25_check_due("i", 100)  # 100 of 10k new: not yet
    assert not svc._bm25_check_due("i", 99)
    assert svc._bm25_check_due("i", 1)  # 200 = 2% of the index
    svc._bm25_checks["i"] = [0.0, 10.0]
    assert svc._bm25_check_due("i", 1)  # a small index is checked on every upload
    assert svc._bm25_check_due("i", None)  # unknown size of change: check


def test_points_written_live_are_not_served_before_their_version_is_promoted(app_factory, monkeypatch):
    """Between the upsert (points flagged live) and the SQL promotion, search serves version 1
    only, in every mode."""
    import threading

    client, ctx = app_factory()
    api = Api(client, new_key(ctx))
    index_id = api.create_index()["id"]
    assert api.upload(index_id, "menu.txt", b"Today's special is the mushroom risotto.", name="menu").status_code == 201
    written, release = threading.Event(), threading.Event()
    real_promote = IngestionService.promote

    def held_promote(self, *args, **kwargs):
        written.set()
        assert release.wait(30)
        return real_promote(self, *args, **kwargs)

    monkeypatch.setattr(IngestionService, "promote", held_promote)
    result = {}
    worker = threading.Thread(target=lambda: result.setdefault(
        "r", api.upload(index_id, "menu.txt", b"Today's special is the grilled salmon risotto.", name="menu")))
    worker.start()
    try:
        assert written.wait(30)
        alias = api.get(f"/v1/indexes/{index_id}").json()["collection_alias"]
        assert ctx.vectors.count(alias, Filter(must=(Match("version", 2), Match("live", 1)), must_not=(DOCUMENT_POINT,))) == 1  # in, live
        for mode in ("dense", "lexical", "hybrid"):
            hits = api.search("today's special salmon risotto", index_id, mode=mode).json()["results"]
            assert [(h["version"], "mushroom" in h["text"]) for h in hits] == [(1, True)], (mode, hits)
    finally:
        release.set()
        worker.join(30)
    assert result["r"].status_code == 201
    hits = api.search("today's special salmon", index_id).json()["results"]
    assert [(h["version"], "salmon" in h["text"]) for h in hits] == [(2, True)]


def test_a_stale_flag_sync_never_darkens_a_newer_version_still_being_written(app_factory, monkeypatch):
    """Concurrent uploads of one document: v1's flag sync reads current_version=1 while v2's points
    are already written live, and finishes only after v2 is promoted. v2 must stay searchable."""
    client, ctx = app_factory()
    api = Api(client, new_key(ctx))
    index_id = api.create_index()["id"]
    assert api.upload(index_id, "tide.txt", b"Spring tides follow the new moon.", name="tide").status_code == 201
    ingestion = IngestionService(ctx)
    real_promote = IngestionService.promote

    def promote_after_a_stale_sync(self, index, document_id, version_id, version, **kwargs):
        ingestion.sync_live_flags(index, document_id)  # what v1's sync does with current_version still 1
        return real_promote(self, index, document_id, version_id, version, **kwargs)

    monkeypatch.setattr(IngestionService, "promote", promote_after_a_stale_sync)
    r = api.upload(index_id, "tide.txt", b"Neap tides follow the half moon.", name="tide")
    assert r.status_code == 201 and r.json()["version"] == 2
    assert [v for _, v, _ in _texts(api, "tides follow the moon", index_id)] == [2]
