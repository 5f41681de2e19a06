"""Encoder identity per index: recorded at creation, kept when the default changes,
part of the embedding cache key, shown in views and evidence; no silent swaps."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlmodel import select

from rag_service.app import create_app
from rag_service.context import build_context
from rag_service.models import EmbeddingCache, Index
from rag_service.stores.embedder import EmbedderRegistry
from tests.api.test_rag import wait_job
from tests.conftest import Api, new_key

TEXT = b"# Volcanoes\n\nMagma rises through the crust and erupts as lava from the vent."
TORCH = {"model": "all-MiniLM-L6-v2", "backend": "torch", "precision": "fp32"}
ONNX = {"model": "all-MiniLM-L6-v2", "backend": "onnx", "precision": "fp32"}


def _cache_identities(ctx) -> set[tuple[str, str, str]]:
    with ctx.db.session() as s:
        return {(r.model, r.backend, r.precision) for r in s.exec(select(EmbeddingCache)).all()}


def test_an_index_keeps_its_encoder_when_the_default_changes(app_factory):
    client, ctx = app_factory()
    api = Api(client, new_key(ctx))
    old = api.create_index("old")
    assert old["encoder"] == TORCH
    first = api.upload(old["id"], "v.md", TEXT, name="volcanoes").json()
    assert first["chunks_embedded"] == first["chunk_count"] > 0

    ctx.settings.embedding_backend = "onnx"  # a new default (a new machine, a new auto decision)
    new = api.create_index("new")
    assert new["encoder"] == ONNX and api.get(f"/v1/indexes/{old['id']}").json()["encoder"] == TORCH
    # The same text in the other index is embedded again: vectors of two identities never share an entry.
    second = api.upload(new["id"], "v.md", TEXT, name="volcanoes").json()
    assert second["chunks_embedded"] == second["chunk_count"] and second["chunks_reused"] == 0
    assert {("all-MiniLM-L6-v2", "torch", "fp32"), ("all-MiniLM-L6-v2", "onnx", "fp32")} <= _cache_identities(ctx)

    for index, encoder in ((old, TORCH), (new, ONNX)):
        r = api.search("lava erupts from the vent", index["id"], mode="dense")
        assert r.status_code == 200 and r.json()["results"][0]["document_name"] == "volcanoes"
        assert r.json()["evidence"]["encoder"] == encoder and r.json()["evidence"]["model"] == "all-MiniLM-L6-v2"
    both = api.search("lava", mode="dense").json()["evidence"]["encoder"]
    assert sorted(e["backend"] for e in both) == ["onnx", "torch"]
    # The old index still embeds with its own encoder: the same text there reuses its torch vectors.
    again = api.upload(old["id"], "copy.md", TEXT, name="volcanoes-copy").json()
    assert again["chunks_reused"] == again["chunk_count"] and again["chunks_embedded"] == 0
    status = api.get("/v1/rag/status").json()
    assert status["components"]["embedder"]["backend"] == "onnx" and status["encoders"]["loaded"]


def _app_with(settings_factory, registry):
    settings = settings_factory()
    ctx = build_context(settings, embedders=registry)
    client = TestClient(create_app(settings, ctx=ctx))
    client.__enter__()
    return client, ctx


def _close(client, ctx):
    client.__exit__(None, None, None)
    ctx.vectors.close()
    ctx.db.dispose()


def test_a_recorded_variant_that_cannot_run_is_a_503_unless_the_same_numbers_stand_in(settings_factory, embedders):
    # A machine where no ONNX variant can be built (no cache directory to build it in).
    registry = EmbedderRegistry(backend="torch", precision="fp32", cache_dir=None)
    registry.register(embedders.get(embedders.resolve("all-MiniLM-L6-v2")))  # the loaded torch fp32 model
    client, ctx = _app_with(settings_factory, registry)
    try:
        api = Api(client, new_key(ctx))
        fp32, int8 = api.create_index("fp32"), api.create_index("int8")
        for index in (fp32, int8):
            assert api.upload(index["id"], "v.md", TEXT, name="volcanoes").status_code == 201
        with ctx.db.session() as s:  # as if built elsewhere with ONNX
            for index_id, precision in ((fp32["id"], "fp32"), (int8["id"], "int8")):
                row = s.get(Index, index_id)
                row.embedding_backend, row.embedding_precision = "onnx", precision
                s.add(row)
            s.commit()
        # onnx fp32 computes torch fp32's vectors: torch may stand in.
        r = api.search("lava erupts", fp32["id"], mode="dense")
        assert r.status_code == 200 and r.json()["results"][0]["document_name"] == "volcanoes"
        assert r.json()["evidence"]["encoder"] == ONNX
        # int8 has no stand-in: a 503 naming the encoder, never torch's vectors against int8 ones.
        r = api.search("lava erupts", int8["id"], mode="dense")
        assert r.status_code == 503 and r.json()["code"] == "retrieval_unavailable"
        assert r.json()["component"] == "encoder" and r.json()["encoder"]["precision"] == "int8"
        assert api.search("lava erupts", int8["id"], mode="lexical").status_code == 200  # no encoder needed
        up = api.upload(int8["id"], "w.md", b"# Tides\n\nThe moon drives tides.", name="tides")
        assert up.status_code == 503 and up.json()["component"] == "encoder"
    finally:
        _close(client, ctx)


def test_reindex_moves_an_index_to_another_backend_with_eval_proof(app_factory):
    client, ctx = app_factory()
    api = Api(client, new_key(ctx))
    index = api.create_index("docs", chunk_max_characters=200)
    docs = {"volcanoes": TEXT, "oceans": b"# Oceans\n\nThe Pacific is the deepest ocean, with the Mariana Trench.",
            "forests": b"# Forests\n\nSome pine cones open only after wildfires."}
    for name, text in docs.items():
        assert api.upload(index["id"], f"{name}.md", text, name=name).status_code == 201
    evalset = {"queries": {"q1": "lava magma", "q2": "deepest ocean trench", "q3": "pine cones fire"},
               "qrels": {"q1": {"volcanoes": 1}, "q2": {"oceans": 1}, "q3": {"forests": 1}}}
    r = api.post("/v1/rag/jobs", json={"job_class": "reindex", "index_id": index["id"],
                                       "params": {"embedding_backend": "onnx", "eval": evalset,
                                                  "max_latency_ratio": 10, "latency_slack_ms": 1000}})
    assert r.status_code == 202, r.text
    job = wait_job(api, r.json()["id"])
    assert job["status"] == "succeeded" and job["result"]["swapped"] is True, job
    assert job["result"]["encoder"] == {"old": TORCH, "new": ONNX}
    assert all(g["passed"] for g in job["result"]["gates"].values())
    assert api.get(f"/v1/indexes/{index['id']}").json()["encoder"] == ONNX
    r = api.search("Mariana Trench", index["id"], mode="dense").json()
    assert r["results"][0]["document_name"] == "oceans" and r["evidence"]["encoder"] == ONNX
