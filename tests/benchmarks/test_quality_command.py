"""`python -m benchmarks quality`: the metric plumbing on a hand-made run with known
answers, and the command end to end on the synthetic collection."""

from __future__ import annotations

import json
import math
import re
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


@pytest.fixture(scope="module")
def first_run(tiny_beir, tmp_path_factory) -> Path:
    """The command as a user runs it first: no --modes, no index options."""
    from benchmarks.__main__ import main

    out = tmp_path_factory.mktemp("quality") / "first"
    rc = main(["quality", "--dataset", str(tiny_beir), "--limit-docs", "40", "--limit-queries", "10",
               "--out", str(out)])
    assert rc == 0
    return out


def _table_rows(markdown: str, heading: str) -> dict[str, list[str]]:
    """The rows of the table under `## heading`, by their first cell."""
    section = markdown.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    rows = [line.strip("|").split("|") for line in section.splitlines() if line.startswith("| ")]
    return {cells[0].strip(): [c.strip() for c in cells[1:]] for cells in rows[1:]}


def test_quality_command_end_to_end(first_run):
    from ranx import Run

    from rag_service.config import Settings

    out = first_run
    results = json.loads((out / "results.json").read_text())
    assert {"dataset", "model", "modes"} <= set(results)
    assert results["dataset"] == "tiny"
    assert results["model"] == "all-MiniLM-L6-v2"
    assert results["documents"] == 40 and results["queries"] == 10 and results["ingestion"]["failed"] == 0
    modes = results["modes"]
    # No --modes: every mode, and `default` (no mode or fusion fields in the request).
    assert {"default", "dense", "lexical", "hybrid", "previous"} <= set(modes)
    # The default request against the previous default's (RRF over chunks, no feedback), at top_k 10.
    lat = results["latency_top10"]
    assert lat["top_k"] == 10 and lat["previous_request"]["fusion"] == "rrf"
    assert lat["default"]["latency_ms_p50"] > 0 and lat["ratio_p50"] > 0
    for mode, m in modes.items():
        assert {"ndcg@10", "recall@100", "mrr@10", "latency_ms_p50"} <= set(m), mode
        for metric in ("ndcg@10", "recall@100", "mrr@10"):
            assert 0.0 <= m[metric] <= 1.0, (mode, metric, m[metric])
        assert m["latency_ms_p50"] > 0, mode
    # Each query names its document's unique cohort marker: an easy collection.
    assert modes["hybrid"]["ndcg@10"] > 0.5
    assert modes["lexical"]["ndcg@10"] > 0.5
    assert modes["default"]["ndcg@10"] > 0.5
    assert (out / "results.md").stat().st_size > 0
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # The index got no settings: it chunks as the service does by default, and says so.
    defaults = Settings(data_dir=out)
    service = results["service"]
    assert service["index_defaults"] is True and service["index_settings"] == {}
    assert service["chunking"] == {"max_characters": defaults.default_chunk_max_characters,
                                   "overlap": defaults.default_chunk_overlap}
    markdown = (out / "results.md").read_text()
    assert "Index created with the service's default settings" in markdown
    assert "Latency at top_k 10" in markdown
    assert f"chunking max {defaults.default_chunk_max_characters} characters" in markdown

    # Every mode's run, in ranx's format, holding what was scored.
    for mode in modes:
        assert results["runs"][mode] == f"runs/{mode}.json"
        saved = Run.from_file(str(out / "runs" / f"{mode}.json"))
        assert set(saved.to_dict()) == set(json.loads((out / "runs" / f"{mode}.json").read_text()))
        assert len(saved.to_dict()) == 10, mode
    lexical = Run.from_file(str(out / "runs" / "lexical.json")).to_dict()
    best = {q: max(docs, key=docs.get) for q, docs in lexical.items()}
    assert sum(best[q] == f"d{q[1:]}" for q in best) >= 8  # query qN is about document dN

    # Without --compare-to every mode is tested against this run's default, with a p-value per metric.
    assert results["comparison"]["control"] == {"source": "this run", "mode": "default", "label": "default"}
    assert set(results["comparison"]["modes"]) == set(modes) - {"default"}
    for mode, cells in results["comparison"]["modes"].items():
        for metric, cell in cells.items():
            assert 0.0 <= cell["p_value"] <= 1.0, (mode, metric)
            assert cell["wins"] + cell["ties"] + cell["losses"] == 10
    rows = _table_rows(markdown, "Paired tests against")
    assert set(rows) == set(modes) - {"default"}
    for mode, cells in rows.items():
        p_cells = cells[1:6:2]  # nDCG@10 Δ | p | Recall@100 Δ | p | MRR@10 Δ | p
        assert all(re.match(r"[01]\.\d{4}", c) for c in p_cells), (mode, cells)


