"""`python -m benchmarks ingest` end to end on the synthetic collection (tiny sizes)."""

import json

from benchmarks.__main__ import main


def test_ingest_command_reports_ceiling_ratios_parse_speed_and_ready(tiny_beir, tmp_path):
    out = tmp_path / "ingest"
    assert main(["ingest", "--dataset", str(tiny_beir), "--docs", "4", "--chunks-per-doc", "3", "--clients", "2",
                 "--batch-files", "2", "--ceiling-sample", "24", "--variants", "torch-fp32", "--encoder", "torch-fp32",
                 "--parse-mb", "0.05", "--restarts", "2", "--out", str(out)]) == 0
    r = json.loads((out / "results.json").read_text())
    assert r["encode_ceiling_docs_per_s"]["torch-fp32"] > 0 and r["server_variant"] == "torch-fp32"
    for route in ("api_single", "api_batch"):
        assert r[route]["documents"] == 4 and r[route]["failed"] == 0 and r[route]["chunks"] == 12
        assert r[route]["over_ceiling"] > 0
    assert set(r["parse_mb_per_s"]) >= {"txt", "md", "csv", "json", "html"} and min(r["parse_mb_per_s"].values()) > 0
    ready = r["ready"]
    assert ready["time_to_ready_s"] > 0 and ready["first_search_ms"] > 0
    # Two restarts, each timed on its own; the figures are their medians (of two: the mean).
    assert ready["restarts"] == 2 and len(ready["samples"]) == 2
    for field in ("time_to_ready_s", "first_search_ms", "first_over_later"):
        values = [s[field] for s in ready["samples"]]
        assert min(values) > 0 and ready[field] == round((values[0] + values[1]) / 2, 2), field
    assert r["machine"]["cpus"] >= 1 and "api_ingest_over_ceiling" in (out / "results.md").read_text()
