"""`python -m benchmarks quality`: retrieval quality of the service on a BEIR collection.

The corpus goes in through the service's own ingestion path (multipart uploads to
the real HTTP app, in a throwaway data directory); every judged query is asked
through `POST /v1/indexes/{id}/search` in each mode; runs are scored with ranx
(nDCG@10, Recall@100, MRR@10) beside a rank_bm25 baseline on the same texts and
the published numbers for the collection. Each mode's run is saved (runs/<mode>.json,
ranx's format) and tested against a control run with a paired test: this run's `default`
(the request a user sends with no mode or fusion fields, on an index created with no
settings), or a previous results directory's (`--compare-to`).
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from benchmarks.common import BeirDataset, Progress, ServiceHarness, load_beir, log, parse_modes, percentile
from benchmarks.quality_compare import (MAX_P, STAT_TEST, load_previous, missing_queries, paired_comparisons,
                                        save_runs, versus_published)
from benchmarks.quality_report import write_chart, write_markdown
from benchmarks.quality_tune import TUNED_MODE, add_arguments as add_tune_arguments, check_arguments, run_tune_job
from benchmarks.references import published
from benchmarks.report import write_json
from rag_service.search_params import MAX_TOP_K

METRICS = ("ndcg@10", "recall@100", "mrr@10")
MODES = ("dense", "lexical", "hybrid")
# `default`: the search body names no mode and no fusion, as a user's first request would.
DEFAULT_MODE = "default"
# `previous`: the service's default request before document search (issue 15): hybrid RRF of
# the chunks' dense and BM25 rankings, no feedback. On this index, so with its titled vectors.
PREVIOUS_MODE = "previous"
PREVIOUS_REQUEST = {"mode": "hybrid", "fusion": "rrf", "prf": False, "lexical_unit": "chunk"}
ALL_MODES = (DEFAULT_MODE,) + MODES + (PREVIOUS_MODE,)
TOP_K = 100
# rank_bm25 settings: Anserini's BEIR baseline, and the service's own index defaults.
BM25_VARIANTS = {"rank_bm25_baseline": (0.9, 0.4), "rank_bm25_baseline_k1.2_b0.75": (1.2, 0.75)}


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("quality", help="nDCG@10 / Recall@100 / MRR@10 and latency on a BEIR dataset",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True, type=Path, help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/")
    p.add_argument("--split", default="test", choices=("test", "dev"))
    p.add_argument("--modes", default=None,
                   help=f"comma-separated subset of {','.join(ALL_MODES)} (default: all of them); "
                        "'default' sends no mode or fusion fields")
    p.add_argument("--model", default=None, help="embedding model of the index (default: the service's default)")
    p.add_argument("--limit-docs", type=int, default=None, help="subset of the corpus (keeps judged documents)")
    p.add_argument("--limit-queries", type=int, default=None)
    p.add_argument("--out", type=Path, default=None, help="write results.json, results.md, results.png here")
    p.add_argument("--workers", default="auto",
                   help="concurrent upload threads, or 'auto': time the first uploads one at a time and "
                        "switch to --max-workers when the whole corpus would take longer than --budget-min")
    p.add_argument("--max-workers", type=int, default=2)
    p.add_argument("--budget-min", type=float, default=25.0)
    p.add_argument("--chunk-chars", type=int, default=None,
                   help="index chunk_max_characters (default: send none, so the index gets the service's default; "
                        "e.g. 4000 makes most BEIR documents one chunk, as MTEB embeds them)")
    p.add_argument("--no-explain", action="store_true",
                   help="send explain=false (the service default is true: hybrid then also runs both arms alone)")
    p.add_argument("--skip-baseline", action="store_true", help="leave out the rank_bm25 baseline")
    p.add_argument("--keep-data", action="store_true", help="keep the temporary data directory")
    p.add_argument("--tune-split", default=None, choices=("dev",),
                   help="grid-search hybrid fusion (rrf_k, [dense, lexical] weights) on this split's queries "
                        "(nDCG@10, never the test queries), then also score the test split with the winner")
    p.add_argument("--exclude-self", action="store_true",
                   help="BEIR's rule for query-by-document collections (ArguAna, Quora, ...): drop a hit whose "
                        "document id is the query id, before scoring and before the top-k cut")
    p.add_argument("--compare-to", type=Path, default=None, metavar="DIR",
                   help="a previous results directory (with runs/*.json): test each mode against its default run "
                        "(or its hybrid run if it has none) instead of this run's default")
    add_tune_arguments(p)
    return p


# rrf_k x [dense, lexical] weights; (60, 1, 1) is the service default.
TUNING_GRID = [(k, w) for k in (20, 60, 120) for w in ((1.0, 1.0), (1.0, 1.5), (1.5, 1.0), (1.0, 2.0), (2.0, 1.0))]


def tune_fusion(h: ServiceHarness, index_id: str, args: argparse.Namespace) -> dict[str, Any]:
    """nDCG@10 of each RRF grid point on the tuning split, through the service's own hybrid
    search (per-request rrf_k / fusion_weights, fusion rrf); returns the grid and the winner.
    The other document-search settings are the tune job's to search (job_handlers/tune.py)."""
    dev = load_beir(args.dataset, args.tune_split)
    log(f"tuning hybrid fusion on {dev.name}/{args.tune_split}: {len(dev.queries)} queries, {len(TUNING_GRID)} settings")
    grid = []
    for k, weights in TUNING_GRID:
        extra = {"fusion": "rrf", "rrf_k": k, "fusion_weights": list(weights)}
        run_, _, _ = search_mode(h, index_id, dev, "hybrid", False, extra,
                                 top_k=10, label=f"tune k={k} w={weights}", exclude_self=args.exclude_self)
        grid.append({"rrf_k": k, "fusion_weights": list(weights), "ndcg@10": score(dev, run_)["ndcg@10"]})
        log(f"tune: {grid[-1]}")
    best = max(grid, key=lambda g: (g["ndcg@10"], g["rrf_k"] == 60 and g["fusion_weights"] == [1.0, 1.0]))
    return {"split": args.tune_split, "queries": len(dev.queries), "grid": grid, "best": best}


