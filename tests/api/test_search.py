"""Search: modes, document grouping, the stale rule, filters, errors, rerank."""

import json
import threading

import pytest

from rag_service.stores.vector import Filter, Match, StoreUnavailable
from tests.conftest import Api, new_key

CORPUS = {
    "volcano.md": "# Volcanoes\n\nMount Etna is an active stratovolcano on the east coast of Sicily. Lava flows reach the sea.",
    "coffee.txt": "Espresso is brewed by forcing hot water through finely ground coffee beans under pressure.",
    "whales.html": "<h1>Whales</h1><p>The blue whale is the largest animal known to have ever existed, feeding on krill.</p>",
    "chess.txt": "The Sicilian Defence is a chess opening that begins with 1.e4 c5, popular among aggressive players.",
    "bees.md": "# Bees\n\nHoney bees communicate the location of flowers through the waggle dance inside the hive.",
}


@pytest.fixture
def corpus(api):
    i = api.create_index("corpus", chunk_max_characters=400)["id"]
    for n, (filename, text) in enumerate(CORPUS.items()):
        meta = {"team": "red" if n % 2 else "blue", "year": 2018 + n, "tags": ["nature"] if n in (0, 2, 4) else ["culture"],
                "published": f"202{n}-01-15"}
        r = api.upload(i, filename, text.encode(), metadata=json.dumps(meta))
        assert r.status_code == 201, r.text
    return api, i


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_each_mode_finds_the_passage(corpus, mode):
    api, i = corpus
    r = api.search("largest animal that eats krill", i, mode=mode)
    assert r.status_code == 200, r.text
    body = r.json()
    top = body["results"][0]
    assert top["document_name"] == "whales.html"
    for field in ("chunk_id", "document_id", "index_id", "version", "text", "score", "metadata", "ordinal", "highlights", "explain"):
        assert field in top
    assert top["metadata"]["team"] == "blue"
    assert any("<em>" in h for h in top["highlights"])
    ev = body["evidence"]
    assert ev["mode"] == mode and ev["model"] == "all-MiniLM-L6-v2" and ev["indexes_searched"] == [i]
    assert ev["stale_dropped"] == 0 and ev["latency_ms"] > 0 and ev["evidence_id"]
    if mode == "hybrid":
        assert top["explain"]["fused_score"] is not None
        assert top["explain"]["dense_rank"] is not None and top["explain"]["lexical_rank"] is not None
    elif mode == "dense":
        assert top["explain"]["dense_rank"] == 1
    else:
        assert top["explain"]["lexical_rank"] == 1 and top["explain"]["lexical_score"] > 0


def test_project_wide_search_and_index_ids(corpus):
    api, i = corpus
    other = api.create_index("other")["id"]
    api.upload(other, "krill.txt", b"Antarctic krill are small crustaceans eaten by whales.")
    everywhere = api.search("krill whales").json()
    assert set(everywhere["evidence"]["indexes_searched"]) == {i, other}
    assert {h["index_id"] for h in everywhere["results"]} == {i, other}
    only = api.search("krill whales", index_ids=[other]).json()
    assert {h["index_id"] for h in only["results"]} == {other}


def test_document_results_group_and_rank_by_best_chunk(api):
    i = api.create_index(chunk_max_characters=200)["id"]
    long_doc = "\n\n".join(
        f"# Part {n}\n\n" + ("Glaciers carve valleys slowly over millennia. " if n == 2 else f"Filler paragraph number {n} about nothing much. ") * 3
        for n in range(5)
    )
    api.upload(i, "glaciers.md", long_doc.encode())
    api.upload(i, "short.txt", b"A glacier is mentioned once here among other things like trains.")
    r = api.search("glaciers carve valleys", i, result_type="document", top_k=5)
    docs = r.json()["results"]
    assert [d["document_name"] for d in docs][0] == "glaciers.md"
    assert len({d["document_id"] for d in docs}) == len(docs)
    first = docs[0]
    for field in ("document_id", "document_name", "index_id", "version", "score", "metadata", "best_chunk", "matching_chunks"):
        assert field in first
    assert "Glaciers carve" in first["best_chunk"]["text"] and first["score"] == first["best_chunk"]["score"]
    assert first["matching_chunks"] >= 2
    assert docs == sorted(docs, key=lambda d: d["score"], reverse=True)


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_stale_versions_never_served(api, mode):
    i = api.create_index()["id"]
    api.upload(i, "policy.txt", b"Employees may bring their pet iguana Zorblax to the office on Fridays.")
    api.upload(i, "policy.txt", b"Pets are no longer allowed in the office under the new building rules.")
    api.upload(i, "other.txt", b"The cafeteria serves soup on Mondays.")
    hits = api.search("pet iguana Zorblax Fridays", i, mode=mode, top_k=20).json()["results"]
    assert all(h["version"] == 2 for h in hits if h["document_name"] == "policy.txt")
    assert not any("Zorblax" in h["text"] for h in hits)
    history = api.search("pet iguana Zorblax", i, mode=mode, include_history=True).json()["results"]
    assert any("Zorblax" in h["text"] and h["version"] == 1 for h in history)
    as_of = api.search("pet iguana Zorblax", i, mode=mode, as_of_version=1).json()["results"]
    assert as_of and all(h["version"] == 1 for h in as_of)


