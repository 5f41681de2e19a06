"""The `tune` job: grid-search an index's search settings on a labelled set, and store the
winner as the index's defaults only when a paired test supports it."""

from __future__ import annotations

import pytest
from sqlmodel import select

from rag_service.models import Chunk, Index
from tests.api.test_rag import wait_job
from tests.conftest import Api, new_key

# Per topic: the relevant record (its code twice, about something else), the topic's own page
# (the query's one shared word), and two more pages on the topic (no shared word). Dense search
# ranks the topic pages first; BM25 ranks the record first (the code is rarer than the word);
# the default hybrid fusion puts the topic page first. So lexical is the better setting here.
TOPICS = [
    ("garage", "vehicle repair", ["The garage fitted the automobile with four new tyres and brake pads.",
                                         "Mechanics rotate car tyres every ten thousand kilometres.",
                                         "A flat tyre on the motorway means changing to the spare wheel."]),
    ("kitchen", "soup cooking", ["In the kitchen the chef simmered the broth for hours with herbs.",
                                 "A good stock needs bones, onions and a slow simmer.",
                                 "Ladle the hot broth into bowls and add fresh parsley."]),
    ("forecast", "storm rain", ["The forecast warned of heavy rainfall and thunderstorms over the valley.",
                                "Thunder and lightning kept the farmers indoors all afternoon.",
                                "Downpours flooded the lanes after the thunderstorm."]),
    ("clinic", "doctor medication", ["At the clinic the physician prescribed antibiotics for the infection.",
                                     "Nurses gave the patient pills twice a day.",
                                     "The pharmacist explained the dosage of the prescribed tablets."]),
    ("stadium", "soccer goals", ["At the stadium the striker scored twice in the football final.",
                                 "The goalkeeper saved a penalty in the last minute of the match.",
                                 "Fans cheered as the midfielder curled the ball into the net."]),
    ("orbit", "spacecraft liftoff", ["The rocket carried the satellite into orbit after a smooth launch.",
                                     "Engines roared as the booster left the launch pad.",
                                     "Astronauts watched the capsule separate from the booster."]),
    ("classroom", "children learning maths", ["In the classroom pupils practised arithmetic and fractions.",
                                              "The teacher marked the homework on multiplication tables.",
                                              "Young students counted beads to understand addition."]),
    ("airport", "plane voyage", ["The airport flight to Lisbon boarded late because of fog.",
                                 "Passengers queued at the gate for the transatlantic jet.",
                                 "The airliner taxied to the runway before take-off."]),
    ("orchard", "fruit picking season", ["The orchard produced a heavy crop of apples and pears this autumn.",
                                "Pickers filled crates with ripe plums from the branches.",
                                "Blossom on the cherry trees promised a good harvest."]),
    ("harbour", "boats at sea", ["In the harbour the yachts raised their sails at dawn.",
                                  "Fishing vessels returned to the quay with the tide.",
                                  "The ferry crossed the bay while gulls followed its wake."]),
    ("library", "literature lending", ["The library lent novels and poetry collections to readers.",
                                  "Shelves of paperbacks lined the quiet reading room.",
                                  "The librarian catalogued a donation of old atlases."]),
    ("bakery", "fresh bread", ["The bakery sold sourdough loaves and croissants every morning.",
                                "Dough rose overnight before being shaped and baked.",
                                "Warm rolls cooled on racks beside the oven."]),
]
FILLERS = ["Tomatoes grow best in full sun with rich soil.", "The committee approved the annual budget.",
           "Granite is an igneous rock with large crystals.", "The museum reopened after renovation works."]


def code(i: int) -> str:
    return f"zq{i}x{7 * i + 3}v"


