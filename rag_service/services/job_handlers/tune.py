"""The `tune` job: evaluation as a product feature. Every setting of the grid (each mode x prf,
lexical_unit, and for hybrid each fusion with its weights and rrf_k) is run on the index with a
labelled set. Then the best setting with a lexical side is run again with each BM25 k1 x b of the
grid, on a shadow copy of the index (tune_bm25.py): one coordinate at a time, so the job costs
the sum of the two grids, not their product. The best by params.metric replaces the index's
search defaults (and BM25 k1, b) only when it beats the settings the index uses now and ranx's
paired t-test over the queries supports the difference (p < params.alpha). Otherwise nothing
changes. The result lists every setting tried, with its metrics."""

from __future__ import annotations

import math
from typing import Any

from rag_service.errors import PermanentJobError
from rag_service.models import Index
from rag_service.search_params import SearchDefaults
from rag_service.services import search_defaults
from rag_service.services.common import Principal, audit
from rag_service.services.job_handle import JobHandle
from rag_service.services.job_handlers.tune_bm25 import (
    apply_bm25,
    bm25_of,
    candidate_pairs,
    set_bm25,
    shadow_copy,
)
from rag_service.services.job_params import TuneParams, parse_eval_set
from rag_service.services.reindex import run_metrics, timed_ranking
from rag_service.services.search import SearchService


SETTING_FIELDS = ("mode", "rrf_k", "fusion_weights", "fusion", "prf", "lexical_unit")


def _setting(mode: str, prf: bool, lexical_unit: str | None = None, fusion: str | None = None,
             rrf_k: int | None = None, fusion_weights: list[float] | None = None) -> dict[str, Any]:
    return {"mode": mode, "rrf_k": rrf_k, "fusion_weights": list(fusion_weights) if fusion_weights else None,
            "fusion": fusion, "prf": prf, "lexical_unit": lexical_unit}


def _unit_on(index: Index, unit: str) -> str:
    """The lexical unit a search of this index runs: chunk BM25 where it has no document points."""
    return unit if index.document_bm25 else "chunk"


def settings_grid(params: TuneParams, index: Index) -> list[dict[str, Any]]:
    g = params.grid
    units = list(dict.fromkeys(_unit_on(index, u) for u in g.lexical_unit))
    grid: list[dict[str, Any]] = []
    for mode in g.modes:
        for prf in g.prf:
            if mode == "dense":
                grid.append(_setting(mode, prf))
            elif mode == "lexical":
                grid += [_setting(mode, prf, unit) for unit in units]
            else:
                for unit in units:
                    for fusion in g.fusion:
                        if fusion == "rrf":
                            grid += [_setting(mode, prf, unit, fusion, k, w) for k in g.rrf_k for w in g.fusion_weights]
                        else:
                            grid += [_setting(mode, prf, unit, fusion, None, w) for w in g.zscore_weights]
    return grid


def _key(setting: dict[str, Any], index: Index) -> tuple:
    """What tells two settings apart: the fields the mode uses (rrf_k only under rrf fusion), with
    lexical_unit as it runs on this index."""
    mode, unit = setting["mode"], _unit_on(index, setting.get("lexical_unit") or "document")
    if mode == "dense":
        return mode, bool(setting.get("prf"))
    if mode == "lexical":
        return mode, bool(setting.get("prf")), unit
    fusion = setting.get("fusion")
    return (mode, bool(setting.get("prf")), unit, fusion, tuple(setting["fusion_weights"] or ()),
            setting["rrf_k"] if fusion == "rrf" else None)


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


def _judged(search: SearchService, index: Index, setting: dict[str, Any], queries: dict[str, str],
            top_k: int) -> tuple[dict, list[float]]:
    """One setting's run over the labelled queries, and each query's latency."""
    run, latencies = {}, []
    for qid, text in queries.items():
        run[qid], ms = timed_ranking(search, index, text, setting["mode"], top_k,
                                     **{f: setting[f] for f in SETTING_FIELDS if f != "mode"})
        latencies.append(ms)
    return run, latencies


def _verdict(at: int, best: int, gain: float, p_value: float | None, metric: str,
             alpha: float) -> tuple[bool, str]:
    applied = best != at and gain > 0 and p_value is not None and p_value < alpha
    if best == at:
        return applied, "the current settings scored best"
    if not applied:
        p = "undefined" if p_value is None else f"{p_value:.4g}"
        return applied, (f"the best setting gains {gain:+.4f} {metric}, but the paired t-test gives "
                         f"p = {p} (needs < {alpha})")
    return applied, f"the best setting gains {gain:+.4f} {metric} at p = {p_value:.4g} < {alpha}"


