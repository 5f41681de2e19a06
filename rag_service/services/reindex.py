"""The reindex job: build a shadow collection with a new encoder (model, backend,
precision) and/or chunking while the old one keeps serving, and swap only with
eval proof on three counts, each reported in the job result:

- precision: nDCG@10 on the index's labelled queries not worse than the old by
  more than `max_ndcg_drop`;
- latency: the new collection's p95 query latency at most
  `old p95 * max_latency_ratio + latency_slack_ms`;
- stale memory: writes made while the shadow was built (uploads, deletes,
  restores) are in it, and no hit it returns is stale per SQL (checked on its raw
  store hits, before the service's own stale filter could hide a problem).

The swap is one compare-and-swap on `index.collection` (the index's alias in
SQL); the old collection and its chunk rows stay, so a rollback is one more swap.
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
from sqlalchemy import func, update
from sqlmodel import select

from pipelines.chunk import chunking_problem
from pipelines.embed import EncoderIdentity
from pipelines.lexical import query_vector
from rag_service.errors import PermanentJobError
from rag_service.models import (
    Chunk,
    Document,
    DocumentVersion,
    EvalRun,
    Index,
    Job,
    new_id,
    utcnow,
)
from rag_service.search_params import SearchParams
from rag_service.services.events import emit
from rag_service.services.ingestion import IngestionService
from rag_service.services.job_handle import JobHandle
from rag_service.services.job_params import parse_eval_set
from rag_service.services.preparation import chunk_rows, prepare_text
from rag_service.services.search import SearchService
from rag_service.stores.embedder import identity_of
from rag_service.stores.vector import Filter, Match, SearchRequest

SETTINGS_FIELDS = ("collection", "embedding_model", "embedding_backend", "embedding_precision", "embedding_dim",
                   "chunk_max_characters", "chunk_overlap", "bm25_avg_len", "title_vectors", "document_bm25",
                   "document_bm25_avg_len")


def timed_ranking(search, index: Index, text: str, mode: str, top_k: int,
                  **fusion: Any) -> tuple[dict[str, float], float]:
    """One judged query's document ranking and its latency. `fusion` (rrf_k, fusion_weights) as a
    request would send them; what it leaves out comes from the index's defaults, as in a search."""
    started = time.perf_counter()
    # model_construct: the job's own params were validated at submission (eval top_k goes to 1000,
    # past the HTTP cap of 100, for Recall@1000-style judgements).
    p = SearchParams.model_construct(query=text, top_k=top_k, mode=mode, result_type="document", explain=False,
                                     **{k: v for k, v in fusion.items() if v is not None})
    p, _ = search.with_index_defaults(p, [index])
    rows, _, _ = search.retrieve([index], p)
    ms = (time.perf_counter() - started) * 1000
    # rank-based scores: ranx needs one score per document, ties broken by rank
    return {r["document_name"]: float(top_k - rank) for rank, r in enumerate(rows)} or {"__none__": 0.0}, ms


def run_metrics(run: dict[str, dict[str, float]], latencies: list[float], qrels: dict[str, dict[str, int]]) -> dict[str, Any]:
    from ranx import Qrels, Run, evaluate

    scores = evaluate(Qrels(qrels), Run(run), ["ndcg@10", "recall@100", "mrr@10"])
    return {k: round(float(v), 4) for k, v in scores.items()} | {
        "latency_ms_p50": round(float(np.percentile(latencies, 50)), 2),
        "latency_ms_p95": round(float(np.percentile(latencies, 95)), 2),
        "latency_ms_p99": round(float(np.percentile(latencies, 99)), 2),
        "queries": len(run),
    }


def evaluate_indexes(ctx, index: Index, queries: dict[str, str], qrels: dict[str, dict[str, int]],
                     modes: list[str], top_k: int = 100, on_query=None) -> dict[str, Any]:
    """nDCG@10, Recall@100, MRR@10 (ranx) and latency percentiles per mode, on document results."""
    search = SearchService(ctx)
    metrics: dict[str, Any] = {}
    for mode in modes:
        run: dict[str, dict[str, float]] = {}
        latencies = []
        for qid, text in queries.items():
            run[qid], ms = timed_ranking(search, index, text, mode, top_k)
            latencies.append(ms)
            if on_query:
                on_query()
        metrics[mode] = run_metrics(run, latencies, qrels)
    return metrics