@pytest.fixture
def tuned_index(app_factory):
    client, ctx = app_factory()
    api = Api(client, new_key(ctx))
    index = api.create_index("tuning")["id"]
    queries, qrels = {}, {}
    for i, (word, paraphrase, pages) in enumerate(TOPICS):
        record = f"Record {code(i)}, filed as {code(i)}. {FILLERS[i % len(FILLERS)]}"
        assert api.upload(index, f"record{i}.txt", record.encode(), name=f"record{i}").status_code == 201
        for n, page in enumerate(pages):
            assert api.upload(index, f"page{i}_{n}.txt", page.encode(), name=f"page{i}_{n}").status_code == 201
        queries[f"q{i}"] = f"{code(i)} {word} {paraphrase}"
        qrels[f"q{i}"] = {f"record{i}": 1}
    return api, index, queries, qrels


def test_tune_stores_only_a_winner_the_paired_test_supports_and_searches_use_it(tuned_index):
    api, index, queries, qrels = tuned_index
    before = api.get(f"/v1/indexes/{index}").json()["search_defaults"]
    assert before["mode"] == "hybrid" and set(before["source"].values()) == {"service"}
    # modes: all three (the default); RRF without feedback over chunk BM25 only, to keep it short
    grid = {"rrf_k": [20, 60], "fusion_weights": [[1, 1], [1, 2], [2, 1]], "fusion": ["rrf"], "prf": [False],
            "lexical_unit": ["chunk"], "bm25_k1": []}
    r = api.post("/v1/rag/jobs", json={"job_class": "tune", "index_id": index,
                                       "params": {"queries": queries, "qrels": qrels, "grid": grid}})
    assert r.status_code == 202, r.text
    job = wait_job(api, r.json()["id"], timeout=600)
    assert job["status"] == "succeeded", job
    result = job["result"]
    # Every setting tried is reported: 2 rrf_k x 3 weights for hybrid, plus dense and lexical, and
    # first the settings in use (z-score fusion with feedback over document BM25), not in that grid.
    assert len(result["tried"]) == 9 and sum(t["current"] for t in result["tried"]) == 1
    assert result["current"]["settings"] == {"mode": "hybrid", "rrf_k": 60, "fusion_weights": [0.6, 0.4],
                                             "fusion": "zscore", "prf": True, "lexical_unit": "document"}
    assert result["best"]["ndcg@10"] > result["current"]["ndcg@10"]
    assert result["applied"] is True and result["p_value"] < 0.05, result["reason"]
    winner = result["best"]["settings"]
    after = api.get(f"/v1/indexes/{index}").json()["search_defaults"]
    assert after["mode"] == winner["mode"] and after["source"]["mode"] == "index"
    # A search that leaves the mode out now gets the index's; one that names a mode keeps it.
    plain = api.search(queries["q0"], index, result_type="document").json()
    assert plain["evidence"]["search_settings"]["mode"] == winner["mode"]
    assert "mode" in plain["evidence"]["search_settings"]["from_index_defaults"]
    assert plain["results"][0]["document_name"] == "record0"
    named = api.search(queries["q0"], index, result_type="document", mode="hybrid").json()
    assert named["evidence"]["search_settings"]["mode"] == "hybrid"
    assert "mode" not in named["evidence"]["search_settings"]["from_index_defaults"]
    # The change is audited; {} hands the defaults back to the service.
    audit = api.get("/v1/audit-log", params={"action": "index.tuned"}).json()["items"]
    assert audit and audit[0]["target_id"] == index
    reset = api.patch(f"/v1/indexes/{index}", json={"search_defaults": {}})
    assert reset.status_code == 200 and set(reset.json()["search_defaults"]["source"].values()) == {"service"}

    # A set every setting answers perfectly: the current settings stay (a tie is no gain).
    easy = {"q0": f"{code(0)} {TOPICS[0][0]} {TOPICS[0][1]}"}
    r = api.post("/v1/rag/jobs", json={"job_class": "tune", "index_id": index, "params": {
        "queries": easy, "qrels": {"q0": {"record0": 1, "page0_0": 1}},
        "grid": {"modes": ["hybrid", "lexical"], "rrf_k": [60], "fusion_weights": [[1, 1], [1, 2]],
                 "fusion": ["rrf"], "prf": [False], "lexical_unit": ["chunk"], "bm25_k1": []}}})
    job = wait_job(api, r.json()["id"], timeout=600)
    assert job["status"] == "succeeded", job
    assert job["result"]["applied"] is False and len(job["result"]["tried"]) == 4
    view = api.get(f"/v1/indexes/{index}").json()["search_defaults"]
    assert set(view["source"].values()) == {"service"}
    # PATCH sets them by hand, checked like a request's fields.
    bad = api.patch(f"/v1/indexes/{index}", json={"search_defaults": {"fusion_weights": [0, 0]}})
    assert bad.status_code == 422
    ok = api.patch(f"/v1/indexes/{index}", json={"search_defaults": {"rrf_k": 20, "fusion_weights": [1, 2]}})
    assert ok.status_code == 200
    got = ok.json()["search_defaults"]
    assert got["rrf_k"] == 20 and got["fusion_weights"] == [1.0, 2.0] and got["source"]["rrf_k"] == "index"
    assert got["source"]["mode"] == "service"
    classes = {c["job_class"]: c for c in api.get("/v1/rag/jobs").json()["contract"]["job_classes"]}
    assert classes["tune"]["status"] == "live"
    status = api.get("/v1/rag/status").json()
    assert status["job_classes"]["tune"] == "live"