# -- ingestion -----------------------------------------------------------------
def _upload_all(h: ServiceHarness, index_id: str, ds: BeirDataset, doc_ids: list[str], workers: int,
                stats: dict[str, Any], bar: Progress) -> None:
    def one(doc_id: str):
        return doc_id, h.upload_text(index_id, doc_id, ds.document_text(doc_id))

    def record(doc_id: str, response) -> None:
        if response.status_code in (200, 201):
            stats["chunks"] += int(response.json().get("chunk_count") or 0)
        else:
            stats["failed"] += 1
            if len(stats["errors"]) < 20:
                stats["errors"].append({"doc": doc_id, "status": response.status_code, "body": response.text[:300]})
        bar.advance()

    if workers <= 1:
        for doc_id in doc_ids:
            record(*one(doc_id))
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for future in as_completed([pool.submit(one, d) for d in doc_ids]):
            record(*future.result())


def ingest(h: ServiceHarness, index_id: str, ds: BeirDataset, args: argparse.Namespace) -> dict[str, Any]:
    doc_ids = list(ds.corpus)
    stats: dict[str, Any] = {"documents": len(doc_ids), "chunks": 0, "failed": 0, "errors": []}
    started = time.perf_counter()
    with Progress("ingest", len(doc_ids)) as bar:
        if args.workers == "auto":
            probe = doc_ids[:200]
            _upload_all(h, index_id, ds, probe, 1, stats, bar)
            probe_s = time.perf_counter() - started
            projected_min = probe_s / max(len(probe), 1) * len(doc_ids) / 60
            workers = args.max_workers if projected_min > args.budget_min else 1
            stats["probe"] = {"documents": len(probe), "seconds": round(probe_s, 2),
                              "docs_per_s": round(len(probe) / probe_s, 3) if probe_s else None,
                              "projected_min_sequential": round(projected_min, 1)}
            log(f"probe: {len(probe)} docs in {probe_s:.1f}s one at a time -> {projected_min:.1f} min projected; "
                f"using {workers} worker(s) for the rest")
            rest = doc_ids[len(probe):]
        else:
            workers, rest = max(1, int(args.workers)), doc_ids
        _upload_all(h, index_id, ds, rest, workers, stats, bar)
    seconds = time.perf_counter() - started
    stats.update(workers=workers, seconds=round(seconds, 2), docs_per_s=round(len(doc_ids) / seconds, 3))
    return stats


# -- retrieval -----------------------------------------------------------------
def as_run_scores(names: list[str]) -> dict[str, float]:
    # Score by rank so ranx sees exactly the service's order (fused scores tie often).
    out: dict[str, float] = {}
    for rank, name in enumerate(names):
        out.setdefault(name, float(len(names) - rank))
    return out