def evaluate_side_by_side(ctx, old: Index, new: Index, queries: dict[str, str], qrels: dict[str, dict[str, int]],
                          modes: list[str], rounds: int = 3, top_k: int = 100) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both collections judged in one pass: each query runs on old then new, `rounds` times, and a
    query's latency is its median over the rounds. Interleaving puts a noisy neighbour, a GC pause
    or a cold cache on both sides alike, so the latency gate compares collections, not moments."""
    search = SearchService(ctx)
    rounds = max(1, rounds)
    sides = {"old": old, "new": new}
    metrics: dict[str, dict[str, Any]] = {"old": {}, "new": {}}
    for mode in modes:
        runs: dict[str, dict] = {"old": {}, "new": {}}
        timings: dict[str, dict[str, list[float]]] = {"old": {}, "new": {}}
        for round_no in range(rounds):
            for qid, text in queries.items():
                for side, index in sides.items():
                    ranking, ms = timed_ranking(search, index, text, mode, top_k)
                    if round_no == 0:
                        runs[side][qid] = ranking
                    timings[side].setdefault(qid, []).append(ms)
        for side in sides:
            medians = [float(np.median(t)) for t in timings[side].values()]
            metrics[side][mode] = run_metrics(runs[side], medians, qrels) | {"latency_rounds": rounds}
    return metrics["old"], metrics["new"]


def _eval_set(ctx, job: Job) -> tuple[dict, dict]:
    params = job.params.get("eval")
    if not params:
        with ctx.db.session() as s:
            last = s.exec(select(EvalRun).where(EvalRun.index_id == job.index_id).order_by(EvalRun.created_at.desc())).first()
            source = s.get(Job, last.job_id) if last and last.job_id else None
        if source is None:
            raise PermanentJobError("reindex needs params.eval ({queries, qrels}) or an earlier eval job on this index")
        params = source.params
    return parse_eval_set(params)


def _build_version(ctx, ingestion: IngestionService, shadow: Index, doc: Document, version: DocumentVersion) -> list[Chunk]:
    with ctx.db.session() as s:
        existing = list(s.exec(select(Chunk).where(Chunk.version_id == version.id, Chunk.collection == shadow.collection)
                               .order_by(Chunk.ordinal)).all())
    if existing:
        return existing
    prepared = prepare_text(version.text, shadow.chunk_max_characters, shadow.chunk_overlap)
    rows = chunk_rows(shadow, doc.id, version.id, version.version, prepared)
    with ctx.db.session() as s:
        s.add_all(rows)
        s.commit()
    return rows


def _versions_missing(ctx, collection: str, index_id: str) -> list[tuple[Document, DocumentVersion]]:
    with ctx.db.session() as s:
        have = select(Chunk.version_id).where(Chunk.collection == collection).distinct()
        rows = s.exec(select(Document, DocumentVersion).join(DocumentVersion, DocumentVersion.document_id == Document.id)
                      .where(Document.index_id == index_id, DocumentVersion.status == "ready",
                             DocumentVersion.id.not_in(have))).all()
    return list(rows)


def fill_collection(ctx, target: Index, index_id: str, progress=None) -> int:
    """Chunk, embed and write every ready version not yet in `target.collection`."""
    ingestion = IngestionService(ctx)
    pending = _versions_missing(ctx, target.collection, index_id)
    built: list[tuple[Document, DocumentVersion, list[Chunk]]] = []
    for doc, version in pending:
        built.append((doc, version, _build_version(ctx, ingestion, target, doc, version)))
    if target.bm25_avg_len <= 0:
        lengths = [c.token_count for d, v, cs in built if v.version == d.current_version for c in cs] or [1]
        target.bm25_avg_len = max(sum(lengths) / len(lengths), 1.0)
    if target.document_bm25 and target.document_bm25_avg_len <= 0:
        # Set here, on the shadow: the write path would store a first value on the live index's row.
        lengths = [sum(c.token_count for c in cs) for d, v, cs in built if v.version == d.current_version] or [1]
        target.document_bm25_avg_len = max(sum(lengths) / len(lengths), 1.0)
    for n, (doc, version, chunks) in enumerate(built):
        ingestion.write_points(target, doc, version, chunks)
        if progress:
            progress(n + 1, len(built))
    for doc_id in {d.id for d, _, _ in built}:
        ingestion.sync_live_flags(target, doc_id)
    return len(built)


def catch_up(ctx, target: Index, index_id: str, known: set[str], since) -> int:
    """Bring `target` up to SQL: versions that became ready since the build started are
    added, and documents deleted, restored or replaced since then get their live flags
    (or, hard-deleted, lose their points)."""
    built = fill_collection(ctx, target, index_id)
    with ctx.db.session() as s:
        changed = set(s.exec(select(Document.id).where(Document.index_id == index_id, Document.updated_at >= since)).all())
    ingestion = IngestionService(ctx)
    for doc_id in known | changed:
        ingestion.sync_live_flags(target, doc_id)
    return built


def check_stale(ctx, target: Index, index_id: str, queries: dict[str, str]) -> dict[str, Any]:
    """Does `target` serve exactly SQL's current versions? Counts live points per document
    against the current version's chunk rows, and checks every raw store hit of the eval
    queries (dense and lexical) against SQL."""
    with ctx.db.session() as s:
        docs = {d.id: d for d in s.exec(select(Document).where(Document.index_id == index_id)).all()}
        expected = dict(s.exec(
            select(Document.id, func.count(Chunk.id))
            .join(DocumentVersion, (DocumentVersion.document_id == Document.id)
                  & (DocumentVersion.version == Document.current_version))
            .join(Chunk, (Chunk.version_id == DocumentVersion.id) & (Chunk.collection == target.collection))
            .where(Document.index_id == index_id, Document.deleted_at.is_(None)).group_by(Document.id)).all())
        serving = {d.id for d in docs.values() if d.deleted_at is None and d.current_version}
    # A version's points: its chunks, and its document point where the collection has them.
    expected = {d: n + int(target.document_bm25) for d, n in expected.items()}
    missing = sorted(serving - set(expected))  # a current version with no chunks in the new collection
    live = Filter(must=(Match("live", 1),))
    wrong_live = []
    for doc_id in serving & set(expected):
        n = ctx.vectors.count(target.collection, Filter(must=(Match("document_id", doc_id), Match("live", 1),
                                                              Match("version", docs[doc_id].current_version))))
        if n != expected[doc_id]:
            wrong_live.append(doc_id)
    live_points, expected_points = ctx.vectors.count(target.collection, live), sum(expected.values())
    stale_hits = 0
    encoder = identity_of(target)
    for text in queries.values():
        dense = ctx.embedders.encode(encoder, [text])[0].tolist()
        for mode, req in (("dense", SearchRequest(mode="dense", limit=20, dense=dense, sparse=None, filter=live)),
                          ("lexical", SearchRequest(mode="lexical", limit=20, dense=None, sparse=query_vector(text),
                                                    filter=live))):
            for hit in ctx.vectors.search(target.collection, req).hits:
                doc = docs.get(hit.payload.get("document_id"))
                if doc is None or doc.deleted_at is not None or hit.payload.get("version") != doc.current_version:
                    stale_hits += 1
    passed = not missing and not wrong_live and live_points == expected_points and stale_hits == 0
    return {"passed": passed, "documents_serving": len(serving), "versions_missing": len(missing),
            "documents_with_wrong_live_points": len(wrong_live), "live_points": live_points,
            "live_points_expected": expected_points, "stale_hits": stale_hits, "queries_checked": len(queries)}


def latency_gate(old: dict[str, Any], new: dict[str, Any], modes: list[str], ratio: float, slack_ms: float) -> dict[str, Any]:
    per_mode = {}
    for m in modes:
        limit = old[m]["latency_ms_p95"] * ratio + slack_ms
        per_mode[m] = {"old_p95_ms": old[m]["latency_ms_p95"], "new_p95_ms": new[m]["latency_ms_p95"],
                       "limit_ms": round(limit, 2), "passed": new[m]["latency_ms_p95"] <= limit}
    return {"passed": all(v["passed"] for v in per_mode.values()), "max_latency_ratio": ratio,
            "latency_slack_ms": slack_ms, "modes": per_mode}


def drop_shadow(ctx, collection: str) -> None:
    """A shadow collection and its chunk rows, gone (a failed reindex, or a tune job done with it)."""
    from sqlmodel import delete

    ctx.vectors.drop_collection(collection)
    with ctx.db.session() as s:
        s.exec(delete(Chunk).where(Chunk.collection == collection))
        s.commit()


def drop_left_shadow(ctx, job: Job) -> None:
    """The shadow a job's last attempt was building (its name in params["_shadow"]), dropped when
    no attempt will follow; unless a reindex swap already made it an index's live collection."""
    collection = (job.params or {}).get("_shadow")
    if not collection:
        return
    with ctx.db.session() as s:
        if s.exec(select(Index.id).where(Index.collection == collection)).first() is not None:
            return
    drop_shadow(ctx, collection)


