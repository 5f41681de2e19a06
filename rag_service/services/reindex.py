"""The reindex job: build a shadow collection with a new embedding model and/or
chunking while the old one keeps serving, evaluate both on the index's labelled
queries, and swap only if the new one is not worse by more than a threshold.
The swap is one compare-and-swap on `index.collection` (the index's alias in
SQL); the old collection and its chunk rows stay, so a rollback is one more swap.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from sqlalchemy import func, update
from sqlmodel import select

from rag_service.models import Chunk, Document, DocumentVersion, EvalRun, Index, Job, new_id, utcnow
from rag_service.services.ingestion import IngestionService, chunk_rows, prepare_text
from rag_service.services.jobs import JobHandle, PermanentJobError

SETTINGS_FIELDS = ("collection", "embedding_model", "embedding_dim", "chunk_max_characters", "chunk_overlap", "bm25_avg_len")


def evaluate_indexes(ctx, index: Index, queries: dict[str, str], qrels: dict[str, dict[str, int]],
                     modes: list[str], top_k: int = 100, on_query=None) -> dict[str, Any]:
    """nDCG@10, Recall@100, MRR@10 (ranx) and latency percentiles per mode, on document results."""
    from ranx import Qrels, Run, evaluate

    from rag_service.services.search import SearchParams, SearchService

    search = SearchService(ctx)
    metrics: dict[str, Any] = {}
    for mode in modes:
        run: dict[str, dict[str, float]] = {}
        latencies = []
        for qid, text in queries.items():
            started = time.perf_counter()
            rows, _, _ = search.retrieve([index], SearchParams(query=text, top_k=top_k, mode=mode, result_type="document",
                                                               explain=False, record_evidence=False))
            latencies.append((time.perf_counter() - started) * 1000)
            # rank-based scores: ranx needs one score per document, ties broken by rank
            run[qid] = {r["document_name"]: float(top_k - rank) for rank, r in enumerate(rows)} or {"__none__": 0.0}
            if on_query:
                on_query()
        scores = evaluate(Qrels(qrels), Run(run), ["ndcg@10", "recall@100", "mrr@10"])
        metrics[mode] = {k: round(float(v), 4) for k, v in scores.items()} | {
            "latency_ms_p50": round(float(np.percentile(latencies, 50)), 2),
            "latency_ms_p95": round(float(np.percentile(latencies, 95)), 2),
            "latency_ms_p99": round(float(np.percentile(latencies, 99)), 2),
            "queries": len(queries),
        }
    return metrics


def _eval_set(ctx, job: Job) -> tuple[dict, dict]:
    from rag_service.services.job_handlers import _parse_eval_set

    params = job.params.get("eval")
    if not params:
        with ctx.db.session() as s:
            last = s.exec(select(EvalRun).where(EvalRun.index_id == job.index_id).order_by(EvalRun.created_at.desc())).first()
            source = s.get(Job, last.job_id) if last and last.job_id else None
        if source is None:
            raise PermanentJobError("reindex needs params.eval ({queries, qrels}) or an earlier eval job on this index")
        params = source.params
    return _parse_eval_set(params)


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
    for n, (doc, version, chunks) in enumerate(built):
        ingestion._write_points(target, doc, version, chunks)
        if progress:
            progress(n + 1, len(built))
    for doc_id in {d.id for d, _, _ in built}:
        ingestion.sync_live_flags(target, doc_id)
    return len(built)


def _refresh_chunk_counts(ctx, index_id: str, collection: str) -> None:
    with ctx.db.session() as s:
        counts = dict(s.exec(select(Chunk.version_id, func.count(Chunk.id)).where(Chunk.collection == collection)
                             .group_by(Chunk.version_id)).all())
        for version_id, n in counts.items():
            s.exec(update(DocumentVersion).where(DocumentVersion.id == version_id).values(chunk_count=n))
        s.commit()


def _swap(ctx, index: Index, new_values: dict[str, Any]) -> bool:
    previous = {f: getattr(index, f) for f in SETTINGS_FIELDS}
    with ctx.db.session() as s:
        swapped = s.exec(update(Index).where(Index.id == index.id, Index.collection == index.collection)
                         .values(previous=previous, updated_at=utcnow(), **new_values))
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
        target = dict(index.previous)
        if not _swap(ctx, index, target):
            raise RuntimeError("the index changed during rollback; retry")
        _refresh_chunk_counts(ctx, index.id, target["collection"])
        handed = Index(**{**index.model_dump(), **target})
        fill_collection(ctx, handed, index.id)  # versions uploaded since the swap
        return {"rolled_back": True, "collection": target["collection"], "from_collection": index.collection}

    model = job.params.get("embedding_model") or index.embedding_model
    max_chars = int(job.params.get("chunk_max_characters") or index.chunk_max_characters)
    overlap = int(job.params.get("chunk_overlap") if job.params.get("chunk_overlap") is not None else index.chunk_overlap)
    max_drop = float(job.params.get("max_ndcg_drop", 0.01))
    modes = job.params.get("modes") or ["hybrid"]
    if (model, max_chars, overlap) == (index.embedding_model, index.chunk_max_characters, index.chunk_overlap):
        raise PermanentJobError("nothing to change: give embedding_model, chunk_max_characters or chunk_overlap")
    if not 50 <= max_chars <= 20000 or not 0 <= overlap < max_chars:
        raise PermanentJobError("chunk_max_characters must be 50-20000 and chunk_overlap below it")
    queries, qrels = _eval_set(ctx, job)
    try:
        dim = ctx.embedders.get(model).dimension
    except Exception as exc:
        raise PermanentJobError(f"embedding model {model!r} could not be loaded: {exc}") from None

    collection = job.params.get("_shadow") or f"idx_{index.id}_{new_id()[:8]}"
    if "_shadow" not in job.params:  # remember it, so a retried job resumes the same shadow
        with ctx.db.session() as s:
            s.exec(update(Job).where(Job.id == job.id).values(params={**job.params, "_shadow": collection}))
            s.commit()
    shadow = Index(**{**index.model_dump(), "collection": collection, "embedding_model": model, "embedding_dim": dim,
                      "chunk_max_characters": max_chars, "chunk_overlap": overlap, "bm25_avg_len": 0.0})
    ctx.vectors.ensure_collection(collection, dim)
    built = fill_collection(ctx, shadow, index.id, progress=lambda n, total: handle.progress(5 + 55 * n / max(total, 1)))
    handle.progress(60)
    old_metrics = evaluate_indexes(ctx, index, queries, qrels, modes)
    handle.progress(80)
    new_metrics = evaluate_indexes(ctx, shadow, queries, qrels, modes)
    worse = {m: (old_metrics[m]["ndcg@10"], new_metrics[m]["ndcg@10"]) for m in modes
             if new_metrics[m]["ndcg@10"] < old_metrics[m]["ndcg@10"] - max_drop}
    result = {"shadow_collection": collection, "versions_built": built, "old": old_metrics, "new": new_metrics,
              "max_ndcg_drop": max_drop}
    if worse:
        ctx.vectors.drop_collection(collection)
        with ctx.db.session() as s:
            from sqlmodel import delete

            s.exec(delete(Chunk).where(Chunk.collection == collection))
            s.commit()
        return result | {"swapped": False, "reason": "new nDCG@10 worse than old by more than max_ndcg_drop: "
                         + ", ".join(f"{m} {o:.4f} -> {n:.4f}" for m, (o, n) in worse.items())}
    new_values = {"collection": collection, "embedding_model": model, "embedding_dim": dim,
                  "chunk_max_characters": max_chars, "chunk_overlap": overlap, "bm25_avg_len": shadow.bm25_avg_len}
    if not _swap(ctx, index, new_values):
        raise RuntimeError("the index changed during the reindex; retry")
    # Versions that became ready while the shadow was built: add them now.
    caught_up = fill_collection(ctx, shadow, index.id)
    _refresh_chunk_counts(ctx, index.id, collection)
    handle.progress(100)
    return result | {"swapped": True, "caught_up_versions": caught_up, "previous_collection": index.collection}
