"""`python -m benchmarks incremental` end to end on tiny documents."""

import json

from benchmarks.__main__ import main


def test_incremental_command_reports_chunks_embedded_per_edit(tmp_path):
    out = tmp_path / "incremental"
    assert main(["incremental", "--sizes", "6", "--issue-seeds", "2", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    plain, headed = results["documents"]
    assert not plain["headings"] and headed["headings"] and "insert_section" in headed["edits"]
    for row in results["documents"]:
        assert row["chunks"] >= 3
        for name, edit in row["edits"].items():
            assert 0 <= edit["embedded"] <= edit["total"], name
            assert edit["greedy_total"] >= 1
        assert row["edits"]["append"]["embedded"] >= 1  # new text is embedded, not found in the cache
    issue = results["issue_case"]
    assert issue["documents"] == 2 and 0 < issue["max_fraction"] <= 0.25 and issue["target_met"]
    assert "chunk_by_title" in (out / "results.md").read_text()