def _refresh_chunk_counts(ctx, index_id: str, collection: str) -> None:
    with ctx.db.session() as s:
        counts = dict(s.exec(select(Chunk.version_id, func.count(Chunk.id)).where(Chunk.collection == collection)
                             .group_by(Chunk.version_id)).all())
        for version_id, n in counts.items():
            s.exec(update(DocumentVersion).where(DocumentVersion.id == version_id).values(chunk_count=n))
        s.commit()


def _swap(ctx, index: Index, new_values: dict[str, Any], job_id: str | None = None, rolled_back: bool = False) -> bool:
    previous = {f: getattr(index, f) for f in SETTINGS_FIELDS}
    with ctx.db.session() as s:
        swapped = s.exec(update(Index).where(Index.id == index.id, Index.collection == index.collection)
                         .values(previous=previous, updated_at=utcnow(), **new_values))
        if swapped.rowcount == 1:  # the outbox: the swap and its event commit together
            emit(s, index.project_id, "index.reindexed", {
                "index_id": index.id, "job_id": job_id, "rolled_back": rolled_back,
                "collection": new_values.get("collection"), "previous_collection": index.collection,
                "embedding_model": new_values.get("embedding_model", index.embedding_model),
                "chunk_max_characters": new_values.get("chunk_max_characters", index.chunk_max_characters),
                "chunk_overlap": new_values.get("chunk_overlap", index.chunk_overlap)}, index_id=index.id)
        s.commit()
    return swapped.rowcount == 1