# Per topic a short note that names the code once (relevant) and, for most topics, a long log that
# names it three times among many other words. With the service's document BM25 (k1 0.6, b 0.2:
# little length normalisation) the log outscores the note; with k1 1.2, b 0.75 the note wins.
LOG_WORDS = ("inventory shipment warehouse pallet forklift invoice carrier freight manifest customs "
             "container dock crane loading schedule route depot courier parcel tracking").split()


def _log(i: int) -> str:
    words = [LOG_WORDS[(i + n) % len(LOG_WORDS)] for n in range(120)]
    for at in (10, 60, 110):
        words[at] = code(i)
    return " ".join(words) + "."


@pytest.fixture
def bm25_index(app_factory):
    client, ctx = app_factory()
    api = Api(client, new_key(ctx))
    index = api.create_index("bm25-tuning")["id"]
    queries, qrels = {}, {}
    for i in range(12):
        note = f"Note {code(i)}. {FILLERS[i % len(FILLERS)]}"
        assert api.upload(index, f"note{i}.txt", note.encode(), name=f"note{i}").status_code == 201
        if i >= 3:  # three topics with no log: every setting ranks their note first
            assert api.upload(index, f"log{i}.txt", _log(i).encode(), name=f"log{i}").status_code == 201
        queries[f"q{i}"] = code(i)
        qrels[f"q{i}"] = {f"note{i}": 1}
    # The index searches document BM25 alone, so the first round has one setting: the one in use.
    lexical = {"mode": "lexical", "prf": False, "lexical_unit": "document"}
    assert api.patch(f"/v1/indexes/{index}", json={"search_defaults": lexical}).status_code == 200
    grid = {"modes": ["lexical"], "prf": [False], "lexical_unit": ["document"], "bm25_k1": [1.2], "bm25_b": [0.2, 0.75]}
    return api, ctx, index, queries, qrels, grid


def _top(api, index, query) -> str:
    return api.search(query, index, result_type="document").json()["results"][0]["document_name"]