def run_tune(handle: JobHandle) -> dict[str, Any]:
    ctx = handle.runner.ctx
    job = handle.job
    # "_shadow": the job's own note of its shadow collection (submission refuses such a field).
    params = TuneParams.model_validate({k: v for k, v in job.params.items() if not k.startswith("_")})
    queries, qrels = parse_eval_set(job.params)
    with ctx.db.session() as s:
        index = s.get(Index, job.index_id)
    if index is None:
        raise PermanentJobError("index not found")
    own = search_defaults.stored_defaults(ctx.db, [index.id]).get(index.id)
    now = search_defaults.effective(ctx.settings, own)
    current = {f: now[f] for f in SETTING_FIELDS}
    grid = settings_grid(params, index)
    if not any(_key(g, index) == _key(current, index) for g in grid):
        grid.insert(0, current)  # the settings in use are always judged on the same queries
    search = SearchService(ctx)
    tried, runs = [], []
    rounds = len(grid) + len(params.grid.bm25_k1) * len(params.grid.bm25_b)  # for progress only
    for n, setting in enumerate(grid):
        run, latencies = _judged(search, index, setting, queries, params.top_k)
        runs.append(run)
        tried.append({"settings": setting, "bm25": bm25_of(setting, index),
                      "current": _key(setting, index) == _key(current, index), **run_metrics(run, latencies, qrels)})
        handle.progress(90 * (n + 1) / rounds)
    at = next(i for i, t in enumerate(tried) if t["current"])
    # Best by the metric; a tie keeps the current settings (no change without a difference).
    by_metric = sorted(range(len(tried)), key=lambda i: (tried[i][params.metric], i == at), reverse=True)
    lexical = next((i for i in by_metric if tried[i]["bm25"] is not None), None)
    pairs = candidate_pairs(params.grid, tried[lexical]["bm25"]) if lexical is not None else []
    shadow_collection = None
    if pairs:
        base = tried[lexical]
        unit = base["bm25"]["unit"]
        with shadow_copy(handle, index) as shadow:
            shadow_collection = shadow.collection
            for n, (k1, b) in enumerate(pairs):
                set_bm25(ctx, shadow, unit, k1, b)
                run, latencies = _judged(search, shadow, base["settings"], queries, params.top_k)
                runs.append(run)
                tried.append({"settings": base["settings"], "bm25": {"unit": unit, "k1": k1, "b": b},
                              "current": False, **run_metrics(run, latencies, qrels)})
                handle.progress(90 * (len(grid) + n + 1) / rounds)
    best = max(range(len(tried)), key=lambda i: (tried[i][params.metric], i == at))
    p_value = None if best == at else _paired_p_value(qrels, runs[at], runs[best], params.metric)
    gain = tried[best][params.metric] - tried[at][params.metric]
    applied, reason = _verdict(at, best, gain, p_value, params.metric, params.alpha)
    winner = tried[best]["settings"]
    new_bm25 = tried[best]["bm25"] if tried[best]["bm25"] != bm25_of(winner, index) else None
    if applied:
        if new_bm25:  # first the vectors: the defaults that rank with them follow
            apply_bm25(ctx, index.id, new_bm25)
        with ctx.db.session() as s:
            chosen = SearchDefaults(**winner)
            search_defaults.store(s, index.id, chosen, "tune", job.id)
            principal = Principal(project_id=job.project_id, key_id=job.created_by_key_id, role="editor")
            audit(s, principal, "index.tuned", "index", index.id, settings=chosen.model_dump(exclude_none=True),
                  bm25=new_bm25, job_id=job.id, metric=params.metric, gain=round(gain, 4), p_value=p_value)
            s.commit()
    handle.progress(100)
    return {"index_id": index.id, "metric": params.metric, "queries": len(queries), "alpha": params.alpha,
            "current": tried[at], "best": tried[best], "gain": round(gain, 4), "p_value": p_value,
            "applied": applied, "reason": reason, "bm25_changed": new_bm25 if applied else None,
            "shadow_collection": shadow_collection, "tried": tried,
            "search_defaults": search_defaults.effective(ctx.settings, search_defaults.stored_defaults(
                ctx.db, [index.id]).get(index.id))}
