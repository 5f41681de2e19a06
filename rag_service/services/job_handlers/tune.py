"""The `tune` job: evaluation as a product feature, in two rounds, each judged against its own
control on the same collection. Round 1 runs every setting of the grid (each mode x prf,
lexical_unit, and for hybrid each fusion with its weights and rrf_k) on the index with a labelled
set, against the settings in use. Round 2 runs the settings the index will use after round 1
with each BM25 k1 x b of the grid, on a shadow copy of the index (tune_bm25.py), against the pair
in use on that same shadow: one coordinate at a time, so the job costs the sum of the two grids,
not their product. A round's best is applied only when it beats its control and ranx's paired
t-test over the queries supports the difference (p < params.alpha). Otherwise nothing changes.
The result lists every setting tried, with its metrics."""

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
    bm25_of,
    candidate_pairs,
    reencode_live,
    set_bm25,
    set_live_bm25,
    shadow_copy,
    unit_on,
)
from rag_service.services.job_params import TuneParams, parse_eval_set
from rag_service.services.reindex import run_metrics, timed_ranking
from rag_service.services.search import SearchService


SETTING_FIELDS = ("mode", "rrf_k", "fusion_weights", "fusion", "prf", "lexical_unit")


def _setting(mode: str, prf: bool, lexical_unit: str | None = None, fusion: str | None = None,
             rrf_k: int | None = None, fusion_weights: list[float] | None = None) -> dict[str, Any]:
    return {"mode": mode, "rrf_k": rrf_k, "fusion_weights": list(fusion_weights) if fusion_weights else None,
            "fusion": fusion, "prf": prf, "lexical_unit": lexical_unit}


def settings_grid(params: TuneParams, index: Index) -> list[dict[str, Any]]:
    g = params.grid
    units = list(dict.fromkeys(unit_on(index, u) for u in g.lexical_unit))
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
    mode, unit = setting["mode"], unit_on(index, setting.get("lexical_unit") or "document")
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
    bm25_round = bool(params.grid.bm25_k1 and params.grid.bm25_b)
    share = 50 if bm25_round else 95  # of the progress bar, for the first round
    for n, setting in enumerate(grid):
        run, latencies = _judged(search, index, setting, queries, params.top_k)
        runs.append(run)
        tried.append({"round": 1, "settings": setting, "bm25": bm25_of(setting, index),
                      "current": _key(setting, index) == _key(current, index), **run_metrics(run, latencies, qrels)})
        handle.progress(share * (n + 1) / len(grid))
    at = next(i for i, t in enumerate(tried) if t["current"])
    # Round 1, on the live collection: the best by the metric against the settings in use (a tie
    # keeps them: no change without a difference).
    best = max(range(len(tried)), key=lambda i: (tried[i][params.metric], i == at))
    p_value = None if best == at else _paired_p_value(qrels, runs[at], runs[best], params.metric)
    gain = tried[best][params.metric] - tried[at][params.metric]
    settings_applied, reason = _verdict(at, best, gain, p_value, params.metric, params.alpha)
    # Round 2 tunes BM25 for the settings the index will run, on a shadow, each pair against the
    # pair in use judged on the same shadow (its chunks may differ from the live ones: a shadow is
    # re-chunked from each version's text, so only shadow runs are compared with each other).
    base = tried[best] if settings_applied else tried[at]
    pairs = candidate_pairs(params.grid, base["bm25"]) if bm25_round and base["bm25"] else []
    second, shadow_collection = None, None
    if pairs:
        unit = base["bm25"]["unit"]
        with shadow_copy(handle, index, progress=lambda n, total: handle.progress(share + 5 * n / total)) as shadow:
            shadow_collection = shadow.collection
            first = len(tried)
            for n, (k1, b) in enumerate([(base["bm25"]["k1"], base["bm25"]["b"])] + pairs):
                if n:  # the shadow starts with the live index's k1 and b: the control
                    set_bm25(ctx, shadow, unit, k1, b)
                run, latencies = _judged(search, shadow, base["settings"], queries, params.top_k)
                runs.append(run)
                tried.append({"round": 2, "settings": base["settings"], "bm25": {"unit": unit, "k1": k1, "b": b},
                              "current": False, "control": n == 0, **run_metrics(run, latencies, qrels)})
                handle.progress(share + 5 + (90 - share) * (n + 1) / (len(pairs) + 1))
        second = _bm25_verdict(tried, runs, first, qrels, params)
    handle.progress(96)  # the last point a cancel is honoured: after it the job may change the index
    changed = _apply(ctx, job, index, params, tried[best]["settings"] if settings_applied else None,
                     second["best"]["bm25"] if second and second["applied"] else None, base["bm25"],
                     gain, p_value, second)
    if second:
        reason += f"; BM25: {second['reason']}"
    if changed is None:  # the index's BM25 changed while the job measured: nothing applied
        settings_applied, reason = False, "the index's BM25 k1 or b changed while the job ran: nothing applied"
        second = {**second, "applied": False}
    applied = settings_applied or bool(second and second["applied"])
    shown = second["best"] if second and second["best"] is not second["control"] else tried[best]
    return {"index_id": index.id, "metric": params.metric, "queries": len(queries), "alpha": params.alpha,
            "current": tried[at], "best": shown, "gain": round(gain, 4), "p_value": p_value,
            "applied": applied, "reason": reason,
            "settings_changed": settings_applied, "bm25_changed": changed.get("bm25") if changed else None,
            "bm25_round": second,
            "shadow_collection": shadow_collection, "tried": tried,
            "search_defaults": search_defaults.effective(ctx.settings, search_defaults.stored_defaults(
                ctx.db, [index.id]).get(index.id))}


