"""The `tune` job: evaluation as a product feature. Every setting of the grid (each mode, and
for hybrid each rrf_k x fusion_weights) is run on the index with a labelled set; the best by
params.metric replaces the index's search defaults only when it beats the settings the index
uses now and ranx's paired t-test over the queries supports the difference (p < params.alpha).
Otherwise nothing changes. The result lists every setting tried, with its metrics."""

from __future__ import annotations

import math
from typing import Any

from rag_service.errors import PermanentJobError
from rag_service.models import Index
from rag_service.search_params import SearchDefaults
from rag_service.services import search_defaults
from rag_service.services.common import Principal, audit
from rag_service.services.job_handle import JobHandle
from rag_service.services.job_params import TuneParams, parse_eval_set
from rag_service.services.reindex import run_metrics, timed_ranking
from rag_service.services.search import SearchService


def settings_grid(params: TuneParams) -> list[dict[str, Any]]:
    grid: list[dict[str, Any]] = []
    for mode in params.grid.modes:
        if mode != "hybrid":
            grid.append({"mode": mode, "rrf_k": None, "fusion_weights": None})
            continue
        grid += [{"mode": "hybrid", "rrf_k": k, "fusion_weights": list(w)}
                 for k in params.grid.rrf_k for w in params.grid.fusion_weights]
    return grid


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if a["mode"] != b["mode"]:
        return False
    return a["mode"] != "hybrid" or (a["rrf_k"] == b["rrf_k"] and list(a["fusion_weights"]) == list(b["fusion_weights"]))


def _paired_p_value(qrels: dict, control: dict, candidate: dict, metric: str) -> float | None:
    """Two-sided paired t-test (ranx.compare, stat_test="student") of candidate against control."""
    from ranx import (  # numba-compiled: loaded only when a tune job runs
        Qrels,
        Run,
        compare,
    )

    report = compare(Qrels(qrels), runs=[Run(control, name="current"), Run(candidate, name="candidate")],
                     metrics=[metric], stat_test="student", max_p=1.0)
    p = report.to_dict()["candidate"]["comparisons"]["current"]
    value = float(p.get(metric) if isinstance(p, dict) else p)
    return None if math.isnan(value) else value


def run_tune(handle: JobHandle) -> dict[str, Any]:
    ctx = handle.runner.ctx
    job = handle.job
    params = TuneParams.model_validate(job.params)
    queries, qrels = parse_eval_set(job.params)
    with ctx.db.session() as s:
        index = s.get(Index, job.index_id)
    if index is None:
        raise PermanentJobError("index not found")
    own = search_defaults.stored_defaults(ctx.db, [index.id]).get(index.id)
    now = search_defaults.effective(ctx.settings, own)
    current = {"mode": now["mode"], "rrf_k": now["rrf_k"], "fusion_weights": now["fusion_weights"]}
    grid = settings_grid(params)
    if not any(_same(g, current) for g in grid):
        grid.insert(0, current)  # the settings in use are always judged on the same queries
    search = SearchService(ctx)
    tried, runs = [], []
    total = len(grid) * len(queries)
    for n, setting in enumerate(grid):
        run, latencies = {}, []
        for qid, text in queries.items():
            run[qid], ms = timed_ranking(search, index, text, setting["mode"], params.top_k,
                                         rrf_k=setting["rrf_k"], fusion_weights=setting["fusion_weights"])
            latencies.append(ms)
        runs.append(run)
        tried.append({"settings": setting, "current": _same(setting, current), **run_metrics(run, latencies, qrels)})
        handle.progress(100 * (n + 1) * len(queries) / total)
    at = next(i for i, t in enumerate(tried) if t["current"])
    # Best by the metric; a tie keeps the current settings (no change without a difference).
    best = max(range(len(tried)), key=lambda i: (tried[i][params.metric], i == at))
    p_value = None if best == at else _paired_p_value(qrels, runs[at], runs[best], params.metric)
    gain = tried[best][params.metric] - tried[at][params.metric]
    applied = best != at and gain > 0 and p_value is not None and p_value < params.alpha
    winner = tried[best]["settings"]
    if best == at:
        reason = "the current settings scored best"
    elif not applied:
        reason = (f"the best setting gains {gain:+.4f} {params.metric}, but the paired t-test gives "
                  f"p = {p_value if p_value is not None else 'undefined'} (needs < {params.alpha})")
    else:
        reason = f"the best setting gains {gain:+.4f} {params.metric} at p = {p_value:.4g} < {params.alpha}"
    with ctx.db.session() as s:
        if applied:
            chosen = SearchDefaults(mode=winner["mode"], rrf_k=winner["rrf_k"], fusion_weights=winner["fusion_weights"])
            search_defaults.store(s, index.id, chosen, "tune", job.id)
            principal = Principal(project_id=job.project_id, key_id=job.created_by_key_id, role="editor")
            audit(s, principal, "index.tuned", "index", index.id, settings=chosen.model_dump(exclude_none=True),
                  job_id=job.id, metric=params.metric, gain=round(gain, 4), p_value=p_value)
            s.commit()
    return {"index_id": index.id, "metric": params.metric, "queries": len(queries), "alpha": params.alpha,
            "current": tried[at], "best": tried[best], "gain": round(gain, 4), "p_value": p_value,
            "applied": applied, "reason": reason, "tried": tried,
            "search_defaults": search_defaults.effective(ctx.settings, search_defaults.stored_defaults(
                ctx.db, [index.id]).get(index.id))}
