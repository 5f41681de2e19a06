"""The reindex job: shadow build, evaluation gate, alias swap, rollback."""

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
    r = api.post("/v1/rag/jobs", json={"job_class": "reindex", "index_id": i,
                                       "params": {"chunk_max_characters": 2000, "eval": EVAL}})
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
