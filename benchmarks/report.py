"""Report writing: results.json and results.md of any command (`write_results`, `emit`).
Each command builds its own results.md text (the quality run's writers are in
benchmarks/quality_report.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.common import log


def write_json(out: Path, results: dict[str, Any]) -> Path:
    path = out / "results.json"
    path.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path


def write_results(out: Path, results: dict[str, Any], markdown: str) -> None:
    """results.json and results.md of any command, under `out` (created if needed)."""
    out.mkdir(parents=True, exist_ok=True)
    write_json(out, results)
    (out / "results.md").write_text(markdown, encoding="utf-8")
    log(f"wrote {out / 'results.json'} and {out / 'results.md'}")


def emit(out: Path | None, results: dict[str, Any], markdown: str) -> None:
    """results.json and results.md under `out`; without one, the JSON on stdout."""
    if out:
        write_results(out, results, markdown)
    else:
        print(json.dumps(results, indent=2))
