"""The `reconcile` job: SQL against the vector store per document version, and repairs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlmodel import select

from rag_service.models import Chunk, Document, DocumentVersion, Index, utcnow
from rag_service.services.ingestion import IngestionService
from rag_service.services.job_handle import JobHandle
from rag_service.services.reindex import fill_collection
from rag_service.stores.vector import Filter, Match


def run_reconcile(handle: JobHandle) -> dict[str, Any]:
    ctx = handle.runner.ctx
    job = handle.job
    ingestion = IngestionService(ctx)
    stuck_after = timedelta(seconds=float(job.params.get("stuck_after_seconds", 300)))
    with ctx.db.session() as s:
        q = select(Index).where(Index.project_id == job.project_id)
        if job.index_id:
            q = q.where(Index.id == job.index_id)
        indexes = list(s.exec(q).all())
    report: dict[str, Any] = {"indexes": len(indexes), "documents": 0, "found": [], "fixed": []}
    for n, index in enumerate(indexes):
        if not ctx.vectors.collection_exists(index.collection):
            ctx.vectors.ensure_collection(index.collection, index.embedding_dim)
            report["found"].append({"index_id": index.id, "problem": "collection missing"})
        # Ready versions with no chunks in this collection generation (uploaded during a
        # reindex swap): rebuilt from their stored text, all at once.
        rebuilt = fill_collection(ctx, index, index.id)
        if rebuilt:
            report["found"].append({"index_id": index.id, "problem": "versions not in collection", "count": rebuilt})
            report["fixed"].append({"index_id": index.id, "action": "rebuilt from text", "count": rebuilt})
        with ctx.db.session() as s:
            docs = list(s.exec(select(Document).where(Document.index_id == index.id)).all())
            versions = list(s.exec(select(DocumentVersion).join(Document).where(Document.index_id == index.id)).all())
        by_doc: dict[str, list[DocumentVersion]] = {}
        for v in versions:
            by_doc.setdefault(v.document_id, []).append(v)
        for doc in docs:
            report["documents"] += 1
            reconcile_document(ctx, ingestion, index, doc, by_doc.get(doc.id, []), stuck_after, report)
        handle.progress(100 * (n + 1) / max(len(indexes), 1))
    report["found_count"], report["fixed_count"] = len(report["found"]), len(report["fixed"])
    return report


def reconcile_document(ctx, ingestion, index, doc, versions, stuck_after, report) -> None:
    alias = index.collection
    now = utcnow()
    for v in versions:
        where = Filter(must=(Match("document_id", doc.id), Match("version", v.version)))
        if v.status == "failed":  # its points, if dropping them failed at the time, go now
            leftover = ctx.vectors.count(alias, where)
            if leftover:
                ctx.vectors.delete(alias, where)
                report["found"].append({"document_id": doc.id, "version": v.version, "status": "failed",
                                        "points": leftover})
                report["fixed"].append({"document_id": doc.id, "version": v.version, "action": "points dropped"})
            continue
        created = v.created_at or now
        in_flight_too_long = v.status in ("indexing", "pending") and now - created > stuck_after
        if v.status == "ready" or in_flight_too_long:
            with ctx.db.session() as s:
                chunks = list(s.exec(select(Chunk).where(Chunk.version_id == v.id, Chunk.collection == alias)
                                     .order_by(Chunk.ordinal)).all())
            if not chunks:
                continue  # a pending async upload not parsed yet: its ingest job owns it
            points = ctx.vectors.count(alias, where)
            expected = len(chunks) + int(index.document_bm25)  # and the version's document point
            if points != expected or v.status != "ready":
                report["found"].append({"document_id": doc.id, "version": v.version, "status": v.status,
                                        "points": points, "chunks": len(chunks)})
                if points > expected:
                    ctx.vectors.delete(alias, where)  # leftovers of another chunking: rebuild exactly
                ingestion.write_points(index, doc, v, chunks)
                if v.status != "ready":
                    ingestion.promote(index, doc.id, v.id, v.version)
                report["fixed"].append({"document_id": doc.id, "version": v.version, "action": "reindexed"})
    current = doc.current_version
    live_expected = 0
    if current and doc.deleted_at is None:
        live_expected = next((v.chunk_count + int(index.document_bm25) for v in versions if v.version == current), 0)
    live_now = ctx.vectors.count(alias, Filter(must=(Match("document_id", doc.id), Match("live", 1))))
    live_current = ctx.vectors.count(alias, Filter(must=(Match("document_id", doc.id), Match("live", 1),
                                                         Match("version", current or -1))))
    if live_now != live_expected or live_current != live_expected:
        report["found"].append({"document_id": doc.id, "problem": "live flags", "live": live_now, "expected": live_expected})
        ingestion.sync_live_flags(index, doc.id)
        report["fixed"].append({"document_id": doc.id, "action": "live flags synced"})
