"""`python -m benchmarks quality --tune-job dev`: the service's own `tune` job on a real collection.

The job (POST /v1/rag/jobs, job_class tune) gets the tuning split's labelled queries, grid-searches
the index's search settings and then BM25 k1 x b on a shadow copy, and stores the winner as the
index's defaults only where ranx's paired test supports it. The benchmark then asks the test
split again with the default request (`default_tuned`), so what the job chose is judged on
queries it never saw, against this run's `default` with the same paired test.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from benchmarks.common import ServiceHarness, expect, load_beir, log, wait_for_job

TUNED_MODE = "default_tuned"
# The fields of each setting tried that results.json keeps (the job's result has more).
KEPT = ("round", "settings", "bm25", "current", "control", "ndcg@10", "recall@100", "mrr@10", "latency_ms_p50")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tune-job", default=None, choices=("dev",), metavar="SPLIT",
                   help="run the service's tune job on this split's queries (never the test queries); "
                        "then score the test split again with the default request (mode default_tuned)")
    p.add_argument("--tune-grid", default=None, metavar="JSON",
                   help="the tune job's params.grid (default: the job's own grid; see docs/api.md)")
    p.add_argument("--tune-timeout-min", type=float, default=120.0)


def check_arguments(args: argparse.Namespace) -> None:
    """Refuse a bad combination before the corpus is ingested, not after."""
    if args.tune_job and args.exclude_self:
        raise SystemExit("--tune-job scores the service's answers as they are: it cannot apply --exclude-self")
    if args.tune_grid:
        if not args.tune_job:
            raise SystemExit("--tune-grid needs --tune-job")
        try:
            grid = json.loads(args.tune_grid)
        except json.JSONDecodeError as exc:
            raise SystemExit(f"--tune-grid is not JSON: {exc}") from None
        if not isinstance(grid, dict):
            raise SystemExit("--tune-grid must be a JSON object (the tune job's params.grid)")


def run_tune_job(h: ServiceHarness, index_id: str, indexed: set[str], args: argparse.Namespace) -> dict[str, Any]:
    """Submit the tune job, wait for it, and return what it tried and decided. Judgements of
    documents the index does not hold (a --limit-docs run) are left out: no setting can find them."""
    split = load_beir(args.dataset, args.tune_job)
    qrels = {q: kept for q, docs in split.qrels.items() if (kept := {d: r for d, r in docs.items() if d in indexed})}
    queries = {q: split.queries[q] for q in qrels if q in split.queries}
    if not queries:
        raise SystemExit(f"--tune-job {args.tune_job}: no judged query has a judged document in the index")
    params: dict[str, Any] = {"queries": queries, "qrels": {q: qrels[q] for q in queries}}
    if args.tune_grid:
        params["grid"] = json.loads(args.tune_grid)
    left_out = len(split.queries) - len(queries)
    log(f"tune job on {split.name}/{args.tune_job}: {len(queries)} queries"
        + (f" ({left_out} left out: none of their judged documents is indexed)" if left_out else ""))
    started = time.perf_counter()
    job = expect(h.client.post("/v1/rag/jobs", headers=h.headers,
                               json={"job_class": "tune", "index_id": index_id, "params": params}), 202)
    job = wait_for_job(lambda path: h.client.get(path, headers=h.headers), job["id"], poll_s=1.0,
                       timeout_s=args.tune_timeout_min * 60, every_s=30)
    seconds = round(time.perf_counter() - started, 1)
    if job["status"] != "succeeded":
        raise SystemExit(f"tune job {job['id']} {job['status']}: {job.get('error')}")
    result = job["result"]
    summary = {"split": args.tune_job, "queries": result["queries"], "queries_left_out": left_out,
               "seconds": seconds, "job_id": job["id"],
               "grid": params.get("grid", "the job's default grid"),
               **{k: result[k] for k in ("metric", "alpha", "applied", "reason", "gain", "p_value",
                                         "settings_changed", "bm25_changed")},
               "bm25_round": result["bm25_round"] and {**result["bm25_round"], "control": _kept(
                   result["bm25_round"]["control"]), "best": _kept(result["bm25_round"]["best"])},
               "current": _kept(result["current"]), "best": _kept(result["best"]),
               "tried": [_kept(t) for t in result["tried"]], "search_defaults": result["search_defaults"]}
    log(f"tune job: {len(summary['tried'])} settings in {seconds:.0f}s; applied {summary['applied']}: "
        f"{summary['reason']}")
    return summary


def _kept(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in KEPT if k in row}


def markdown_lines(tune: dict[str, Any] | None) -> list[str]:
    """The tune job's paragraph and its settings table for results.md (none without --tune-job)."""
    if not tune:
        return []
    metric = tune["metric"]
    lines = [f"## The tune job on the {tune['split']} split", "",
             f"{tune['queries']} labelled queries, {len(tune['tried'])} runs in {tune['seconds']:.0f} s: round 1 "
             "tries search settings on the live index, round 2 BM25 k1 x b on a shadow copy, each against "
             "its own control. "
             f"Applied: **{tune['applied']}** ({tune['reason']})."
             + (f" BM25 changed to {json.dumps(tune['bm25_changed'])}." if tune.get("bm25_changed") else "")
             + (" `default_tuned` above is the test split asked again with the default request." if tune["applied"]
                else ""), "",
             f"| # | round | settings | BM25 (unit, k1, b) | {metric} ({tune['split']}) | p50 ms |",
             "|---|---|---|---|---|---|"]
    for n, row in enumerate(tune["tried"], 1):  # in the order the job tried them
        bm25 = row.get("bm25")
        bm25_text = f"{bm25['unit']} {bm25['k1']} {bm25['b']}" if bm25 else "-"
        marks = [m for m, on in (("in use", row.get("current")), ("round 2's control", row.get("control")),
                                 ("best", row == tune["best"])) if on]
        lines.append(f"| {n} | {row.get('round', '')} | `{json.dumps(row['settings'])}`"
                     f"{' (' + ', '.join(marks) + ')' if marks else ''} | {bm25_text} | {row[metric]} | "
                     f"{row.get('latency_ms_p50', '')} |")
    return lines + [""]