def test_tune_tries_bm25_pairs_on_a_shadow_and_applies_a_supported_winner(bm25_index):
    api, ctx, index, queries, qrels, grid = bm25_index
    assert _top(api, index, queries["q5"]) == "log5"  # the service's document BM25 ranks the log first

    def tune(alpha: float) -> dict:
        r = api.post("/v1/rag/jobs", json={"job_class": "tune", "index_id": index, "params": {
            "queries": queries, "qrels": qrels, "grid": grid, "alpha": alpha}})
        assert r.status_code == 202, r.text
        job = wait_job(api, r.json()["id"], timeout=600)
        assert job["status"] == "succeeded", job
        return job["result"]

    def shadow_gone(collection: str) -> bool:
        with ctx.db.session() as s:
            rows = s.exec(select(Chunk.id).where(Chunk.collection == collection)).all()
        return not rows and not ctx.vectors.collection_exists(collection)

    # Every sparse write while a job runs, by collection: a candidate pair must never reach live.
    with ctx.db.session() as s:
        live = s.get(Index, index).collection
    writes: list[str] = []
    update_sparse = ctx.vectors.update_sparse

    def spy(collection, *args, **kwargs):
        writes.append(collection)
        return update_sparse(collection, *args, **kwargs)

    ctx.vectors.update_sparse = spy

    # A bar no result can pass: the pair in use and both candidates are judged on the shadow.
    strict = tune(1e-300)
    assert [(t["round"], t["bm25"]) for t in strict["tried"]] == [
        (1, {"unit": "document", "k1": 0.6, "b": 0.2}), (2, {"unit": "document", "k1": 0.6, "b": 0.2}),
        (2, {"unit": "document", "k1": 1.2, "b": 0.2}), (2, {"unit": "document", "k1": 1.2, "b": 0.75})]
    control = strict["bm25_round"]["control"]
    assert control["control"] and control["ndcg@10"] == strict["current"]["ndcg@10"] < 0.8
    assert strict["tried"][0]["current"] and strict["best"]["bm25"] == {"unit": "document", "k1": 1.2, "b": 0.75}
    assert strict["best"]["ndcg@10"] == 1.0 and strict["bm25_round"]["gain"] > 0.2
    assert strict["applied"] is False and strict["bm25_changed"] is None and strict["settings_changed"] is False
    assert writes and live not in writes and set(writes) == {strict["shadow_collection"]}
    assert shadow_gone(strict["shadow_collection"])
    view = api.get(f"/v1/indexes/{index}").json()["document_bm25"]
    assert (view["k1"], view["b"]) == (0.6, 0.2)
    assert _top(api, index, queries["q5"]) == "log5"
    defaults = api.get(f"/v1/indexes/{index}").json()["search_defaults"]["source"]

    # At the usual bar the winner is applied: the live document vectors are re-encoded with it.
    writes.clear()
    result = tune(0.05)
    assert result["applied"] is True and result["bm25_round"]["p_value"] < 0.05, result["reason"]
    assert result["bm25_changed"] == {"unit": "document", "k1": 1.2, "b": 0.75}
    # Only after the decision does live get the pair: the shadow's writes come first, then live's.
    assert writes[-1] == live and live not in writes[:-1]
    assert shadow_gone(result["shadow_collection"])
    # A BM25-only winner leaves the search defaults where they were (none newly pinned by the job).
    assert result["settings_changed"] is False
    assert api.get(f"/v1/indexes/{index}").json()["search_defaults"]["source"] == defaults
    view = api.get(f"/v1/indexes/{index}").json()["document_bm25"]
    assert (view["k1"], view["b"]) == (1.2, 0.75)
    assert all(_top(api, index, q) == f"note{qid[1:]}" for qid, q in queries.items())
    audit = api.get("/v1/audit-log", params={"action": "index.tuned"}).json()["items"]
    assert audit[0]["detail"]["bm25"] == {"unit": "document", "k1": 1.2, "b": 0.75}
    assert audit[0]["detail"]["bm25_before"] == {"unit": "document", "k1": 0.6, "b": 0.2}
    assert audit[0]["detail"]["settings"] is None

    # PATCH sets the document BM25 by hand, re-encoding it too, and checks its range.
    assert api.patch(f"/v1/indexes/{index}", json={"document_bm25_b": 1.5}).status_code == 422
    back = api.patch(f"/v1/indexes/{index}", json={"document_bm25_k1": 0.6, "document_bm25_b": 0.2})
    assert back.status_code == 200 and back.json()["document_bm25"]["b"] == 0.2
    assert _top(api, index, queries["q5"]) == "log5"
    # An index without document points has no document BM25 to set: a 422, not a silent 200.
    chunks_only = api.post("/v1/indexes", json={"name": "chunks-only", "document_bm25": False}).json()["id"]
    refused = api.patch(f"/v1/indexes/{chunks_only}", json={"document_bm25_k1": 0.9})
    assert refused.status_code == 422 and refused.json()["code"] == "validation_error", refused.text
    assert api.get(f"/v1/indexes/{chunks_only}").json()["document_bm25"]["k1"] == 0.6