def test_compare_to_a_previous_results_directory(first_run, tiny_beir, tmp_path):
    from benchmarks.__main__ import main

    out = tmp_path / "second"
    rc = main(["quality", "--dataset", str(tiny_beir), "--limit-docs", "20", "--limit-queries", "10",
               "--modes", "hybrid", "--chunk-chars", "300", "--skip-baseline", "--compare-to", str(first_run),
               "--out", str(out)])
    assert rc == 0
    results = json.loads((out / "results.json").read_text())
    # --compare-to is the control, so no default pass of this run is needed.
    assert set(results["modes"]) == {"hybrid"} and set(results["runs"]) == {"hybrid"}
    control = results["comparison"]["control"]
    assert control["source"] == str(first_run) and control["mode"] == "default"
    assert control["index_defaults"] is True and control["missing_queries"] == 0
    first = json.loads((first_run / "results.json").read_text())
    cells = results["comparison"]["modes"]["hybrid"]
    for metric in ("ndcg@10", "recall@100", "mrr@10"):
        assert cells[metric]["control"] == first["modes"]["default"][metric]
        assert cells[metric]["mode"] == results["modes"]["hybrid"][metric]
        assert 0.0 <= cells[metric]["p_value"] <= 1.0
    # An option that sets the index: `default` of such a run is no user's default, and it says so.
    assert results["service"]["index_defaults"] is False
    assert results["service"]["index_settings"] == {"chunk_max_characters": 300}
    assert results["service"]["chunking"]["max_characters"] == 300
    markdown = (out / "results.md").read_text()
    assert "**Index not created with the service's default settings** (chunk_max_characters=300" in markdown
    assert f"## Paired tests against `default` of the previous results in `{first_run}`" in markdown


def test_previous_results_without_a_default_run_use_their_hybrid_run(tmp_path):
    from benchmarks.quality_compare import load_previous

    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "hybrid.json").write_text(json.dumps({"q1": {"d1": 2.0, "d2": 1.0}}))
    (tmp_path / "runs" / "dense.json").write_text(json.dumps({"q1": {"d9": 1.0}}))
    previous = load_previous(tmp_path)
    assert previous["info"]["mode"] == "hybrid" and previous["run"] == {"q1": {"d1": 2.0, "d2": 1.0}}
    (tmp_path / "runs" / "hybrid.json").unlink()
    with pytest.raises(SystemExit, match="no runs/default.json or runs/hybrid.json"):
        load_previous(tmp_path)