def request_top_k(top_k: int, exclude_self: bool) -> int:
    """One more than kept when the query's own document may be dropped (BEIR asks for
    top_k + 1 too), within the service's cap: at top_k 100 a self-hit leaves 99."""
    return min(top_k + 1, MAX_TOP_K) if exclude_self else top_k


def ranked(names: list[str], qid: str, top_k: int, exclude_self: bool) -> tuple[list[str], bool]:
    """The hits scored for one query: with exclude_self, BEIR's rule (a hit whose document
    id equals the query id is skipped), then the top-k cut. Returns (names, self hit dropped)."""
    kept = [n for n in names if n != qid] if exclude_self else names
    return kept[:top_k], len(kept) != len(names)


def search_mode(h: ServiceHarness, index_id: str, ds: BeirDataset, mode: str | None, explain: bool | None,
                extra: dict[str, Any] | None = None, top_k: int = TOP_K, label: str | None = None,
                exclude_self: bool = False, stats: dict[str, int] | None = None):
    """Every query of `ds` through the search route; mode None (or "default") sends no mode
    field. Returns (run, latencies, queries answered with fewer hits than asked for);
    `stats`, when given, gets `self_hits_removed`."""
    asked = request_top_k(top_k, exclude_self)

    def body(query: str) -> dict[str, Any]:
        b = {"query": query, "top_k": asked, "result_type": "document", **(extra or {})}
        if mode not in (None, DEFAULT_MODE):
            b["mode"] = mode
        if explain is not None:
            b["explain"] = explain
        return b

    h.search(index_id, body(next(iter(ds.queries.values()))))  # warm-up, not timed
    run: dict[str, dict[str, float]] = {}
    latencies: list[float] = []
    short = removed = 0
    with Progress(f"search {label or mode or DEFAULT_MODE}", len(ds.queries)) as bar:
        for qid, text in ds.queries.items():
            answer, ms = h.search(index_id, body(text))
            latencies.append(ms)
            names = [r["document_name"] for r in answer["results"]]  # uploads are named by BEIR doc id
            short += len(names) < min(asked, len(ds.corpus))
            names, dropped = ranked(names, qid, top_k, exclude_self)
            removed += dropped
            run[qid] = as_run_scores(names)
            bar.advance()
    if stats is not None:
        stats["self_hits_removed"] = removed
    return run, latencies, short


def bm25_baseline(ds: BeirDataset, k1: float, b: float, exclude_self: bool = False,
                  stats: dict[str, int] | None = None):
    import numpy as np
    from rank_bm25 import BM25Okapi

    from pipelines.lexical import tokenize

    doc_ids = list(ds.corpus)
    bm25 = BM25Okapi([tokenize(ds.document_text(d)) for d in doc_ids], k1=k1, b=b)
    run: dict[str, dict[str, float]] = {}
    latencies: list[float] = []
    removed = 0
    for qid, text in ds.queries.items():
        started = time.perf_counter()
        scores = bm25.get_scores(tokenize(text))
        k = min(request_top_k(TOP_K, exclude_self), len(doc_ids))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        latencies.append((time.perf_counter() - started) * 1000)
        names, dropped = ranked([doc_ids[i] for i in top], qid, TOP_K, exclude_self)
        removed += dropped
        run[qid] = as_run_scores(names)
    if stats is not None:
        stats["self_hits_removed"] = removed
    return run, latencies, bm25.avgdl


def score(ds: BeirDataset, run: dict[str, dict[str, float]]) -> dict[str, float]:
    import warnings

    from ranx import Qrels, Run, evaluate

    warnings.filterwarnings("ignore", message="unsafe cast", module="ranx")  # numba noise on uint64 ids
    qrels = Qrels({q: dict(d) for q, d in ds.qrels.items()})
    # A query the service answered with nothing must count as zero, not vanish.
    run = {q: (run.get(q) or {}) for q in ds.queries}
    values = evaluate(qrels, Run({q: r for q, r in run.items() if r}), list(METRICS), make_comparable=True)
    return {m: round(float(values[m]), 4) for m in METRICS}