def test_old_version_served_while_new_one_indexes(app_factory, monkeypatch):
    from rag_service.services.ingestion import IngestionService

    client, ctx = app_factory()
    api = Api(client, new_key(ctx))
    i = api.create_index()["id"]
    api.upload(i, "menu.txt", b"Today's special is the mushroom risotto with truffle oil.")
    entered, release = threading.Event(), threading.Event()
    original = IngestionService.write_points

    def slow_write(self, *args, **kwargs):
        entered.set()
        assert release.wait(30)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(IngestionService, "write_points", slow_write)
    result = {}
    worker = threading.Thread(target=lambda: result.setdefault("r", api.upload(i, "menu.txt", b"Today's special is grilled salmon with lemon.")))
    worker.start()
    assert entered.wait(30)
    for mode in ("dense", "lexical", "hybrid"):
        hits = api.search("today's special risotto", i, mode=mode).json()["results"]
        assert hits and hits[0]["version"] == 1 and "risotto" in hits[0]["text"]
    doc = api.get(f"/v1/indexes/{i}/documents/by-name/menu.txt/versions").json()["items"]
    assert [v["status"] for v in doc] == ["ready", "indexing"]
    release.set()
    worker.join(30)
    assert result["r"].status_code == 201
    for mode in ("dense", "lexical", "hybrid"):
        hits = api.search("today's special", i, mode=mode).json()["results"]
        assert hits and all(h["version"] == 2 for h in hits)


def test_sql_check_drops_hits_the_vector_store_still_marks_live(app_factory):
    client, ctx = app_factory()
    api = Api(client, new_key(ctx))
    index = api.create_index()
    i = index["id"]
    doc = api.upload(i, "lag.txt", b"The secret ingredient is cardamom in the old recipe.").json()
    api.upload(i, "lag.txt", b"The new recipe uses cinnamon and nothing else special.")
    # Simulate an interrupted flag flip: the old version's points still say live=1.
    ctx.vectors.set_payload(index["collection_alias"], Filter(must=(Match("document_id", doc["id"]),)), {"live": 1})
    for mode in ("dense", "lexical", "hybrid"):
        body = api.search("secret ingredient cardamom", i, mode=mode).json()
        assert all(h["version"] == 2 for h in body["results"])
        assert body["evidence"]["stale_dropped"] >= 1
    # A soft delete whose flag flip never reached the store is also never served.
    api.delete(f"/v1/indexes/{i}/documents/{doc['id']}")
    ctx.vectors.set_payload(index["collection_alias"], Filter(must=(Match("document_id", doc["id"]),)), {"live": 1})
    body = api.search("new recipe cinnamon", i).json()
    assert body["results"] == [] and body["evidence"]["stale_dropped"] >= 1


