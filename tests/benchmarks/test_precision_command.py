"""`python -m benchmarks precision` end to end on the synthetic collection."""

import json

from benchmarks.__main__ import main


def test_precision_command_weighs_every_variant_and_writes_the_gate(tiny_beir, tmp_path, embedders):
    out, gate_file = tmp_path / "precision", tmp_path / "gate.json"
    assert main(["precision", "--dataset", str(tiny_beir), "--limit-docs", "40", "--limit-queries", "8",
                 "--timing-docs", "8", "--rounds", "1", "--variants", "torch-fp32,onnx-fp32,onnx-int8",
                 "--encoder-cache", str(embedders.cache_dir), "--gate-file", str(gate_file), "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert set(results["variants"]) == {"torch-fp32", "onnx-fp32", "onnx-int8"}
    for r in results["variants"].values():
        assert r["docs_per_s"] > 0 and r["query_ms"] > 0 and 0.3 < r["ndcg@10"] <= 1.0
    assert results["variants"]["onnx-fp32"]["cosine_min"] > 0.999  # the service stored the same vectors
    assert 0.95 < results["variants"]["onnx-int8"]["cosine_mean"] < 1.0
    gate = json.loads(gate_file.read_text())["models"]["all-MiniLM-L6-v2"]
    ref = results["variants"]["torch-fp32"]["ndcg@10"]
    assert gate["eligible"] == [v for v, r in results["variants"].items() if r["ndcg@10"] >= ref - 0.005]
    assert results["auto"]["variant"] in gate["eligible"]
    assert "x torch fp32" in (out / "results.md").read_text()