def write_query_by_document_beir(root: Path, pairs: int = 4) -> Path:
    """ArguAna's shape: each query is a whole document, its query id is that document's id,
    and the judged answer is another document (its counter-argument) on the same claim."""
    subjects = ["insulin", "melatonin", "statins", "caffeine", "zinc", "cortisol"]
    outcomes = ["bone density", "wound healing", "blood pressure", "memory consolidation", "liver fibrosis", "sleep"]
    (root / "qrels").mkdir(parents=True)
    corpus, queries, qrels = [], [], []
    for k in range(pairs):
        claim = f"trial{k:02d} {subjects[k]} {outcomes[k]}"
        corpus.append({"_id": f"d{2 * k}", "title": f"Against: {claim}",
                       "text": f"The {claim} result does not hold; the {subjects[k]} arm was too small."})
        argument = {"_id": f"d{2 * k + 1}", "title": f"For: {claim}",
                    "text": f"In {claim}, {subjects[k]} clearly improves {outcomes[k]} in every cohort."}
        corpus.append(argument)
        queries.append({"_id": argument["_id"], "text": f"{argument['title']}\n\n{argument['text']}"})
        qrels.append((argument["_id"], f"d{2 * k}"))
    (root / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in corpus), encoding="utf-8")
    (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries), encoding="utf-8")
    lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t1" for q, d in qrels]
    (root / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def test_exclude_self_drops_the_query_document_before_scoring(tmp_path):
    from ranx import Run

    from benchmarks.__main__ import main

    ds = write_query_by_document_beir(tmp_path / "argue")
    queries = {"d1", "d3", "d5", "d7"}
    plain = tmp_path / "plain"
    assert main(["quality", "--dataset", str(ds), "--modes", "lexical", "--skip-baseline", "--out", str(plain)]) == 0
    # Without the flag each query finds itself first: its relevant document is second at best.
    for mode in ("default", "lexical"):
        run = Run.from_file(str(plain / "runs" / f"{mode}.json")).to_dict()
        assert all(max(run[q], key=run[q].get) == q for q in queries), mode
    before = json.loads((plain / "results.json").read_text())
    assert before["exclude_self"] is False and before["modes"]["lexical"]["mrr@10"] <= 0.5

    out = tmp_path / "excluded"
    assert main(["quality", "--dataset", str(ds), "--modes", "lexical", "--exclude-self", "--compare-to", str(plain),
                 "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["exclude_self"] is True
    for mode in ("lexical", "rank_bm25_baseline"):
        run = Run.from_file(str(out / "runs" / f"{mode}.json")).to_dict()
        assert all(q not in run[q] for q in queries), mode
        assert all(max(run[q], key=run[q].get) == f"d{int(q[1:]) - 1}" for q in queries), mode
        assert results["modes"][mode]["mrr@10"] == 1.0, mode
    assert results["modes"]["lexical"]["self_hits_removed"] == 4
    # Tested against the run without the flag (its default): every query improved, p reported.
    cell = results["comparison"]["modes"]["lexical"]["mrr@10"]
    assert cell["control"] == before["modes"]["default"]["mrr@10"] and cell["delta"] > 0
    assert cell["wins"] == 4 and cell["p_value"] is not None and cell["significant"] == (cell["p_value"] <= 0.01)
    assert "`--exclude-self`" in (out / "results.md").read_text()


def test_tune_job_runs_the_service_job_on_dev_queries_only(tiny_beir, tmp_path):
    from benchmarks.__main__ import main

    out = tmp_path / "tuned"
    grid = {"modes": ["hybrid", "lexical"], "fusion": ["zscore"], "zscore_weights": [[0.6, 0.4]], "prf": [False],
            "lexical_unit": ["document"], "bm25_k1": [0.9, 1.2], "bm25_b": [0.75]}
    rc = main(["quality", "--dataset", str(tiny_beir), "--limit-docs", "40", "--limit-queries", "10",
               "--modes", "lexical", "--skip-baseline", "--tune-job", "dev", "--tune-grid", json.dumps(grid),
               "--out", str(out)])
    assert rc == 0
    results = json.loads((out / "results.json").read_text())
    tune = results["tune_job"]
    test_queries = set(json.loads((out / "runs" / "default.json").read_text()))
    # Dev queries only, and only those whose judged document the 40-document index holds.
    dev = {line.split("\t")[0] for line in (tiny_beir / "qrels" / "dev.tsv").read_text().splitlines()[1:]}
    assert tune["queries"] + tune["queries_left_out"] == len(dev) and 0 < tune["queries"] < len(dev)
    assert not test_queries & dev
    # The settings in use and the grid's two; then, on the shadow, the pair in use (document BM25
    # 0.6 / 0.2, not in this grid) as the control and both of the grid's pairs.
    assert len(tune["tried"]) == 6 and sum(t["current"] for t in tune["tried"]) == 1
    pairs = [(t["bm25"]["k1"], t["bm25"]["b"]) for t in tune["tried"][3:]]
    assert pairs == [(0.6, 0.2), (0.9, 0.75), (1.2, 0.75)] and {t["bm25"]["unit"] for t in tune["tried"]} == {"document"}
    assert tune["grid"] == grid and tune["reason"]
    # Every setting answers these easy queries perfectly: a tie keeps the settings in use, so the
    # job changes nothing and there is no `default_tuned` pass.
    assert tune["applied"] is False and tune["best"]["ndcg@10"] == tune["current"]["ndcg@10"] == 1.0
    assert "default_tuned" not in results["modes"]
    markdown = (out / "results.md").read_text()
    assert "## The tune job on the dev split" in markdown and f"Applied: **{tune['applied']}**" in markdown
    rows = _table_rows(markdown, "The tune job on the dev split")
    assert len(rows) == 6


def test_tune_job_options_are_checked_before_ingesting(tiny_beir, tmp_path):
    from benchmarks.__main__ import main

    with pytest.raises(SystemExit, match="cannot apply --exclude-self"):
        main(["quality", "--dataset", str(tiny_beir), "--tune-job", "dev", "--exclude-self"])
    with pytest.raises(SystemExit, match="--tune-grid is not JSON"):
        main(["quality", "--dataset", str(tiny_beir), "--tune-job", "dev", "--tune-grid", "{modes"])
    with pytest.raises(SystemExit, match="needs --tune-job"):
        main(["quality", "--dataset", str(tiny_beir), "--tune-grid", "{}"])
