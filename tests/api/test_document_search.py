"""Document search (result_type=document): whole-document BM25, feedback, z-score fusion, titled
chunk vectors; each selectable per request and per index, none able to serve a stale version."""

from __future__ import annotations

from sqlalchemy import create_engine, inspect, text
from sqlmodel import select

from rag_service.db import create_schema
from rag_service.models import Chunk
from rag_service.stores.vector import DENSE
from tests.api.test_rag import wait_job
from tests.api.test_reindex import DOCS, EVAL

FILLER = "The committee met on a Tuesday and talked through the agenda for the season. "


def _spread_terms_index(api):
    """`spread` has both rare query words, in chunks far apart; `twice` has one of them twice in
    one chunk, `once` the other once. Best-chunk BM25 ranks `twice` first; whole-document BM25
    sees that only `spread` has both."""
    index = api.create_index("spread", chunk_max_characters=200)["id"]
    paragraphs = [FILLER + "A zephyrine lamp hung by the door."] + [FILLER] * 6 + [FILLER + "The quorlax was repaired."]
    for name, body in {"spread": "\n\n".join(paragraphs),
                       "twice": "The zephyrine glass, zephyrine blue, filled the window.",
                       "once": "A quorlax stood in the corner of the hall."}.items():
        assert api.upload(index, f"{name}.txt", body.encode(), name=name).status_code == 201
    return index


def test_whole_document_bm25_ranks_the_document_that_has_every_query_term(api):
    index = _spread_terms_index(api)
    body = {"mode": "lexical", "result_type": "document", "top_k": 3}
    by_document = api.search("zephyrine quorlax", index, **body).json()
    assert [r["document_name"] for r in by_document["results"]][0] == "spread"
    assert by_document["evidence"]["search_settings"]["lexical_unit"] == "document"
    # Its best chunk is one that holds a query word, though the whole-document arm found it.
    best = by_document["results"][0]["best_chunk"]["text"]
    assert "zephyrine" in best or "quorlax" in best
    by_chunk = api.search("zephyrine quorlax", index, lexical_unit="chunk", prf=False, **body).json()
    assert by_chunk["results"][0]["document_name"] == "twice"
    assert by_chunk["evidence"]["search_settings"]["lexical_unit"] == "chunk"


def test_feedback_and_fusion_are_reported_and_chosen_per_request_and_per_index(api):
    index = _spread_terms_index(api)
    plain = api.search("zephyrine lamp", index, result_type="document").json()
    ran = plain["evidence"]["search_settings"]
    assert (ran["fusion"], ran["prf"], ran["lexical_unit"], ran["fusion_weights"]) == ("zscore", True, "document", [0.6, 0.4])
    used = ran["feedback"][index]
    assert used["rm3_documents"] >= 1 and used["rocchio_chunks"] >= 1 and used["rm3_query_terms"] > 2
    assert plain["results"][0]["best_chunk"]["explain"]["dense_z"] is not None
    off = api.search("zephyrine lamp", index, result_type="document", prf=False, fusion="rrf").json()
    assert "feedback" not in off["evidence"]["search_settings"]
    assert off["evidence"]["search_settings"]["fusion"] == "rrf"
    assert off["evidence"]["search_settings"]["fusion_weights"] == [1.0, 1.0]  # RRF's own default weights
    # Chunk results fuse in the store, whatever the request names: the evidence says what ran.
    chunks = api.search("zephyrine lamp", index, prf=True).json()["evidence"]["search_settings"]
    assert (chunks["fusion"], chunks["prf"], chunks["lexical_unit"]) == ("rrf", False, "chunk")
    # An index's own defaults: a search that leaves the fields out takes them.
    r = api.patch(f"/v1/indexes/{index}", json={"search_defaults": {"prf": False, "fusion": "rrf"}})
    assert r.status_code == 200 and r.json()["search_defaults"]["source"]["prf"] == "index"
    assert r.json()["search_defaults"]["fusion_weights"] == [1.0, 1.0]
    tuned = api.search("zephyrine lamp", index, result_type="document").json()["evidence"]["search_settings"]
    assert tuned["prf"] is False and tuned["fusion"] == "rrf" and {"prf", "fusion"} <= set(tuned["from_index_defaults"])
    assert api.patch(f"/v1/indexes/{index}", json={"search_defaults": {"prf": "yes"}}).status_code == 422
    assert api.search("x", index, result_type="document", fusion="max").status_code == 422


def test_document_search_never_serves_a_replaced_or_deleted_version(api):
    index = api.create_index("versions")["id"]
    api.upload(index, "notes.txt", b"Marmots whistle from the alpine meadow.", name="notes")
    api.upload(index, "notes.txt", b"Ibex climb the steep dam walls.", name="notes")
    gone = api.upload(index, "gone.txt", b"A marmot colony lives under the ridge.", name="gone").json()
    assert api.delete(f"/v1/indexes/{index}/documents/{gone['id']}").status_code in (200, 204)
    for mode in ("hybrid", "dense", "lexical"):
        for prf in (True, False):
            out = api.search("marmot whistle meadow", index, mode=mode, prf=prf, result_type="document").json()
            served = {(r["document_name"], r["version"]) for r in out["results"]}
            assert ("gone", 1) not in {(n, v) for n, v in served} and ("notes", 1) not in served, (mode, prf, served)