def test_filters_equality_any_of_range(corpus):
    api, i = corpus
    def names(**body):
        r = api.search("nature and culture", i, top_k=10, **body)
        assert r.status_code == 200, r.text
        return {h["document_name"] for h in r.json()["results"]}

    assert names(filters={"team": "red"}) == {"coffee.txt", "chess.txt"}
    assert names(filters={"tags": ["culture"]}) == {"coffee.txt", "chess.txt"}
    assert names(filters={"year": {"gte": 2020}}) == {"whales.html", "chess.txt", "bees.md"}
    assert names(filters={"year": {"gt": 2018, "lt": 2021}}) == {"coffee.txt", "whales.html"}
    assert names(filters={"published": {"gte": "2023-01-01"}}) == {"chess.txt", "bees.md"}
    assert names(filters={"team": "blue", "year": {"lte": 2020}}) == {"volcano.md", "whales.html"}
    assert names(filters={"name": "bees.md"}) == {"bees.md"}
    for bad in ({"year": {"between": [1, 2]}}, {"tags": []}, {"team": {"eq": "red"}}, {"team": True}, {"a.b": 1}):
        r = api.search("x", i, filters=bad)
        assert r.status_code == 422 and r.json()["code"] == "validation_error", bad


def test_selective_filter_still_fills_top_k(api):
    i = api.create_index()["id"]
    for n in range(30):
        team = "rare" if n % 10 == 0 else "common"
        api.upload(i, f"d{n}.txt", f"Weather report number {n}: sunny skies and mild winds.".encode(),
                   metadata=json.dumps({"team": team}))
    for mode in ("dense", "lexical", "hybrid"):
        hits = api.search("weather report sunny", i, mode=mode, top_k=3, filters={"team": "rare"}).json()["results"]
        assert sorted(h["document_name"] for h in hits) == ["d0.txt", "d10.txt", "d20.txt"], mode


def test_query_validation(corpus):
    api, i = corpus
    for body in ({"query": ""}, {"query": "   "}, {"query": "x", "top_k": 0}, {"query": "x", "top_k": 101},
                 {"query": "x", "mode": "fuzzy"}, {"query": "x", "result_type": "page"},
                 {"query": "x", "data_boundary": "moon"}, {"top_k": 3}):
        r = api.post(f"/v1/indexes/{i}/search", json=body)
        assert r.status_code == 422 and r.json()["code"] == "validation_error", (body, r.text)
    r = api.search("x", i, rerank=True)
    assert r.status_code == 422 and r.json()["code"] == "rerank_not_configured"


def test_min_score(corpus):
    api, i = corpus
    hits = api.search("blue whale krill", i, mode="dense", min_score=0.3).json()["results"]
    assert hits and all(h["score"] >= 0.3 for h in hits)
    assert api.search("blue whale krill", i, mode="dense", min_score=0.99).json()["results"] == []


def test_vector_store_down_is_503_not_empty(corpus, monkeypatch):
    api, i = corpus
    vectors = api.client.app.state.ctx.vectors

    def down(*a, **k):
        raise StoreUnavailable("connection refused")

    monkeypatch.setattr(vectors, "search", down)
    r = api.search("whale", i)
    assert r.status_code == 503 and r.json()["code"] == "retrieval_unavailable"
    assert r.headers["Retry-After"]
    monkeypatch.undo()
    assert api.search("whale", i).json()["results"]


def test_vector_store_closed_is_503(app_factory):
    client, ctx = app_factory()
    api = Api(client, new_key(ctx))
    i = api.create_index()["id"]
    api.upload(i, "a.txt", b"some text about apples")
    ctx.vectors.close()
    r = api.search("apples", i)
    assert r.status_code == 503 and r.json()["code"] == "retrieval_unavailable"
    r = api.upload(i, "b.txt", b"text about bananas")
    assert r.status_code == 503


def test_per_request_fusion_weights_and_rrf_k(corpus):
    api, i = corpus
    query = "animals eating small crustaceans in cold water"

    def ids(**body):
        r = api.search(query, i, top_k=3, **body)
        assert r.status_code == 200, r.text
        return [h["chunk_id"] for h in r.json()["results"]]

    # One arm weighted to zero: hybrid ranks exactly as that arm alone.
    assert ids(mode="hybrid", fusion_weights=[1, 0]) == ids(mode="dense")
    assert ids(mode="hybrid", fusion_weights=[0, 1])[:2] == ids(mode="lexical")[:2]
    assert api.search(query, i, rrf_k=5, fusion_weights=[2, 1]).status_code == 200
    for bad in ({"fusion_weights": [0, 0]}, {"fusion_weights": [1]}, {"fusion_weights": [-1, 1]}, {"rrf_k": 0}):
        r = api.search(query, i, **bad)
        assert r.status_code == 422 and r.json()["code"] == "validation_error", bad
