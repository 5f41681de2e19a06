"""`python -m benchmarks precision` end to end on the synthetic collection."""

import json

from benchmarks.__main__ import main


def test_precision_command_compares_fp32_and_bf16(tiny_beir, tmp_path):
    out = tmp_path / "precision"
    assert main(["precision", "--dataset", str(tiny_beir), "--limit-docs", "60", "--limit-queries", "10",
                 "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert set(results["precisions"]) == {"fp32", "bf16"}
    for r in results["precisions"].values():
        assert r["docs_per_s"] > 0 and 0.3 < r["ndcg@10"] <= 1.0
    assert 0.98 < results["agreement"]["cosine_mean"] <= 1.0001  # the same model, rounded differently
    assert "bf16 / fp32 throughput" in (out / "results.md").read_text()
