"""One contract suite for the VectorStore interface, run on both adapters:
the embedded qdrant-edge-py store and qdrant-client (local mode, same API as a
server). Whatever the services rely on has to behave the same on both."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from qdrant_client import QdrantClient

from pipelines.lexical import Bm25Params, document_vector, query_vector, tokenize
from rag_service.stores.edge import EdgeVectorStore
from rag_service.stores.qdrant_server import QdrantServerVectorStore
from pipelines.types import SparseVec
from rag_service.stores.vector import (
    DENSE,
    DOCUMENT_POINT,
    SPARSE,
    SPARSE_DOCUMENT,
    ArmQuery,
    CollectionNotFound,
    Filter,
    Match,
    MatchAny,
    Range,
    SearchRequest,
    StoreError,
    VectorPoint,
    VectorStore,
)

ALIAS = "idx_contract"
DIM = 4
NS = uuid.UUID("0b8c2a44-1f0e-4c1e-9a38-6d0d8a7f5e21")

# id -> (document_id, dense, text, meta)
DOCS: dict[str, tuple[str, list[float], str, dict]] = {
    "p1": ("d1", [1.0, 0.0, 0.0, 0.0], "Solar panels convert sunlight into electricity on the roof",
           {"team": "red", "tags": ["energy", "solar"], "year": 2019, "published": "2019-03-01T00:00:00Z"}),
    "p2": ("d1", [0.0, 1.0, 0.0, 0.0], "Wind turbines generate power on windy hills near the coast",
           {"team": "blue", "tags": ["energy", "wind"], "year": 2020, "published": "2020-06-15T00:00:00Z"}),
    "p3": ("d2", [0.0, 0.0, 1.0, 0.0], "Bread baking needs flour, water, yeast and a pinch of salt",
           {"team": "red", "tags": ["food"], "year": 2021, "published": "2021-05-01T00:00:00Z"}),
    "p4": ("d2", [0.0, 0.0, 0.0, 1.0], "Chess openings and endgame strategy explained for beginners",
           {"team": "green", "tags": ["games"], "year": 2022, "published": "2022-01-10T00:00:00Z"}),
    "p5": ("d3", [0.6, 0.8, 0.0, 0.0], "Solar farms and wind farms share the regional power grid",
           {"team": "blue", "tags": ["energy", "grid"], "year": 2023, "published": "2023-09-30T12:30:00Z"}),
}
AVG_LEN = sum(len(tokenize(t)) for _, _, t, _ in DOCS.values()) / len(DOCS)
PARAMS = Bm25Params(k1=1.2, b=0.75, avg_len=AVG_LEN)


def pid(name: str) -> str:
    """Deterministic point ids, as ingestion derives them (uuid5)."""
    return str(uuid.uuid5(NS, name))


NAME_OF = {pid(n): n for n in DOCS}


def point(name: str, live: int = 1, **extra) -> VectorPoint:
    document_id, dense, text, meta = DOCS[name]
    payload = {
        "index_id": "i1",
        "document_id": document_id,
        "version": 1,
        "ordinal": int(name[1:]),
        "name": f"{document_id}.txt",
        "live": live,
        "text": text,
        "meta": dict(meta),
        **extra,
    }
    return VectorPoint(id=pid(name), dense=list(dense), sparse=document_vector(tokenize(text), PARAMS), payload=payload)


def names(hits) -> list[str]:
    return [NAME_OF.get(h.id, h.id) for h in hits]


def make_store(kind: str, tmp_path: Path) -> VectorStore:
    if kind == "embedded":
        return EdgeVectorStore(tmp_path / "qdrant")
    return QdrantServerVectorStore(client=QdrantClient(":memory:"))


@pytest.fixture(params=["embedded", "server"])
def store(request, tmp_path) -> VectorStore:
    s = make_store(request.param, tmp_path)
    yield s
    s.close()


@pytest.fixture
def loaded(store) -> VectorStore:
    store.ensure_collection(ALIAS, DIM)
    store.upsert(ALIAS, [point(n) for n in DOCS])
    return store


def lexical(store, text: str, limit: int = 10, filter: Filter | None = None):
    return store.search(ALIAS, SearchRequest(mode="lexical", limit=limit, sparse=query_vector(text), filter=filter)).hits


def dense(store, vec: list[float], limit: int = 10, filter: Filter | None = None):
    return store.search(ALIAS, SearchRequest(mode="dense", limit=limit, dense=vec, filter=filter)).hits


# -- collections -----------------------------------------------------------


def test_ensure_collection_idempotent_exists_and_drop(store):
    assert not store.collection_exists(ALIAS)
    store.ensure_collection(ALIAS, DIM)
    assert store.collection_exists(ALIAS)
    store.upsert(ALIAS, [point("p1")])
    store.ensure_collection(ALIAS, DIM)  # second call: no error, data kept
    assert store.collection_exists(ALIAS)
    assert store.count(ALIAS) == 1

    store.drop_collection(ALIAS)
    assert not store.collection_exists(ALIAS)
    store.drop_collection(ALIAS)  # dropping a missing collection is a no-op

    store.ensure_collection(ALIAS, DIM)  # re-create after drop starts empty
    assert store.collection_exists(ALIAS)
    assert store.count(ALIAS) == 0


def test_ensure_field_index_accepts_all_kinds(loaded):
    for key, kind in (("meta.team", "keyword"), ("meta.year", "integer"), ("ordinal", "float"), ("meta.published", "datetime")):
        loaded.ensure_field_index(ALIAS, key, kind)
        loaded.ensure_field_index(ALIAS, key, kind)  # idempotent
    assert loaded.count(ALIAS, Filter(must=(Match("meta.team", "red"),))) == 2
    assert loaded.count(ALIAS, Filter(must=(Range("meta.year", gte=2021),))) == 3


# -- writes and counts -------------------------------------------------------


def test_upsert_and_count(loaded):
    assert loaded.count(ALIAS) == 5
    assert loaded.count(ALIAS, None) == 5
    assert loaded.count(ALIAS, Filter()) == 5
    assert loaded.count(ALIAS, Filter(must=(Match("document_id", "d1"),))) == 2
    assert loaded.count(ALIAS, Filter(must=(Match("document_id", "d3"),))) == 1
    assert loaded.count(ALIAS, Filter(must=(Match("document_id", "nope"),))) == 0
    assert loaded.count(ALIAS, Filter(must_not=(Match("document_id", "d1"),))) == 3
    assert loaded.count(ALIAS, Filter(must=(Match("document_id", "d2"), Match("meta.team", "red")))) == 1


def test_upsert_empty_list_is_a_noop(loaded):
    loaded.upsert(ALIAS, [])
    loaded.update_sparse(ALIAS, [])
    assert loaded.count(ALIAS) == 5


def test_reupsert_same_id_does_not_duplicate(loaded):
    again = point("p1", extra_field="second write")
    loaded.upsert(ALIAS, [again, point("p2")])
    assert loaded.count(ALIAS) == 5
    hits = dense(loaded, [1.0, 0.0, 0.0, 0.0], limit=1)
    assert names(hits) == ["p1"]
    assert hits[0].payload["extra_field"] == "second write"


def test_set_payload_by_filter_flips_live(loaded):
    live = Filter(must=(Match("live", 1),))
    assert loaded.count(ALIAS, live) == 5
    loaded.set_payload(ALIAS, Filter(must=(Match("document_id", "d1"),)), {"live": 0})
    assert loaded.count(ALIAS, live) == 3
    assert loaded.count(ALIAS, Filter(must=(Match("live", 0),))) == 2
    # set_payload merges: the rest of the payload is untouched.
    assert loaded.count(ALIAS, Filter(must=(Match("document_id", "d1"), Match("meta.team", "red")))) == 1

    hits = dense(loaded, [1.0, 0.0, 0.0, 0.0], filter=live)
    assert {"p1", "p2"}.isdisjoint(names(hits))
    assert sorted(names(hits)) == ["p3", "p4", "p5"]
    assert all(h.payload["live"] == 1 for h in hits)
    assert "p1" not in names(lexical(loaded, "solar panels", filter=live))

    loaded.set_payload(ALIAS, Filter(must=(Match("document_id", "d1"),)), {"live": 1})
    assert loaded.count(ALIAS, live) == 5


def test_delete_by_filter(loaded):
    loaded.delete(ALIAS, Filter(must=(Match("document_id", "d2"),)))
    assert loaded.count(ALIAS, Filter(must=(Match("document_id", "d2"),))) == 0
    assert loaded.count(ALIAS) == 3
    assert {"p3", "p4"}.isdisjoint(names(dense(loaded, [0.0, 0.0, 1.0, 0.0])))
    assert lexical(loaded, "bread flour yeast") == []


# -- search ------------------------------------------------------------------


def test_dense_search_nearest_first(loaded):
    for vec, expected in (
        ([1.0, 0.0, 0.0, 0.0], "p1"),
        ([0.0, 0.9, 0.1, 0.0], "p2"),
        ([0.1, 0.0, 1.0, 0.0], "p3"),
        ([0.0, 0.0, 0.0, 2.0], "p4"),
        ([0.5, 0.5, 0.0, 0.0], "p5"),
    ):
        hits = dense(loaded, vec, limit=3)
        assert names(hits)[0] == expected, (vec, names(hits))
        assert len(hits) == 3
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    top = dense(loaded, [1.0, 0.0, 0.0, 0.0], limit=1)[0]
    assert top.score == pytest.approx(1.0, abs=1e-5)  # cosine
    assert top.payload["document_id"] == "d1"
    assert top.payload["meta"]["tags"] == ["energy", "solar"]


def test_lexical_search_best_match_first(loaded):
    for query, expected in (
        ("solar panels on the roof", "p1"),
        ("windy hills", "p2"),
        ("baking bread with yeast", "p3"),
        ("chess endgame", "p4"),
        ("power grid", "p5"),
    ):
        hits = lexical(loaded, query)
        assert names(hits)[0] == expected, (query, names(hits))
        assert all(h.score > 0 for h in hits)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    # Only points sharing a term come back.
    assert sorted(names(lexical(loaded, "wind"))) == ["p2", "p5"]
    assert lexical(loaded, "submarine") == []
    # A query with no tokens (stop words only) returns nothing instead of failing.
    assert lexical(loaded, "the and of") == []


def test_hybrid_search(loaded):
    req = SearchRequest(mode="hybrid", limit=3, dense=[1.0, 0.0, 0.0, 0.0], sparse=query_vector("solar panels sunlight"))
    res = loaded.search(ALIAS, req)
    assert names(res.hits)[0] == "p1"
    assert len(res.hits) == 3
    assert res.dense == [] and res.lexical == []

    # Dense and lexical disagree (each prefetch keeps only its own best point);
    # the weighted-up side wins the fusion.
    req = SearchRequest(mode="hybrid", limit=1, prefetch_limit=1, dense=[0.0, 0.0, 0.0, 1.0],
                        sparse=query_vector("bread baking yeast flour"), weights=(0.1, 1.0))
    assert names(loaded.search(ALIAS, req).hits)[0] == "p3"
    req.weights = (1.0, 0.1)
    assert names(loaded.search(ALIAS, req).hits)[0] == "p4"

    # A query without lexical tokens falls back to dense only.
    req = SearchRequest(mode="hybrid", limit=2, dense=[0.0, 0.0, 1.0, 0.0], sparse=query_vector("the of and"))
    assert names(loaded.search(ALIAS, req).hits)[0] == "p3"


def test_hybrid_with_components(loaded):
    req = SearchRequest(mode="hybrid", limit=2, dense=[0.0, 1.0, 0.0, 0.0], sparse=query_vector("solar farms grid"),
                        with_components=True)
    res = loaded.search(ALIAS, req)
    assert len(res.hits) == 2
    assert names(res.dense)[0] == "p2"
    assert names(res.lexical)[0] == "p5"
    assert len(res.dense) == 5  # components use the prefetch limit, not the final limit
    assert set(names(res.lexical)) == {"p1", "p5"}
    assert names(res.hits)[0] in {"p2", "p5"}
    assert {"p2", "p5"} <= set(names(loaded.search(ALIAS, SearchRequest(
        mode="hybrid", limit=5, dense=req.dense, sparse=req.sparse)).hits))

    # Components honour the filter too.
    req.filter = Filter(must=(Match("meta.team", "red"),))
    res = loaded.search(ALIAS, req)
    assert set(names(res.dense)) == {"p1", "p3"}
    assert names(res.lexical) == ["p1"]
    assert set(names(res.hits)) <= {"p1", "p3"}

    # No lexical tokens: empty lexical component, dense still there.
    req = SearchRequest(mode="hybrid", limit=2, dense=[0.0, 1.0, 0.0, 0.0], sparse=query_vector("the"), with_components=True)
    res = loaded.search(ALIAS, req)
    assert res.lexical == []
    assert names(res.dense)[0] == "p2"
    assert names(res.hits)[0] == "p2"


def test_hybrid_applies_filter_to_fused_hits(loaded):
    f = Filter(must=(Match("document_id", "d2"),))
    req = SearchRequest(mode="hybrid", limit=5, dense=[1.0, 0.0, 0.0, 0.0], sparse=query_vector("solar chess"), filter=f)
    assert set(names(loaded.search(ALIAS, req).hits)) <= {"p3", "p4"}
    assert "p4" in names(loaded.search(ALIAS, req).hits)


# -- filters -----------------------------------------------------------------


@pytest.mark.parametrize(
    "condition, expected",
    [
        (Match("meta.team", "red"), {"p1", "p3"}),
        (Match("name", "d2.txt"), {"p3", "p4"}),
        (Match("meta.year", 2020), {"p2"}),
        (Match("meta.tags", "energy"), {"p1", "p2", "p5"}),
        (MatchAny("meta.tags", ("food", "games")), {"p3", "p4"}),
        (MatchAny("meta.tags", ("wind", "grid", "nothing")), {"p2", "p5"}),
        (MatchAny("meta.team", ("green", "blue")), {"p2", "p4", "p5"}),
        (MatchAny("ordinal", (1, 4)), {"p1", "p4"}),
        (Range("meta.year", gte=2020, lt=2022), {"p2", "p3"}),
        (Range("meta.year", gt=2021), {"p4", "p5"}),
        (Range("meta.year", lte=2019.5), {"p1"}),
        (Range("meta.published", gte="2021-05-01T00:00:00Z", is_datetime=True), {"p3", "p4", "p5"}),
        (Range("meta.published", gt="2021-05-01T00:00:00Z", lt="2023-01-01T00:00:00Z", is_datetime=True), {"p4"}),
        (Range("meta.published", lte="2020-06-15T00:00:00Z", is_datetime=True), {"p1", "p2"}),
        (Range("meta.published", gte="2023-09-30T12:00:00Z", is_datetime=True), {"p5"}),
    ],
    ids=lambda v: repr(v) if not isinstance(v, set) else "",
)
def test_filters(loaded, condition, expected):
    f = Filter(must=(condition,))
    assert loaded.count(ALIAS, f) == len(expected)
    assert set(names(dense(loaded, [0.5, 0.5, 0.5, 0.5], filter=f))) == expected
    assert set(names(lexical(loaded, "solar wind bread chess power", filter=f))) <= expected
    req = SearchRequest(mode="hybrid", limit=10, dense=[0.5, 0.5, 0.5, 0.5], sparse=query_vector("solar wind bread chess"), filter=f)
    assert set(names(loaded.search(ALIAS, req).hits)) == expected
    # must_not is the complement.
    assert set(names(dense(loaded, [0.5, 0.5, 0.5, 0.5], filter=Filter(must_not=(condition,))))) == set(DOCS) - expected


def test_filters_combine_with_and(loaded):
    f = Filter(must=(MatchAny("meta.tags", ("energy",)),)).and_(Range("meta.year", gte=2020), Match("meta.team", "blue"))
    assert set(names(dense(loaded, [0.5, 0.5, 0.5, 0.5], filter=f))) == {"p2", "p5"}
    f = Filter(must=(Match("live", 1),), must_not=(Match("document_id", "d1"),)).and_(Range("meta.year", lt=2023))
    assert set(names(dense(loaded, [0.5, 0.5, 0.5, 0.5], filter=f))) == {"p3", "p4"}


def test_filter_is_applied_inside_the_search(store):
    """A selective filter still yields every match when the limit allows, even
    though the unfiltered nearest neighbours are all other points."""
    store.ensure_collection(ALIAS, DIM)
    sparse = document_vector(tokenize("common words about many things"), PARAMS)
    fillers = [
        VectorPoint(id=pid(f"filler{i}"), dense=[1.0, 0.01 * i, 0.0, 0.0], sparse=sparse,
                    payload={"document_id": f"f{i}", "live": 1, "meta": {"team": "crowd"}})
        for i in range(200)
    ]
    rare_sparse = document_vector(tokenize("rare words about things"), PARAMS)
    rare = [
        VectorPoint(id=pid(f"rare{i}"), dense=[0.0, 0.0, 1.0, 0.1 * i], sparse=rare_sparse,
                    payload={"document_id": f"r{i}", "live": 1, "meta": {"team": "rare"}})
        for i in range(3)
    ]
    store.upsert(ALIAS, fillers + rare)
    f = Filter(must=(Match("meta.team", "rare"),))
    want = {pid(f"rare{i}") for i in range(3)}

    hits = store.search(ALIAS, SearchRequest(mode="dense", limit=10, dense=[1.0, 0.0, 0.0, 0.0], filter=f)).hits
    assert {h.id for h in hits} == want
    hits = store.search(ALIAS, SearchRequest(mode="lexical", limit=10, sparse=query_vector("common words things"), filter=f)).hits
    assert {h.id for h in hits} == want
    res = store.search(ALIAS, SearchRequest(mode="hybrid", limit=10, dense=[1.0, 0.0, 0.0, 0.0],
                                            sparse=query_vector("common words things"), filter=f, prefetch_limit=5,
                                            with_components=True))
    assert {h.id for h in res.hits} == want
    assert {h.id for h in res.dense} == want
    assert {h.id for h in res.lexical} == want


# -- sparse updates ----------------------------------------------------------


def test_update_sparse_changes_lexical_ranking(loaded):
    assert names(lexical(loaded, "solar"))[0] in {"p1", "p5"}
    assert "p4" not in names(lexical(loaded, "solar"))
    loaded.update_sparse(ALIAS, [(pid("p4"), document_vector(tokenize("solar solar solar"), PARAMS))])
    hits = lexical(loaded, "solar")
    assert names(hits)[0] == "p4"
    assert "chess" not in tokenize("solar solar solar")
    assert "p4" not in names(lexical(loaded, "chess endgame"))
    # Only the sparse vector changed: dense vector and payload are intact.
    assert names(dense(loaded, [0.0, 0.0, 0.0, 1.0], limit=1)) == ["p4"]
    assert hits[0].payload["document_id"] == "d2"
    assert loaded.count(ALIAS) == 5


def test_update_sparse_reweights_with_new_avg_len(loaded):
    """Re-weighting every point (what a re-computed avg_len does) keeps the ranking sane."""
    params = Bm25Params(k1=1.2, b=0.75, avg_len=AVG_LEN * 2)
    loaded.update_sparse(ALIAS, [(pid(n), document_vector(tokenize(DOCS[n][2]), params)) for n in DOCS])
    assert names(lexical(loaded, "windy hills"))[0] == "p2"
    assert loaded.count(ALIAS) == 5


# -- persistence and store lifecycle -----------------------------------------


def test_embedded_persists_across_reopen(tmp_path):
    root = tmp_path / "qdrant"
    s = EdgeVectorStore(root)
    s.ensure_collection(ALIAS, DIM)
    s.ensure_collection("other", DIM)
    s.upsert(ALIAS, [point(n) for n in DOCS])
    s.set_payload(ALIAS, Filter(must=(Match("document_id", "d3"),)), {"live": 0})
    before = [(h.id, round(h.score, 5)) for h in lexical(s, "solar wind power")]
    s.close()

    s2 = EdgeVectorStore(root)
    try:
        assert s2.collection_exists(ALIAS)
        assert s2.collection_exists("other")
        assert s2.count(ALIAS) == 5
        assert s2.count(ALIAS, Filter(must=(Match("live", 1),))) == 4
        assert s2.count("other") == 0
        assert names(dense(s2, [1.0, 0.0, 0.0, 0.0], limit=1)) == ["p1"]
        assert [(h.id, round(h.score, 5)) for h in lexical(s2, "solar wind power")] == before
        # Still writable after the reopen.
        s2.delete(ALIAS, Filter(must=(Match("document_id", "d1"),)))
        assert s2.count(ALIAS) == 3
        s2.drop_collection("other")
    finally:
        s2.close()

    s3 = EdgeVectorStore(root)
    try:
        assert s3.count(ALIAS) == 3
        assert not s3.collection_exists("other")
    finally:
        s3.close()


def test_closed_store_is_unavailable(tmp_path):
    from rag_service.stores.vector import StoreUnavailable

    s = EdgeVectorStore(tmp_path / "qdrant")
    s.ensure_collection(ALIAS, DIM)
    s.ping()
    s.close()
    with pytest.raises(StoreUnavailable):
        s.ping()
    with pytest.raises(StoreUnavailable):
        s.count(ALIAS)


def test_ping(store):
    store.ping()


def test_unknown_alias_raises_the_one_store_error_type(store):
    # Both adapters subclass the declared interface and report failures as StoreError.
    assert isinstance(store, VectorStore)
    for call in (lambda: store.count("missing"), lambda: store.upsert("missing", [point(next(iter(DOCS)))]),
                 lambda: store.search("missing", SearchRequest(mode="dense", limit=1, dense=[1.0, 0, 0, 0]))):
        with pytest.raises(CollectionNotFound) as err:
            call()
        assert isinstance(err.value, StoreError)


def test_a_payload_index_is_created_once_per_collection_and_key(loaded, monkeypatch):
    calls = []
    original = type(loaded).create_field_index
    monkeypatch.setattr(type(loaded), "create_field_index",
                        lambda self, alias, key, kind: calls.append(key) or original(self, alias, key, kind))
    for _ in range(3):
        loaded.ensure_field_index(ALIAS, "meta.team", "keyword")
    assert calls == ["meta.team"]


# -- both adapters rank alike --------------------------------------------------


def _canonical(hits) -> list[tuple[str, float]]:
    # Equal scores may come back in either order; sort ties by id.
    return sorted(((h.id, round(h.score, 4)) for h in hits), key=lambda x: (-x[1], x[0]))


EXTRA_TEXTS = [
    "Solar power prices fell sharply as panel factories scaled up",
    "The old mill used water power to grind flour for bread",
    "Wind and solar together reduce reliance on coal power plants",
    "A chess clock keeps both players honest about time",
    "Yeast ferments sugar into gas, which makes bread rise",
    "Grid operators balance power supply and demand every second",
]
CROSS_QUERIES = ["solar power", "bread flour yeast", "wind grid", "power power plants", "chess time", "panels",
                 "water mill", "solar solar wind"]


def _cross_points() -> list[VectorPoint]:
    return [point(n) for n in DOCS] + [
        VectorPoint(id=pid(f"x{i}"), dense=[0.25, 0.25, 0.25, 0.25], sparse=document_vector(tokenize(t), PARAMS),
                    payload={"document_id": f"x{i}", "live": 1, "meta": {"team": "red" if i % 2 else "blue"}})
        for i, t in enumerate(EXTRA_TEXTS)
    ]


def _assert_same_lexical(stores, queries) -> None:
    for q in queries:
        for f in (None, Filter(must=(Match("meta.team", "red"),)), Filter(must=(Match("live", 1),))):
            results = [_canonical(lexical(s, q, limit=20, filter=f)) for s in stores]
            assert results[0], q
            assert [i for i, _ in results[0]] == [i for i, _ in results[1]], (q, f)
            assert [sc for _, sc in results[0]] == pytest.approx([sc for _, sc in results[1]], rel=1e-4), (q, f)


def test_adapters_rank_lexical_identically(tmp_path):
    stores = [make_store("embedded", tmp_path), make_store("server", tmp_path)]
    try:
        for s in stores:
            s.ensure_collection(ALIAS, DIM)
            s.upsert(ALIAS, _cross_points())
        _assert_same_lexical(stores, CROSS_QUERIES)

        # Soft delete (live=0, what replacing a document does first), a re-upsert
        # of the same ids and a sparse re-weighting keep both in step.
        params = Bm25Params(k1=1.2, b=0.75, avg_len=AVG_LEN * 1.5)
        for s in stores:
            s.set_payload(ALIAS, Filter(must=(Match("document_id", "d2"),)), {"live": 0})
            s.upsert(ALIAS, [point("p1"), point("p5")])
            s.update_sparse(ALIAS, [(pid(n), document_vector(tokenize(DOCS[n][2]), params)) for n in ("p1", "p2")])
        _assert_same_lexical(stores, CROSS_QUERIES)
    finally:
        for s in stores:
            s.close()


@pytest.mark.xfail(
    reason="IDF diverges after a hard delete: qdrant-edge keeps counting deleted points in N and df "
    "(until segments are vacuumed), qdrant-client local mode counts only the remaining points",
    strict=False,
)
def test_adapters_rank_lexical_identically_after_delete(tmp_path):
    def pt(key: str, text: str, document_id: str) -> VectorPoint:
        return VectorPoint(id=pid(key), dense=[1.0, 0.0, 0.0, 0.0], sparse=document_vector(tokenize(text), PARAMS),
                           payload={"document_id": document_id, "live": 1})

    points = [pt("A", "solar solar solar wind", "A"), pt("B", "solar wind wind wind", "B")]
    points += [pt(f"F{i}", f"solar filler{i}", "F") for i in range(4)] + [pt("W", "wind other", "W")]
    stores = [make_store("embedded", tmp_path), make_store("server", tmp_path)]
    try:
        for s in stores:
            s.ensure_collection(ALIAS, DIM)
            s.upsert(ALIAS, points)
        rankings = [[h.payload["document_id"] for h in lexical(s, "solar wind", limit=2)] for s in stores]
        assert rankings[0] == rankings[1] == ["B", "A"]  # wind is rarer than solar
        for s in stores:
            s.delete(ALIAS, Filter(must=(Match("document_id", "F"),)))  # now solar is the rarer term
        rankings = [[h.payload["document_id"] for h in lexical(s, "solar wind", limit=2)] for s in stores]
        assert rankings[0] == rankings[1], f"embedded={rankings[0]} server={rankings[1]}"
    finally:
        for s in stores:
            s.close()


# -- document points and retrieval arms (document search) --------------------


def _with_document_points(store) -> None:
    """Beside the chunks, one whole-document BM25 point per document (no dense vector)."""
    texts: dict[str, list[str]] = {}
    for _, (document_id, _, text, _) in DOCS.items():
        texts.setdefault(document_id, []).append(text)
    store.upsert(ALIAS, [VectorPoint(id=pid(f"doc-{d}"), dense=None, sparse=None,
                                     payload={"document_id": d, "version": 1, "live": 1, "kind": "document"},
                                     document_sparse=document_vector(tokenize(" ".join(t)), PARAMS))
                         for d, t in texts.items()])


def test_document_points_answer_only_document_queries(loaded):
    _with_document_points(loaded)
    assert loaded.count(ALIAS) == len(DOCS) + 3
    assert loaded.count(ALIAS, Filter(must_not=(DOCUMENT_POINT,))) == len(DOCS)
    # Chunk queries never meet them: they have no dense and no chunk BM25 vector.
    assert set(names(dense(loaded, [1.0, 1.0, 1.0, 1.0]))) == set(DOCS)
    assert set(names(lexical(loaded, "solar wind power bread chess"))) <= set(DOCS)
    arms = loaded.query_arms(ALIAS, [
        ArmQuery(SPARSE_DOCUMENT, query_vector("solar wind"), 10),
        ArmQuery(DENSE, [0.0, 0.0, 1.0, 0.0], 2, Filter(must=(Match("live", 1),))),
        ArmQuery(SPARSE, query_vector("bread"), 10, payload=("document_id",)),
    ])
    assert sorted(h.payload["document_id"] for h in arms[0]) == ["d1", "d3"]  # d2 has neither word
    assert len(arms[1]) == 2 and names(arms[1])[0] == "p3"
    assert names(arms[2]) == ["p3"] and arms[2][0].payload == {"document_id": "d2"}
    # Stored vectors come back by id: dense for chunks, the document weights for document points.
    got = loaded.point_vectors(ALIAS, [pid("p1"), pid("doc-d1"), pid("missing")], DENSE)
    assert list(got) == [pid("p1")] and got[pid("p1")] == pytest.approx([1.0, 0.0, 0.0, 0.0])
    doc = loaded.point_vectors(ALIAS, [pid("doc-d1")], SPARSE_DOCUMENT)[pid("doc-d1")]
    assert doc.indices and len(doc.indices) == len(doc.values)
    loaded.update_sparse(ALIAS, [(pid("doc-d1"), SparseVec([7], [1.5]))], using=SPARSE_DOCUMENT)
    assert loaded.point_vectors(ALIAS, [pid("doc-d1")], SPARSE_DOCUMENT)[pid("doc-d1")] == SparseVec([7], [1.5])
    # Flags and deletes by document reach its document point as well.
    loaded.set_payload(ALIAS, Filter(must=(Match("document_id", "d1"),)), {"live": 0})
    assert loaded.count(ALIAS, Filter(must=(Match("document_id", "d1"), Match("live", 0)))) == 3
    loaded.delete(ALIAS, Filter(must=(Match("document_id", "d1"),)))
    assert loaded.count(ALIAS, Filter(must=(Match("document_id", "d1"),))) == 0