def _bm25_verdict(tried: list[dict], runs: list[dict], first: int, qrels: dict,
                  params: TuneParams) -> dict[str, Any]:
    """Round 2's decision: its best pair against its control (the pair in use, same shadow)."""
    best = max(range(first, len(tried)), key=lambda i: (tried[i][params.metric], i == first))
    p_value = None if best == first else _paired_p_value(qrels, runs[first], runs[best], params.metric)
    gain = tried[best][params.metric] - tried[first][params.metric]
    applied, reason = _verdict(first, best, gain, p_value, params.metric, params.alpha)
    if best == first:
        reason = "the k1 and b in use scored best"
    return {"control": tried[first], "best": tried[best], "gain": round(gain, 4), "p_value": p_value,
            "applied": applied, "reason": reason}


def _apply(ctx, job, index: Index, params: TuneParams, settings: dict[str, Any] | None,
           bm25: dict[str, Any] | None, measured: dict[str, Any] | None,
           gain: float, p_value: float | None, second: dict[str, Any] | None) -> dict[str, Any] | None:
    """The winning settings and BM25 pair, with their audit row, in one transaction; then the live
    vectors are re-encoded for the new pair (as a PATCH does). None when the BM25 the job measured
    is no longer the index's (a PATCH while it ran): nothing is applied then."""
    if settings is None and bm25 is None:
        return {}
    with ctx.db.session() as s:
        if bm25 is not None and not set_live_bm25(s, index.id, measured, bm25):
            s.rollback()
            return None
        chosen = SearchDefaults(**settings) if settings is not None else None
        if chosen is not None:
            search_defaults.store(s, index.id, chosen, "tune", job.id)
        principal = Principal(project_id=job.project_id, key_id=job.created_by_key_id, role="editor")
        audit(s, principal, "index.tuned", "index", index.id,
              settings=chosen.model_dump(exclude_none=True) if chosen else None,
              bm25=bm25, bm25_before=measured if bm25 else None, job_id=job.id, metric=params.metric,
              gain=round(gain, 4) if settings else None, p_value=p_value if settings else None,
              bm25_gain=second["gain"] if bm25 else None, bm25_p_value=second["p_value"] if bm25 else None)
        s.commit()
    if bm25 is not None:
        reencode_live(ctx, index.id, bm25["unit"])
    return {"bm25": bm25}
