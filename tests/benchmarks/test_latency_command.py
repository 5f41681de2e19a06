"""`python -m benchmarks latency` end to end on a tiny synthetic BEIR folder: a real
server subprocess, two levels, every mode at two concurrencies. It checks that the
report is complete and sane; it never asserts a speed (that is the benchmark's job)."""

from __future__ import annotations

import json
import math

from benchmarks.__main__ import main
from benchmarks.latency import MODES

# Small on purpose: two server starts and two model loads already take most of the time.
LEVELS = (60, 120)
CONCURRENCY = (1, 2)


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_latency_command_reports_every_cell(tiny_beir, tmp_path):
    out = tmp_path / "out"
    rc = main(["latency", "--dataset", str(tiny_beir), "--chunks", ",".join(map(str, LEVELS)),
               "--chunks-per-doc", "10", "--concurrency", ",".join(map(str, CONCURRENCY)),
               "--duration-s", "1", "--queries", "12",
               "--ceiling-sample", "64", "--floor-queries", "8", "--out", str(out)])
    assert rc == 0
    results = json.loads((out / "results.json").read_text())
    assert (out / "results.md").read_text().startswith("# Latency")
    assert results["model"]
    assert set(results["levels"]) == {str(level) for level in LEVELS}

    for level in LEVELS:
        entry = results["levels"][str(level)]
        assert entry["chunks"] >= level  # the index really holds the level (the service's own chunk counts)
        ingest = entry["ingest"]
        assert ingest["failed"] == 0
        # One paragraph becomes one chunk: that is what keeps the synthesized texts unique per chunk.
        assert ingest["chunks"] == ingest["paragraphs_sent"] > 0
        for key in ("chunks_per_s", "encode_ceiling_chunks_per_s", "ratio"):
            assert _positive(ingest[key]), (level, key, ingest[key])
        for key in ("server_mb", "children_mb", "total_mb"):
            assert _positive(entry["peak_rss_mb"][key]), (level, key, entry["peak_rss_mb"])
        assert _positive(entry["floor"]["embed_ms"])
        assert _positive(entry["cpu"]["server_cores"]) and _positive(entry["cpu"]["benchmark_cores"])
        for mode in MODES:
            search = entry["search"][mode]
            assert _positive(search["floor_ms"]) and _positive(search["ratio_p50_to_floor"])
            assert _positive(entry["floor"][mode]["store_ms"])
            assert entry["floor"][mode]["mean_hits"] > 0  # the raw store query finds the live chunks
            for c in CONCURRENCY:
                cell = search[f"c{c}"]
                assert cell["errors"] == 0 and cell["requests"] > 0, (level, mode, c, cell)
                assert cell["requests"] <= 12  # --queries bounds each cell
                for key in ("p50_ms", "p95_ms", "p99_ms", "qps", "ratio_p50_to_floor"):
                    assert _positive(cell[key]), (level, mode, c, key, cell)
                assert cell["p50_ms"] <= cell["p95_ms"] <= cell["p99_ms"]