def test_chunk_vectors_carry_the_title_unless_the_index_says_not(app_factory):
    from tests.conftest import Api, new_key

    client, ctx = app_factory()
    api = Api(client, new_key(ctx))
    body = "Glacier retreat in the Alps\n\n" + "\n\n".join(FILLER + f"Point {n}." for n in range(6))
    vectors = {}
    for titled in (True, False):
        index = api.create_index(f"titled-{titled}", chunk_max_characters=200, title_vectors=titled)
        assert index["title_vectors"] is titled and index["document_bm25"]["enabled"] is True
        doc = api.upload(index["id"], "glacier.txt", body.encode(), name="glacier").json()
        with ctx.db.session() as s:
            chunks = s.exec(select(Chunk).where(Chunk.document_id == doc["id"]).order_by(Chunk.ordinal)).all()
        stored = ctx.vectors.point_vectors(index["collection_alias"], [c.id for c in chunks], DENSE)
        vectors[titled] = [stored[c.id] for c in chunks]
    assert len(vectors[True]) > 2
    same = [sum(a * b for a, b in zip(x, y)) for x, y in zip(vectors[True], vectors[False])]
    assert same[0] > 0.9999  # the first chunk starts with the title: embedded alike
    assert all(s < 0.999 for s in same[1:])  # every later one had the title put in front


def test_a_reindex_gives_an_index_from_before_document_search_its_features(app_factory):
    from tests.conftest import Api, new_key

    client, ctx = app_factory()
    api = Api(client, new_key(ctx))
    index = api.create_index("old", chunk_max_characters=60, title_vectors=False, document_bm25=False)
    for name, body in DOCS.items():
        assert api.upload(index["id"], f"{name}.md", body.encode(), name=name).status_code == 201
    # Without document points the lexical arm of a document search is chunk BM25.
    hits = api.search("deepest ocean trench", index["id"], mode="lexical", result_type="document").json()["results"]
    assert hits[0]["document_name"] == "oceans"
    r = api.post("/v1/rag/jobs", json={"job_class": "reindex", "index_id": index["id"], "params": {
        "title_vectors": True, "document_bm25": True, "eval": EVAL, "max_latency_ratio": 100,
        "latency_slack_ms": 1000}})
    job = wait_job(api, r.json()["id"])
    assert job["status"] == "succeeded" and job["result"]["swapped"] is True, job
    assert job["result"]["gates"]["stale"]["passed"] is True
    view = api.get(f"/v1/indexes/{index['id']}").json()
    assert view["title_vectors"] is True and view["document_bm25"]["enabled"] is True
    assert view["document_bm25"]["avg_len"] > 0
    hits = api.search("deepest ocean trench", index["id"], mode="lexical", result_type="document").json()["results"]
    assert hits[0]["document_name"] == "oceans"
    again = api.post("/v1/rag/jobs", json={"job_class": "reindex", "index_id": index["id"], "params": {
        "title_vectors": True, "document_bm25": True, "eval": EVAL}})
    assert wait_job(api, again.json()["id"])["status"] == "failed"  # nothing to change


def test_a_database_from_before_new_columns_gets_them_with_their_defaults(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    create_schema(engine)
    with engine.begin() as conn:
        conn.execute(text('INSERT INTO project (id, name, created_at) VALUES (\'p\', \'p\', \'2026-01-01\')'))
        conn.execute(text('ALTER TABLE "index" DROP COLUMN title_vectors'))
        conn.execute(text('ALTER TABLE "index" DROP COLUMN document_bm25_k1'))
    assert "title_vectors" not in {c["name"] for c in inspect(engine).get_columns("index")}
    create_schema(engine)  # what a start does
    columns = {c["name"]: c for c in inspect(engine).get_columns("index")}
    assert {"title_vectors", "document_bm25_k1"} <= set(columns)
    with engine.begin() as conn:
        conn.execute(text('INSERT INTO "index" (id, project_id, name, description, privacy_tier, embedding_model, '
                          'embedding_dim, chunk_max_characters, chunk_overlap, bm25_k1, bm25_b, bm25_avg_len, '
                          'collection, created_at, updated_at) VALUES (\'i\', \'p\', \'n\', \'\', \'private\', \'m\', '
                          '3, 100, 0, 1.2, 0.75, 0, \'c\', \'2026-01-01\', \'2026-01-01\')'))
        row = conn.execute(text('SELECT title_vectors, document_bm25_k1 FROM "index"')).one()
    assert (bool(row[0]), float(row[1])) == (False, 0.6)


def test_document_points_are_reencoded_when_the_mean_document_length_drifts(app_factory):
    from rag_service.services.preparation import document_point_id
    from rag_service.stores.vector import SPARSE_DOCUMENT
    from tests.conftest import Api, new_key

    client, ctx = app_factory()
    api = Api(client, new_key(ctx))
    index = api.create_index("drift")
    first = api.upload(index["id"], "short.txt", b"Lichen on granite.", name="short").json()
    assert api.get(f"/v1/indexes/{index['id']}").json()["document_bm25"]["avg_len"] == 2.0  # the first sets it ("on" is a stopword)
    point = document_point_id(index["collection_alias"], first["id"], 1)
    before = ctx.vectors.point_vectors(index["collection_alias"], [point], SPARSE_DOCUMENT)[point]
    for n in range(4):  # much longer documents: the true mean moves far past the tolerance
        body = " ".join(f"moss{n} fern{n} bracken{n} sedge{n} rush{n}" for _ in range(12))
        assert api.upload(index["id"], f"long{n}.txt", body.encode(), name=f"long{n}").status_code == 201
    avg = api.get(f"/v1/indexes/{index['id']}").json()["document_bm25"]["avg_len"]
    assert avg > 30
    after = ctx.vectors.point_vectors(index["collection_alias"], [point], SPARSE_DOCUMENT)[point]
    assert after.indices == before.indices and after.values != before.values  # re-weighted, same terms
    hits = api.search("lichen granite", index["id"], mode="lexical", result_type="document").json()["results"]
    assert hits[0]["document_name"] == "short"