def test_a_tune_job_cannot_name_its_own_shadow(app_factory):
    client, ctx = app_factory()
    api = Api(client, new_key(ctx))
    index = api.create_index("shadowless")["id"]
    r = api.post("/v1/rag/jobs", json={"job_class": "tune", "index_id": index, "params": {
        "queries": {"q0": "anything"}, "qrels": {"q0": {"d0": 1}}, "_shadow": f"idx_{index}"}})
    assert r.status_code == 422 and r.json()["code"] == "validation_error", r.text
    assert "_shadow" in r.text


def test_a_bm25_change_while_the_job_measures_makes_it_apply_nothing(bm25_index, monkeypatch):
    from sqlalchemy import update

    from rag_service.services.job_handlers import tune

    api, ctx, index, queries, qrels, grid = bm25_index
    set_bm25 = tune.set_bm25

    def patched_meanwhile(*args, **kwargs):  # an operator's PATCH lands while round 2 runs
        with ctx.db.session() as s:
            s.exec(update(Index).where(Index.id == index).values(document_bm25_k1=0.9))
            s.commit()
        return set_bm25(*args, **kwargs)

    monkeypatch.setattr(tune, "set_bm25", patched_meanwhile)
    r = api.post("/v1/rag/jobs", json={"job_class": "tune", "index_id": index, "params": {
        "queries": queries, "qrels": qrels, "grid": grid}})
    job = wait_job(api, r.json()["id"], timeout=600)
    assert job["status"] == "succeeded", job
    result = job["result"]
    # Round 2 found a supported winner, but not for the pair the index now has: nothing applied.
    assert result["applied"] is False and result["bm25_changed"] is None
    assert "changed while the job ran" in result["reason"]
    view = api.get(f"/v1/indexes/{index}").json()["document_bm25"]
    assert (view["k1"], view["b"]) == (0.9, 0.2)
    assert not api.get("/v1/audit-log", params={"action": "index.tuned"}).json()["items"]


def test_a_job_given_up_after_a_killed_attempt_drops_the_shadow_it_left(bm25_index):
    from datetime import timedelta

    from rag_service.models import Job, utcnow
    from rag_service.services.job_handlers import build_job_runner

    api, ctx, index, queries, qrels, grid = bm25_index
    with ctx.db.session() as s:
        live = s.get(Index, index)
        project, live_collection, dim = live.project_id, live.collection, live.embedding_dim
    runner = build_job_runner(ctx)  # not started: its _execute is driven by hand, as a claim would

    def killed_on_its_last_attempt(job_class: str, shadow: str) -> Job:
        # What a SIGKILLed last attempt leaves: the job still leased, its shadow named in params.
        job = Job(project_id=project, job_class=job_class, index_id=index, status="running",
                  params={"queries": queries, "qrels": qrels, "_shadow": shadow},
                  attempts=4, max_attempts=3, lease_owner=runner.owner,
                  lease_expires_at=utcnow() + timedelta(minutes=5))
        with ctx.db.session() as s:
            s.add(job)
            s.commit()
            s.refresh(job)
        return job

    left = f"idx_{index}_tune_deadbeef"
    ctx.vectors.ensure_collection(left, dim)
    job = killed_on_its_last_attempt("tune", left)
    runner._execute(job)
    assert api.get(f"/v1/rag/jobs/{job.id}").json()["status"] == "failed"
    assert not ctx.vectors.collection_exists(left)

    # A reindex that swapped before it was killed named what is now the live collection: kept.
    job = killed_on_its_last_attempt("reindex", live_collection)
    runner._execute(job)
    assert api.get(f"/v1/rag/jobs/{job.id}").json()["status"] == "failed"
    assert ctx.vectors.collection_exists(live_collection)
    assert _top(api, index, queries["q0"]) == "note0"
