"""The pure parts of document search: z-score and RRF fusion, term counts read back from BM25
weights, RM3 and Rocchio."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from pipelines.chunk import document_title, embedding_text
from pipelines.lexical import Bm25Params, document_vector, term_id
from pipelines.types import SparseVec
from rag_service.services.document_search import Plan, fuse, rm3, rocchio, term_counts, zscores


def test_zscores_standardise_and_a_flat_list_gives_zeros():
    z = zscores([3.0, 2.0, 1.0])
    assert z[0] == pytest.approx(-z[2]) and z[1] == pytest.approx(0.0) and z[0] > 0
    assert zscores([0.5, 0.5]) == [0.0, 0.0] and zscores([]) == []


def test_zscore_fusion_gives_a_missed_document_the_arms_lowest_z():
    dense = [("a", 0.9), ("b", 0.5), ("c", 0.1)]
    lexical = [("c", 12.0), ("d", 3.0)]
    out = fuse(dense, lexical, "zscore", (0.6, 0.4), 60)
    assert set(out) == {"a", "b", "c", "d"}
    dz = dict(zip("abc", zscores([0.9, 0.5, 0.1])))
    lz = dict(zip("cd", zscores([12.0, 3.0])))
    assert out["a"]["fused"] == pytest.approx(0.6 * dz["a"] + 0.4 * min(lz.values()))
    assert out["d"]["fused"] == pytest.approx(0.6 * min(dz.values()) + 0.4 * lz["d"])
    assert out["c"]["fused"] == pytest.approx(0.6 * dz["c"] + 0.4 * lz["c"])
    # One arm empty (no query term in the index): the other arm's order alone.
    alone = fuse(dense, [], "zscore", (0.6, 0.4), 60)
    assert sorted(alone, key=lambda k: -alone[k]["fused"]) == ["a", "b", "c"]


def test_rrf_fusion_is_the_stores_weighted_rrf():
    out = fuse([("a", 0.9), ("b", 0.8)], [("b", 5.0)], "rrf", (1.0, 2.0), 60)
    assert out["a"]["fused"] == pytest.approx(1 / (1 / 1.0 + 59))
    assert out["b"]["fused"] == pytest.approx(1 / (2 / 1.0 + 59) + 1 / (1 / 2.0 + 59))


@pytest.mark.parametrize("k1,b", [(0.6, 0.2), (1.2, 0.75)])
def test_term_counts_read_the_frequencies_back_from_bm25_weights(k1, b):
    tokens = ["reef"] * 3 + ["coral"] * 2 + ["fish"]
    params = Bm25Params(k1=k1, b=b, avg_len=10.0)
    counts = term_counts(document_vector(tokens, params), len(tokens), k1, b, 10.0)
    assert counts[term_id("reef")] == pytest.approx(3) and counts[term_id("coral")] == pytest.approx(2)
    assert counts[term_id("fish")] == pytest.approx(1)


def test_rm3_mixes_the_query_with_the_feedback_terms_by_score():
    query = SparseVec([1, 2], [1.0, 1.0])
    feedback = [(10.0, {1: 2.0, 7: 2.0}), (5.0, {2: 1.0, 8: 3.0}), (1.0, {9: 4.0})]
    expanded = rm3(query, feedback, n_terms=3, original_weight=0.5)
    out = dict(zip(expanded.indices, expanded.values))
    assert math.isclose(sum(out.values()), 1.0)
    # 9 is the weakest feedback term (score 1) and falls outside the top 3; 7 beats 8.
    assert 9 not in out and out[7] > out[8] > 0
    assert out[1] > out[2]  # original terms keep half the mass, plus their own feedback
    assert rm3(query, [], 10, 0.5) is query  # no feedback: the query as it was


def test_rocchio_moves_the_query_towards_the_feedback_and_keeps_unit_length():
    moved = rocchio([1.0, 0.0], [[0.0, 1.0], [0.0, 1.0]], beta=1.0)
    assert moved == pytest.approx([math.sqrt(0.5), math.sqrt(0.5)])
    assert rocchio([1.0, 0.0], [], 1.0) == [1.0, 0.0]


def test_the_pipeline_runs_only_where_the_store_cannot_answer_alone():
    base = dict(mode="hybrid", weights=(1.0, 1.0), rrf_k=60)
    assert not Plan(fusion="rrf", prf=False, lexical_unit="chunk", **base).needs_pipeline
    assert Plan(fusion="zscore", prf=False, lexical_unit="chunk", **base).needs_pipeline
    assert Plan(fusion="rrf", prf=True, lexical_unit="chunk", **base).needs_pipeline
    assert Plan(fusion="rrf", prf=False, lexical_unit="document", **base).needs_pipeline
    assert not Plan(fusion="zscore", prf=False, lexical_unit="document", **{**base, "mode": "dense"}).needs_pipeline


def test_titles_go_in_front_of_every_chunk_but_the_one_that_starts_with_it():
    text = "Coral bleaching in 2016\n\nReefs lost colour.\n\nRecovery took years."
    title = document_title(text)
    assert title == "Coral bleaching in 2016"
    assert embedding_text(title, "Coral bleaching in 2016\n\nReefs lost colour.") == "Coral bleaching in 2016\n\nReefs lost colour."
    assert embedding_text(title, "Recovery took years.") == "Coral bleaching in 2016\n\nRecovery took years."
    assert embedding_text(None, "Recovery took years.") == "Recovery took years."
    long = "word " * 100
    assert len(document_title(long)) <= 200 and not document_title(long).endswith(" ")
    assert Counter(document_title("x" * 500)) == Counter("x" * 200)
