"""`python -m benchmarks quality`: the metric plumbing on a hand-made run with known
answers, and the command end to end on the synthetic collection."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from benchmarks.common import BeirDataset
from benchmarks.quality import as_run_scores, score


def _ds(qrels: dict[str, dict[str, int]]) -> BeirDataset:
    return BeirDataset(name="hand", path=Path("."), split="test", corpus={}, queries={q: q for q in qrels},
                       qrels=qrels)


def test_score_matches_hand_computed_metrics():
    # Four queries, one relevance grade (1), runs built from ranked lists the way the
    # service's answers are (quality.as_run_scores: score by rank).
    #
    # q1: relevant {d1}; d1 at rank 2.
    #     nDCG@10 = (1/log2(3)) / 1 = 0.630930; Recall@100 = 1; MRR@10 = 1/2.
    # q2: relevant {d2, d3}; d2 at rank 1, d3 at rank 15 (inside 100, outside 10).
    #     DCG@10 = 1/log2(2) = 1; IDCG@10 = 1 + 1/log2(3) = 1.630930 -> nDCG@10 = 0.613147;
    #     Recall@100 = 2/2 = 1; MRR@10 = 1.
    # q3: relevant {d4}; d4 at rank 11.
    #     nDCG@10 = 0; Recall@100 = 1; MRR@10 = 0 (the cut-off applies).
    # q4: relevant {d5}; the service answered nothing: must count as 0, not vanish.
    #     nDCG@10 = 0; Recall@100 = 0; MRR@10 = 0.
    # Means over the 4 queries:
    #     nDCG@10 = (0.630930 + 0.613147) / 4 = 0.311019
    #     Recall@100 = (1 + 1 + 1 + 0) / 4 = 0.75
    #     MRR@10 = (0.5 + 1 + 0 + 0) / 4 = 0.375
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1, "d3": 1}, "q3": {"d4": 1}, "q4": {"d5": 1}}
    fillers = [f"x{i}" for i in range(20)]
    run = {
        "q1": as_run_scores(["x0", "d1"]),
        "q2": as_run_scores(["d2"] + fillers[:13] + ["d3"]),
        "q3": as_run_scores(fillers[:10] + ["d4"]),
        "q4": as_run_scores([]),
    }
    assert list(run["q2"]).index("d3") == 14  # rank 15
    expected_ndcg = (1 / math.log2(3) + 1 / (1 + 1 / math.log2(3))) / 4
    got = score(_ds(qrels), run)
    assert got["ndcg@10"] == pytest.approx(expected_ndcg, abs=1e-4)
    assert got["ndcg@10"] == pytest.approx(0.3110, abs=1e-4)
    assert got["recall@100"] == pytest.approx(0.75, abs=1e-4)
    assert got["mrr@10"] == pytest.approx(0.375, abs=1e-4)


def test_score_of_a_perfect_run_is_one():
    qrels = {"q1": {"a": 1}, "q2": {"b": 1, "c": 1}}
    run = {"q1": as_run_scores(["a", "z"]), "q2": as_run_scores(["c", "b"])}
    assert score(_ds(qrels), run) == {"ndcg@10": 1.0, "recall@100": 1.0, "mrr@10": 1.0}


def test_as_run_scores_keeps_the_service_order_and_first_occurrence():
    scores = as_run_scores(["b", "a", "b", "c"])
    assert sorted(scores, key=lambda d: -scores[d]) == ["b", "a", "c"]


def test_quality_command_end_to_end(tiny_beir, tmp_path):
    from benchmarks.__main__ import main

    out = tmp_path / "quality"
    rc = main(["quality", "--dataset", str(tiny_beir), "--limit-docs", "40", "--limit-queries", "10",
               "--out", str(out)])
    assert rc == 0
    results = json.loads((out / "results.json").read_text())
    assert {"dataset", "model", "modes"} <= set(results)
    assert results["dataset"] == "tiny"
    assert results["model"] == "all-MiniLM-L6-v2"
    assert results["documents"] == 40 and results["queries"] == 10 and results["ingestion"]["failed"] == 0
    modes = results["modes"]
    assert {"dense", "lexical", "hybrid"} <= set(modes)
    for mode, m in modes.items():
        assert {"ndcg@10", "recall@100", "mrr@10", "latency_ms_p50"} <= set(m), mode
        for metric in ("ndcg@10", "recall@100", "mrr@10"):
            assert 0.0 <= m[metric] <= 1.0, (mode, metric, m[metric])
        assert m["latency_ms_p50"] > 0, mode
    # Each query names its document's unique cohort marker: an easy collection.
    assert modes["hybrid"]["ndcg@10"] > 0.5
    assert modes["lexical"]["ndcg@10"] > 0.5
    assert (out / "results.md").stat().st_size > 0
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
