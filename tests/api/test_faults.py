"""Store outages: the database or the vector store goes away, and comes back.

Each outage is real at the driver level: the database refuses new connections
(every pooled one is dropped first), the vector store raises the adapter's own
StoreUnavailable. The checks are what a client would see: a 503 with Retry-After,
no half-indexed version in search, nothing acknowledged lost afterwards.
"""

from __future__ import annotations

from contextlib import contextmanager

from sqlalchemy import event, exc

from rag_service.stores.vector import StoreUnavailable
from tests.conftest import Api, new_key


class DatabaseOutage:
    def __init__(self, ctx) -> None:
        self.engine = ctx.db.engine
        self.down = False
        event.listen(self.engine, "do_connect", self._connect)
        # A connection checked out by a background thread (job runners, warm-up) while the pool is
        # disposed comes back afterwards: a dead server kills those too, so refuse them on checkout.
        event.listen(self.engine.pool, "checkout", self._checkout)

    def _checkout(self, dbapi_conn, conn_rec, conn_proxy):
        if self.down:
            raise exc.DisconnectionError("server closed the connection (simulated)")

    def _connect(self, dialect, conn_rec, cargs, cparams):
        if self.down:
            raise dialect.loaded_dbapi.OperationalError("could not connect to server: Connection refused (simulated)")
        return None  # connect normally

    def start(self) -> None:
        self.down = True
        self.engine.pool.dispose()  # open connections die with the server

    def stop(self) -> None:
        self.down = False

    @contextmanager
    def during(self):
        self.start()
        try:
            yield
        finally:
            self.stop()


def _hits(api: Api, query: str, index_id: str, mode: str = "lexical") -> list[tuple[str, int]]:
    r = api.search(query, index_id, mode=mode)
    assert r.status_code == 200, r.text
    return [(h["text"], h["version"]) for h in r.json()["results"]]


def test_database_down_is_503_and_nothing_is_lost(app_factory):
    client, ctx = app_factory()
    api = Api(client, new_key(ctx))
    index_id = api.create_index()["id"]
    doc = api.upload(index_id, "plan.txt", b"The walrus budget was approved in March.").json()
    outage = DatabaseOutage(ctx)
    with outage.during():
        for r in (api.get("/v1/indexes"), api.search("walrus", index_id),
                  api.upload(index_id, "plan.txt", b"The walrus budget was cut in April.")):
            assert r.status_code == 503 and r.json()["code"] == "retrieval_unavailable", r.text
            assert int(r.headers["Retry-After"]) > 0
        status = client.get("/v1/rag/status").json()
        assert status["status"] == "degraded"
    assert [v for _, v in _hits(api, "walrus budget", index_id)] == [1]
    versions = api.get(f"/v1/indexes/{index_id}/documents/by-name/plan.txt/versions").json()
    assert [v["version"] for v in versions["items"]] == [1] and doc["version"] == 1


def test_database_lost_mid_ingest_leaves_no_visible_half_version(app_factory, monkeypatch):
    """Points of the new version are written (live=0), then the database dies before
    the version is promoted: search never shows them, and a retry succeeds."""
    client, ctx = app_factory()
    api = Api(client, new_key(ctx))
    index_id = api.create_index()["id"]
    assert api.upload(index_id, "memo.txt", b"The heron project ships on Tuesday.").status_code == 201
    outage = DatabaseOutage(ctx)
    real_upsert = ctx.vectors.upsert

    def upsert_then_database_dies(*args, **kwargs):
        real_upsert(*args, **kwargs)
        outage.start()

    monkeypatch.setattr(ctx.vectors, "upsert", upsert_then_database_dies)
    r = api.upload(index_id, "memo.txt", b"The heron project slips to Friday.")
    assert r.status_code == 503 and r.json()["code"] == "retrieval_unavailable"
    monkeypatch.setattr(ctx.vectors, "upsert", real_upsert)
    outage.stop()

    for mode in ("dense", "lexical", "hybrid"):
        hits = _hits(api, "heron project Friday slips", index_id, mode)
        assert hits and all(v == 1 and "Tuesday" in text for text, v in hits), (mode, hits)
    doc = api.get(f"/v1/indexes/{index_id}/documents/by-name/memo.txt").json()
    assert doc["current_version"] == 1
    # The client retries the same bytes: that is a new upload, not "unchanged" against the stranded version.
    retry = api.upload(index_id, "memo.txt", b"The heron project slips to Friday.")
    assert retry.status_code == 201, retry.text
    assert [(("Friday" in t), v) for t, v in _hits(api, "heron project Friday", index_id)] == [(True, retry.json()["version"])]


def test_vector_store_down_upload_fails_cleanly_and_keeps_the_old_version(app_factory, monkeypatch):
    client, ctx = app_factory()
    api = Api(client, new_key(ctx))
    index_id = api.create_index()["id"]
    assert api.upload(index_id, "notes.txt", b"Otters hold hands while sleeping.").status_code == 201

    def down(*args, **kwargs):
        raise StoreUnavailable("connection refused (simulated)")

    monkeypatch.setattr(ctx.vectors, "upsert", down)
    monkeypatch.setattr(ctx.vectors, "search", down)
    r = api.upload(index_id, "notes.txt", b"Otters use rocks as tools.")
    assert r.status_code == 503 and r.json()["code"] == "retrieval_unavailable" and r.headers["Retry-After"]
    assert api.search("otters", index_id).status_code == 503
    monkeypatch.undo()  # the store comes back

    hits = _hits(api, "otters hands sleeping", index_id)
    assert hits and all(v == 1 and "hands" in t for t, v in hits)
    versions = api.get(f"/v1/indexes/{index_id}/documents/by-name/notes.txt/versions").json()["items"]
    assert [(v["version"], v["status"]) for v in versions] == [(1, "ready"), (2, "failed")]
    retry = api.upload(index_id, "notes.txt", b"Otters use rocks as tools.")
    assert retry.status_code == 201 and retry.json()["version"] == 3
    assert _hits(api, "otters rocks tools", index_id)[0][1] == 3