def run_reindex(handle: JobHandle) -> dict[str, Any]:
    ctx = handle.runner.ctx
    job = handle.job
    with ctx.db.session() as s:
        index = s.get(Index, job.index_id)
    if index is None:
        raise PermanentJobError("index not found")
    if job.params.get("rollback"):
        if not index.previous:
            raise PermanentJobError("nothing to roll back to: this index was never reindexed")
        # Settings saved before encoder identity was recorded were torch fp32.
        target = {"embedding_backend": "torch", "embedding_precision": "fp32"} | dict(index.previous)
        if not _swap(ctx, index, target, job_id=job.id, rolled_back=True):
            raise RuntimeError("the index changed during rollback; retry")
        _refresh_chunk_counts(ctx, index.id, target["collection"])
        handed = Index(**{**index.model_dump(), **target})
        fill_collection(ctx, handed, index.id)  # versions uploaded since the swap
        return {"rolled_back": True, "collection": target["collection"], "from_collection": index.collection}

    params = job.params
    model = params.get("embedding_model") or index.embedding_model
    max_chars = int(params.get("chunk_max_characters") or index.chunk_max_characters)
    overlap = int(params.get("chunk_overlap") if params.get("chunk_overlap") is not None else index.chunk_overlap)
    max_drop = float(params.get("max_ndcg_drop", 0.01))
    ratio, slack = float(params.get("max_latency_ratio", 1.5)), float(params.get("latency_slack_ms", 5.0))
    modes = params.get("modes") or ["hybrid"]
    problem = chunking_problem(max_chars, overlap)
    if problem:
        raise PermanentJobError(problem[1])
    try:
        encoder = _new_encoder(ctx, index, model, params)
        dim = ctx.embedders.get(encoder).dimension
    except PermanentJobError:
        raise
    except Exception as exc:
        raise PermanentJobError(f"embedding model {model!r} could not be loaded: {exc}") from None
    built_with = {f: ctx.settings.model_dump()[f] if params.get(f) is None else bool(params[f])
                  for f in ("title_vectors", "document_bm25")}
    if (encoder, max_chars, overlap, built_with) == (identity_of(index), index.chunk_max_characters, index.chunk_overlap,
                                                    {f: getattr(index, f) for f in built_with}):
        raise PermanentJobError("nothing to change: give embedding_model, embedding_backend, embedding_precision, "
                                "chunk_max_characters, chunk_overlap, title_vectors or document_bm25")
    queries, qrels = _eval_set(ctx, job)

    collection = params.get("_shadow") or f"idx_{index.id}_{new_id()[:8]}"
    if "_shadow" not in params:  # remember it, so a retried job resumes the same shadow
        with ctx.db.session() as s:
            s.exec(update(Job).where(Job.id == job.id).values(params={**params, "_shadow": collection}))
            s.commit()
    new_values = {"collection": collection, "embedding_model": model, "embedding_backend": encoder.backend,
                  "embedding_precision": encoder.precision, "embedding_dim": dim,
                  "chunk_max_characters": max_chars, "chunk_overlap": overlap, **built_with}
    shadow = Index(**{**index.model_dump(), **new_values, "bm25_avg_len": 0.0, "document_bm25_avg_len": 0.0})
    build_started = utcnow()
    with ctx.db.session() as s:
        known = set(s.exec(select(Document.id).where(Document.index_id == index.id)).all())
    ctx.vectors.ensure_collection(collection, dim)
    built = fill_collection(ctx, shadow, index.id, progress=lambda n, total: handle.progress(5 + 55 * n / max(total, 1)))
    # Writes made while the shadow was built: in it before it is judged (like for like with the old
    # collection), and again after the evaluation, before it may serve.
    caught_up = catch_up(ctx, shadow, index.id, known, build_started)
    handle.progress(60)
    old_metrics, new_metrics = evaluate_side_by_side(ctx, index, shadow, queries, qrels, modes,
                                                     int(params.get("latency_rounds", 3)))
    handle.progress(85)
    caught_up += catch_up(ctx, shadow, index.id, known, build_started)
    worse = {m: (old_metrics[m]["ndcg@10"], new_metrics[m]["ndcg@10"]) for m in modes
             if new_metrics[m]["ndcg@10"] < old_metrics[m]["ndcg@10"] - max_drop}
    gates = {"precision": {"passed": not worse, "max_ndcg_drop": max_drop,
                           "modes": {m: {"old_ndcg@10": old_metrics[m]["ndcg@10"], "new_ndcg@10": new_metrics[m]["ndcg@10"]}
                                     for m in modes}},
             "latency": latency_gate(old_metrics, new_metrics, modes, ratio, slack),
             "stale": check_stale(ctx, shadow, index.id, queries)}
    result = {"shadow_collection": collection, "versions_built": built, "caught_up_before_swap": caught_up,
              "old": old_metrics, "new": new_metrics, "max_ndcg_drop": max_drop, "gates": gates,
              "encoder": {"old": identity_of(index).as_dict(), "new": encoder.as_dict()}}
    failed = [name for name, g in gates.items() if not g["passed"]]
    if failed:
        drop_shadow(ctx, collection)
        reasons = {"precision": "new nDCG@10 worse than old by more than max_ndcg_drop: "
                                + ", ".join(f"{m} {o:.4f} -> {n:.4f}" for m, (o, n) in worse.items()),
                   "latency": "new p95 latency above old p95 * max_latency_ratio + latency_slack_ms: "
                              + ", ".join(f"{m} {g['old_p95_ms']} -> {g['new_p95_ms']} ms (limit {g['limit_ms']})"
                                          for m, g in gates["latency"]["modes"].items() if not g["passed"]),
                   "stale": "the new collection does not serve exactly SQL's current versions: "
                            + json.dumps({k: v for k, v in gates["stale"].items() if k != "passed"})}
        return result | {"swapped": False, "failed_gates": failed, "reason": "; ".join(reasons[f] for f in failed)}
    new_values.update(bm25_avg_len=shadow.bm25_avg_len, document_bm25_avg_len=shadow.document_bm25_avg_len)
    if not _swap(ctx, index, new_values, job_id=job.id):
        raise RuntimeError("the index changed during the reindex; retry")
    # Writes that landed on the old collection between the check and the swap: add them now.
    after = catch_up(ctx, shadow, index.id, known, build_started)
    _refresh_chunk_counts(ctx, index.id, collection)
    handle.progress(100)
    return result | {"swapped": True, "caught_up_versions": caught_up + after, "previous_collection": index.collection}


def _new_encoder(ctx, index: Index, model: str, params: dict[str, Any]):
    """The identity of the rebuilt collection: the index's own unless the job names another
    model or variant (then `auto` parts are decided on this machine, as for a new index)."""
    backend, precision = params.get("embedding_backend"), params.get("embedding_precision")
    current = identity_of(index)
    if model == current.model and backend is None and precision is None:
        return current
    if model == current.model:  # a variant change: what is not named stays as it is
        backend = backend or current.backend
        precision = precision or current.precision
    settings = ctx.settings
    if (backend, precision) in (("torch", "int8"), ("onnx", "bf16")):
        raise PermanentJobError(f"backend {backend} does not run precision {precision} (torch: fp32, bf16; onnx: fp32, int8)")
    identity = ctx.embedders.resolve(model, backend or settings.embedding_backend, precision or settings.embedding_precision)
    return EncoderIdentity(identity.model, identity.backend, identity.precision)