# -- the command -----------------------------------------------------------------
def create_benchmark_index(h: ServiceHarness, ds: BeirDataset, args: argparse.Namespace) -> tuple[dict, dict]:
    """The benchmark's one index: no settings unless an option asks for one, so `default`
    searches what a user gets. Returns (index, the settings sent)."""
    settings: dict[str, Any] = {}
    if args.chunk_chars is not None:
        settings["chunk_max_characters"] = args.chunk_chars
    if args.model:
        settings["embedding_model"] = args.model
    return h.create_index(f"bench-{ds.name}", description=f"benchmark {ds.name}", **settings), settings


LATENCY_TOP_K = 10


def latency_against_previous(h: ServiceHarness, index_id: str, ds: BeirDataset, queries: int = 300) -> dict[str, Any]:
    """Search latency at top_k 10 of the default request against the previous default's, on the
    same index in the same run: each query asked both ways back to back, the order alternating,
    so noise lands on both sides."""
    bodies = {DEFAULT_MODE: {}, PREVIOUS_MODE: PREVIOUS_REQUEST}
    times: dict[str, list[float]] = {name: [] for name in bodies}
    texts = list(ds.queries.values())[:queries]
    for name, extra in bodies.items():  # warm-up, not timed
        h.search(index_id, {"query": texts[0], "top_k": LATENCY_TOP_K, "result_type": "document", **extra})
    with Progress("latency default vs previous, top_k 10", len(texts)) as bar:
        for n, text in enumerate(texts):
            for name in (list(bodies) if n % 2 == 0 else list(bodies)[::-1]):
                _, ms = h.search(index_id, {"query": text, "top_k": LATENCY_TOP_K, "result_type": "document",
                                            **bodies[name]})
                times[name].append(ms)
            bar.advance()
    out: dict[str, Any] = {name: {"latency_ms_p50": round(percentile(t, 50), 2),
                                  "latency_ms_p95": round(percentile(t, 95), 2)} for name, t in times.items()}
    for q in ("p50", "p95"):
        out[f"ratio_{q}"] = round(out[DEFAULT_MODE][f"latency_ms_{q}"] / out[PREVIOUS_MODE][f"latency_ms_{q}"], 3)
    return out | {"top_k": LATENCY_TOP_K, "queries": len(texts), "previous_request": PREVIOUS_REQUEST}


