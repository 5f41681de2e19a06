"""`python -m benchmarks webhooks` end to end on a few uploads."""

import json
import os

from benchmarks.__main__ import main


def test_webhooks_command_reports_upload_cost_and_delivery_lag(tmp_path):
    out = tmp_path / "webhooks"
    assert main(["webhooks", "--documents", "4", "--hooks", "2", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    deliveries = results["deliveries"]
    assert deliveries["expected"] == deliveries["received"] == deliveries["verified"] == 16  # 2 phases x 4 x 2
    assert 0 <= deliveries["lag_ms"]["p50"] <= deliveries["lag_ms"]["max"]
    for phase in ("delivering", "outbox only"):
        measured = results["phases"][phase]
        assert set(measured["upload_ms"]) == {"quiet", "hooked"} and measured["upload_p50_ratio_hooked_over_quiet"] > 0
    assert results["cpu"]["model"] and "outbox only" in (out / "results.md").read_text()
    assert "RAG_WEBHOOK_ALLOW_PRIVATE" not in os.environ  # the loopback allowance does not outlive the run
