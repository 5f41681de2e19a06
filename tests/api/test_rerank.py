"""Rerank mechanics with a tiny cross-encoder the test builds and saves itself
(no cross-encoder weights ship on PyPI, and nothing may be downloaded)."""

import pytest

from tests.conftest import Api, new_key


@pytest.fixture(scope="session")
def tiny_cross_encoder(tmp_path_factory) -> str:
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from pipelines.embed import resolve_model_path

    torch.manual_seed(7)
    path = tmp_path_factory.mktemp("tiny-ce")
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("all-MiniLM-L6-v2"))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, num_labels=1)
    BertForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def test_rerank_reorders_by_cross_encoder_score(app_factory, tiny_cross_encoder):
    from sentence_transformers import CrossEncoder

    client, ctx = app_factory(rerank_model=tiny_cross_encoder)
    api = Api(client, new_key(ctx))
    i = api.create_index()["id"]
    texts = [f"Document {n} talks about rivers, lakes and the water cycle in region {n}." for n in range(8)]
    for n, t in enumerate(texts):
        api.upload(i, f"w{n}.txt", t.encode())
    r = api.search("water cycle rivers", i, rerank=True, top_k=5)
    assert r.status_code == 200, r.text
    body = r.json()
    hits = body["results"]
    assert body["evidence"]["reranked"] is True and len(hits) == 5
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    expected = CrossEncoder(tiny_cross_encoder, device="cpu").predict([("water cycle rivers", h["text"]) for h in hits])
    for hit, want in zip(hits, expected):
        assert hit["explain"]["rerank_score"] == pytest.approx(float(want), abs=1e-4)
        assert "retrieval_score" in hit["explain"]
    # the reranked top-1 is the best cross-encoder score over all candidates, not just the retrieval top-5
    all_scores = CrossEncoder(tiny_cross_encoder, device="cpu").predict([("water cycle rivers", t) for t in texts])
    assert hits[0]["score"] == pytest.approx(float(max(all_scores)), abs=1e-4)


def test_a_reranker_that_cannot_load_is_reported_and_refused(app_factory, tmp_path):
    """Issue 12: a missing RAG_RERANK_MODEL path said `ok` / rerank `live`, and rerank searches were 500s."""
    client, ctx = app_factory(rerank_model=str(tmp_path / "no-such-cross-encoder"))
    api = Api(client, new_key(ctx))
    i = api.create_index()["id"]
    api.upload(i, "w.txt", b"rivers and lakes and the water cycle")
    status = client.get("/v1/rag/status").json()
    assert status["status"] == "degraded"
    assert status["components"]["reranker"]["reachable"] is False and status["components"]["reranker"]["configured"]
    assert status["retrieval_modes"]["rerank"] == "unavailable"
    assert status["retrieval_modes"]["hybrid"] == "live"  # the rest still serves
    r = api.search("water cycle", i, rerank=True)
    assert r.status_code == 503, r.text
    assert r.json()["code"] == "retrieval_unavailable" and r.json()["component"] == "reranker"
    assert r.headers["Retry-After"]
    assert api.search("water cycle", i).status_code == 200


def test_a_reranker_that_loads_is_live(app_factory, tiny_cross_encoder):
    client, ctx = app_factory(rerank_model=tiny_cross_encoder)
    status = client.get("/v1/rag/status").json()
    assert status["status"] == "ok" and status["retrieval_modes"]["rerank"] == "live"
    assert status["components"]["reranker"]["reachable"] is True