def mode_row(ds: BeirDataset, run_: dict[str, dict[str, float]], lat: list[float], short: int) -> dict[str, Any]:
    return {**score(ds, run_), "latency_ms_p50": round(percentile(lat, 50), 2),
            "latency_ms_p95": round(percentile(lat, 95), 2), "queries_with_fewer_results": short}


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    modes = parse_modes(args.modes or ",".join(ALL_MODES), ALL_MODES)
    if args.compare_to is None and DEFAULT_MODE not in modes:
        modes.insert(0, DEFAULT_MODE)
        log("no --compare-to: also running 'default', the control of the paired tests")
    previous = load_previous(args.compare_to) if args.compare_to else None  # fail before the long part
    check_arguments(args)
    ds = load_beir(args.dataset, args.split, args.limit_docs, args.limit_queries)
    log(f"{ds.name}/{args.split}: {len(ds.corpus)} documents, {len(ds.queries)} queries"
        + (" (subset)" if ds.subset else ""))
    for note in ds.notes:
        log(note)

    explain = False if args.no_explain else None
    results: dict[str, Any] = {"dataset": ds.name, "model": None, "modes": {}, "split": args.split,
                               "documents": len(ds.corpus), "queries": len(ds.queries), "subset": ds.subset,
                               "exclude_self": args.exclude_self, "notes": list(ds.notes)}
    runs: dict[str, dict[str, dict[str, float]]] = {}
    with ServiceHarness(keep=args.keep_data) as h:
        log(f"service data dir: {h.data_dir}")
        index, index_settings = create_benchmark_index(h, ds, args)
        results["model"] = index["embedding_model"]
        results["ingestion"] = ingest(h, index["id"], ds, args)
        ing = results["ingestion"]
        log(f"ingested {ing['documents']} docs ({ing['chunks']} chunks, {ing['failed']} failed) in "
            f"{ing['seconds']:.1f}s: {ing['docs_per_s']:.2f} docs/s")
        index = h.get_index(index["id"])
        results["service"] = {
            "bm25": index["bm25"], "chunking": index["chunking"],
            # What "default" means: an index created with none of these, searched with no mode or fusion.
            "index_settings": index_settings, "index_defaults": not index_settings,
            "service_default_chunking": {"max_characters": h.settings.default_chunk_max_characters,
                                         "overlap": h.settings.default_chunk_overlap},
            "embedding_precision": h.settings.embedding_precision,
            "embedding_batch_size": h.settings.embedding_batch_size,
            "explain": "service default (true)" if explain is None else explain,
            "endpoint": "POST /v1/indexes/{id}/search", "result_type": "document", "top_k": TOP_K,
            "top_k_requested": request_top_k(TOP_K, args.exclude_self),
        }
        if index_settings:
            log(f"index created with {index_settings}: 'default' is the default request on this index, "
                "not what a user gets")
        for mode in modes:
            stats: dict[str, int] = {}
            as_before = mode == PREVIOUS_MODE
            run_, lat, short = search_mode(h, index["id"], ds, "hybrid" if as_before else mode, explain,
                                           PREVIOUS_REQUEST if as_before else None, label=mode,
                                           exclude_self=args.exclude_self, stats=stats)
            runs[mode] = run_
            results["modes"][mode] = {**mode_row(ds, run_, lat, short), **stats}
            log(f"{mode}: {results['modes'][mode]}")
        if DEFAULT_MODE in modes and PREVIOUS_MODE in modes:
            results["latency_top10"] = latency_against_previous(h, index["id"], ds)
            log(f"latency at top_k 10: {results['latency_top10']}")
        if args.tune_split:
            results["tuning"] = tune_fusion(h, index["id"], args)
            best = results["tuning"]["best"]
            extra = {"fusion": "rrf", "rrf_k": best["rrf_k"], "fusion_weights": best["fusion_weights"]}
            stats = {}
            run_, lat, short = search_mode(h, index["id"], ds, "hybrid", explain, extra, label="hybrid-tuned",
                                           exclude_self=args.exclude_self, stats=stats)
            runs["hybrid_tuned"] = run_
            results["modes"]["hybrid_tuned"] = {**mode_row(ds, run_, lat, short), **stats, **extra,
                                                "tuned_on": f"{args.tune_split} split"}
            log(f"hybrid_tuned: {results['modes']['hybrid_tuned']}")
        if args.tune_job:
            results["tune_job"] = run_tune_job(h, index["id"], set(ds.corpus), args)
            if results["tune_job"]["applied"]:  # the index's new defaults, on the test queries
                run_, lat, short = search_mode(h, index["id"], ds, DEFAULT_MODE, explain, None, label=TUNED_MODE,
                                               exclude_self=args.exclude_self)
                runs[TUNED_MODE] = run_
                results["modes"][TUNED_MODE] = {**mode_row(ds, run_, lat, short),
                                                "tuned_on": f"{args.tune_job} split, by the tune job"}
                log(f"{TUNED_MODE}: {results['modes'][TUNED_MODE]}")

    if not args.skip_baseline:
        for name, (k1, b) in BM25_VARIANTS.items():
            stats = {}
            run_, lat, avgdl = bm25_baseline(ds, k1, b, args.exclude_self, stats)
            runs[name] = run_
            results["modes"][name] = {**score(ds, run_), **stats, "latency_ms_p50": round(percentile(lat, 50), 2),
                                      "k1": k1, "b": b, "avgdl": round(float(avgdl), 2),
                                      "latency_note": "in-process rank_bm25 get_scores, no HTTP",
                                      "compare_to": "rank_bm25_baseline"}
            log(f"{name}: {results['modes'][name]}")

    if previous:
        control, label = previous["run"], f"previous {previous['info']['mode']}"
        results["comparison"] = {"control": {**previous["info"], "label": label,
                                             "missing_queries": missing_queries(ds.qrels, control)}}
    else:
        control, label = runs[DEFAULT_MODE], DEFAULT_MODE
        results["comparison"] = {"control": {"source": "this run", "mode": DEFAULT_MODE, "label": label}}
    results["comparison"].update(stat_test=STAT_TEST, max_p=MAX_P, modes=paired_comparisons(
        ds.qrels, runs, control, label, METRICS, skip=() if previous else (DEFAULT_MODE,)))
    results["references"] = published(ds.name)
    results["versus_published"] = versus_published(results["modes"], results["references"])
    results["wall_time_s"] = round(time.perf_counter() - started, 1)
    log(f"wall time {results['wall_time_s']:.0f}s")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        results["runs"] = save_runs(args.out, runs)
        for path in (write_json(args.out, results), write_markdown(args.out, results), write_chart(args.out, results)):
            log(f"wrote {path}")
    else:
        print(json.dumps(results, indent=2))
    return 0
