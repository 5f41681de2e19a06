"""The quality run's comparisons: each mode's run saved in ranx's JSON format
(`runs/<mode>.json`), the control run it is tested against (this run's `default`, or
a previous results directory's), ranx's paired significance test per metric, and the
score differences from the published rows (scores only, so no test there)."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

RunDict = dict[str, dict[str, float]]

# ranx's default test: two-sided paired Student's t-test over per-query scores, the
# same queries judged by the same qrels. ranx's default threshold too.
STAT_TEST = "student"
MAX_P = 0.01
# Which run of a previous results directory stands for "the previous default".
CONTROL_PREFERENCE = ("default", "hybrid")


def _ranx_run(run: RunDict, name: str):
    from ranx import Run

    # ranx cannot hold a query with no hits; compare(make_comparable=True) counts it as zero.
    return Run({q: dict(r) for q, r in run.items() if r}, name=name)


def save_runs(out: Path, runs: dict[str, RunDict]) -> dict[str, str]:
    """runs/<mode>.json under `out` (ranx.Run.save, JSON: {query id: {doc id: score}});
    returns each mode's path relative to `out`."""
    folder = out / "runs"
    folder.mkdir(parents=True, exist_ok=True)
    saved = {}
    for mode, run in runs.items():
        path = folder / f"{mode}.json"
        _ranx_run(run, mode).save(str(path), kind="json")
        saved[mode] = str(path.relative_to(out))
    return saved


def load_previous(folder: Path) -> dict[str, Any]:
    """The control of `--compare-to`: that directory's `default` run, or its `hybrid` run
    when it has none, with what its results.json says about how it was made."""
    runs = folder / "runs"
    for mode in CONTROL_PREFERENCE:
        path = runs / f"{mode}.json"
        if path.is_file():
            break
    else:
        raise SystemExit(f"--compare-to {folder}: no runs/{' or runs/'.join(m + '.json' for m in CONTROL_PREFERENCE)}")
    run = json.loads(path.read_text(encoding="utf-8"))
    info: dict[str, Any] = {"source": str(folder), "mode": mode, "path": str(path)}
    results_file = folder / "results.json"
    if results_file.is_file():
        previous = json.loads(results_file.read_text(encoding="utf-8"))
        service = previous.get("service") or {}
        info.update(dataset=previous.get("dataset"), split=previous.get("split"), model=previous.get("model"),
                    chunking=service.get("chunking"), index_defaults=service.get("index_defaults"),
                    exclude_self=previous.get("exclude_self", False))
    return {"info": info, "run": {q: {d: float(s) for d, s in docs.items()} for q, docs in run.items()}}


def paired_comparisons(qrels: dict[str, dict[str, int]], runs: dict[str, RunDict], control: RunDict,
                       control_label: str, metrics: tuple[str, ...], skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """Each run against `control` on the same qrels, one ranx `compare` per pair:
    both means, the difference, the p-value and whether it is significant at MAX_P,
    and the per-query wins / ties / losses."""
    from ranx import Qrels, compare

    ranx_qrels = Qrels({q: dict(d) for q, d in qrels.items()})
    control_run = _ranx_run(control, control_label)
    out: dict[str, Any] = {}
    for mode, run in runs.items():
        if mode in skip:
            continue
        if not any(run.values()):
            out[mode] = None  # the service answered nothing at all: nothing to test
            continue
        with warnings.catch_warnings():
            # numba's uint64 casts, and scipy's note when two runs are identical per query.
            warnings.simplefilter("ignore")
            report = compare(ranx_qrels, runs=[control_run, _ranx_run(run, mode)], metrics=list(metrics),
                             stat_test=STAT_TEST, max_p=MAX_P, make_comparable=True)
        d = report.to_dict()
        per_metric = {}
        for m in metrics:
            p = float(d[mode]["comparisons"][control_label][m])
            wtl = d[mode]["win_tie_loss"][control_label][m]
            identical = wtl["W"] == 0 and wtl["L"] == 0
            # Identical per-query scores leave the t statistic undefined (0/0). Swapping the two
            # sides of a pair changes nothing there, so a randomization test's p is exactly 1.
            # Too few queries to estimate a variance (one query) leaves no p-value at all.
            p_value = (1.0 if identical else None) if math.isnan(p) else p
            per_metric[m] = {"control": round(d[control_label]["scores"][m], 4), "mode": round(d[mode]["scores"][m], 4),
                             "delta": round(d[mode]["scores"][m] - d[control_label]["scores"][m], 4),
                             "p_value": p_value, "significant": p_value is not None and p_value <= MAX_P,
                             "identical": identical, "wins": wtl["W"], "ties": wtl["T"], "losses": wtl["L"]}
        out[mode] = per_metric
    return out


def missing_queries(qrels: dict[str, dict[str, int]], control: RunDict) -> int:
    """Judged queries the control run has no hits for (a previous run of another subset
    counts them as zero)."""
    return sum(1 for q in qrels if not control.get(q))


def versus_published(modes: dict[str, dict[str, Any]], references: list[dict[str, Any]]) -> dict[str, Any]:
    """ours - published, per mode and published row, for the metrics the row publishes."""
    out: dict[str, Any] = {}
    for mode, m in modes.items():
        out[mode] = {r["system"]: {metric: (None if r.get(metric) is None else round(m[metric] - r[metric], 4))
                                   for metric in ("ndcg@10", "recall@100")}
                     for r in references}
    return out
