"""What each live job class does. Every handler is idempotent: a job picked up
again after its process died redoes only what is not done."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from sqlalchemy import delete as sql_delete
from sqlalchemy import update
from sqlmodel import select

from rag_service.errors import ServiceError
from rag_service.models import Chunk, Document, DocumentVersion, EvalRun, Index, UploadBlob, utcnow
from rag_service.services.access import AccessService, Boundary
from rag_service.services.boundaries import DEFAULT_BOUNDARY
from rag_service.services.common import Principal, versions_with_live_ingest_job
from rag_service.services.ingestion import IngestionService, chunk_rows, prepare_isolated
from rag_service.services.job_params import parse_eval_set
from rag_service.services.jobs import JobHandle, PermanentJobError
from rag_service.stores.vector import Filter, Match


def _principal(handle: JobHandle) -> Principal:
    return Principal(project_id=handle.job.project_id, key_id=handle.job.created_by_key_id, role="editor")


# -- ingest ----------------------------------------------------------------------
def run_ingest(handle: JobHandle) -> dict[str, Any]:
    ctx = handle.runner.ctx
    version_id = handle.job.params.get("version_id")
    with ctx.db.session() as s:
        version = s.get(DocumentVersion, version_id)
        document = s.get(Document, version.document_id) if version else None
        index = s.get(Index, document.index_id) if document else None
        blob = s.get(UploadBlob, version_id)
        existing = s.exec(select(Chunk).where(Chunk.version_id == version_id, Chunk.collection == index.collection)
                          .order_by(Chunk.ordinal)).all() if index else []
    if version is None or document is None or index is None:
        raise PermanentJobError("the version to ingest no longer exists")
    if version.status == "ready":
        return {"document_id": document.id, "version": version.version, "chunk_count": version.chunk_count, "already_ready": True}
    ingestion = IngestionService(ctx)
    handle.progress(5)
    tokens = None  # BM25 tokens from this parse, when there is one
    if existing:
        chunks = list(existing)  # parsed by an earlier attempt: just finish indexing
    else:
        if blob is None:
            raise PermanentJobError("the uploaded bytes are gone; upload again")
        try:
            prepared = prepare_isolated(ctx, blob.data, version.filename, index.chunk_max_characters, index.chunk_overlap)
        except ServiceError as exc:
            ingestion._mark_failed(version.id, f"{exc.code}: {exc.message}")
            raise PermanentJobError(f"{exc.code}: {exc.message}") from None
        chunks, tokens = chunk_rows(index, document.id, version.id, version.version, prepared), prepared.tokens
        with ctx.db.session() as s:
            s.add_all(chunks)
            s.exec(update(DocumentVersion).where(DocumentVersion.id == version.id).values(
                status="indexing", text=prepared.text, chunk_count=len(chunks)))
            s.commit()
    handle.progress(30)
    _wait_for_older_versions(handle, version)
    ingestion.index_version(index, document, version, chunks, tokens)
    with ctx.db.session() as s:
        s.exec(sql_delete(UploadBlob).where(UploadBlob.version_id == version.id))
        s.commit()
    return {"document_id": document.id, "version": version.version, "chunk_count": len(chunks)}


def _wait_for_older_versions(handle: JobHandle, version: DocumentVersion, stuck_after_s: float = 300.0) -> None:
    """Versions of one document become ready in version order: an ingest job that overtook an
    older version still in flight (parsed faster, say) waits for it before promoting, so events
    and `current_version` move forward one version at a time. Bounded by the job lease: an older
    version that never finishes (its job gone, a crashed sync upload) cannot hold this one."""
    ctx = handle.runner.ctx
    deadline = time.monotonic() + max(ctx.settings.job_lease_seconds, 1.0)
    beat = time.monotonic()
    while time.monotonic() < deadline:
        recent = utcnow() - timedelta(seconds=stuck_after_s)
        with ctx.db.session() as s:
            older = s.exec(select(DocumentVersion.id, DocumentVersion.status).where(
                DocumentVersion.document_id == version.document_id, DocumentVersion.version < version.version,
                DocumentVersion.status.in_(("pending", "indexing")), DocumentVersion.created_at > recent)).all()
            queued = versions_with_live_ingest_job(s, [vid for vid, status in older if status == "pending"],
                                                   except_job=handle.job.id)
        still_in_flight = [vid for vid, status in older if status == "indexing" or vid in queued]
        if not still_in_flight:
            return
        if time.monotonic() - beat > 2.0:
            handle.progress(30)  # also where a cancel request is seen
            beat = time.monotonic()
        time.sleep(0.05)


# -- eval ------------------------------------------------------------------------
def run_eval(handle: JobHandle) -> dict[str, Any]:
    from rag_service.services.reindex import evaluate_indexes

    ctx = handle.runner.ctx
    job = handle.job
    queries, qrels = parse_eval_set(job.params)
    modes = job.params.get("modes") or ["dense", "lexical", "hybrid"]
    with ctx.db.session() as s:
        index = s.get(Index, job.index_id)
    if index is None:
        raise PermanentJobError("index not found")
    total, done = len(modes) * len(queries), [0]

    def tick() -> None:
        done[0] += 1
        if done[0] % 10 == 0:
            handle.progress(100 * done[0] / total)

    metrics = evaluate_indexes(ctx, index, queries, qrels, modes, int(job.params.get("top_k", 100)), tick)
    with ctx.db.session() as s:
        s.add(EvalRun(project_id=job.project_id, index_id=job.index_id, job_id=job.id, metrics=metrics))
        s.commit()
    return {"index_id": job.index_id, "modes": metrics}


# -- reconcile ---------------------------------------------------------------------
def run_reconcile(handle: JobHandle) -> dict[str, Any]:
    from rag_service.services.reindex import fill_collection

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
            _reconcile_document(ctx, ingestion, index, doc, by_doc.get(doc.id, []), stuck_after, report)
        handle.progress(100 * (n + 1) / max(len(indexes), 1))
    report["found_count"], report["fixed_count"] = len(report["found"]), len(report["fixed"])
    return report


def _reconcile_document(ctx, ingestion, index, doc, versions, stuck_after, report) -> None:
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
            if points != len(chunks) or v.status != "ready":
                report["found"].append({"document_id": doc.id, "version": v.version, "status": v.status,
                                        "points": points, "chunks": len(chunks)})
                if points > len(chunks):
                    ctx.vectors.delete(alias, where)  # leftovers of another chunking: rebuild exactly
                ingestion._write_points(index, doc, v, chunks)
                if v.status != "ready":
                    ingestion.promote(index, doc.id, v.id, v.version)
                report["fixed"].append({"document_id": doc.id, "version": v.version, "action": "reindexed"})
    current = doc.current_version
    live_expected = 0
    if current and doc.deleted_at is None:
        live_expected = next((v.chunk_count for v in versions if v.version == current), 0)
    live_now = ctx.vectors.count(alias, Filter(must=(Match("document_id", doc.id), Match("live", 1))))
    live_current = ctx.vectors.count(alias, Filter(must=(Match("document_id", doc.id), Match("live", 1),
                                                         Match("version", current or -1))))
    if live_now != live_expected or live_current != live_expected:
        report["found"].append({"document_id": doc.id, "problem": "live flags", "live": live_now, "expected": live_expected})
        ingestion.sync_live_flags(index, doc.id)
        report["fixed"].append({"document_id": doc.id, "action": "live flags synced"})


# -- purge -------------------------------------------------------------------------
def run_purge(handle: JobHandle) -> dict[str, Any]:
    from rag_service.services.documents import DocumentService

    ctx = handle.runner.ctx
    job = handle.job
    older = float(job.params.get("older_than_seconds", 30 * 24 * 3600))
    retain = job.params.get("retain_versions")
    if retain is not None and (not isinstance(retain, int) or retain < 1):
        raise PermanentJobError("params.retain_versions must be an integer >= 1")
    cutoff = utcnow() - timedelta(seconds=older)
    principal = _principal(handle)
    service = DocumentService(ctx)
    # A purge over the whole project touches only the indexes its boundary may read (one that
    # names an index was refused at submission if the boundary may not read it).
    allowed, excluded = AccessService(ctx).partition(principal, "write", Boundary(job.data_boundary or DEFAULT_BOUNDARY,
                                                                                  job.account_id))
    allowed_ids = [i.id for i in allowed]
    with ctx.db.session() as s:
        q = select(Document).where(Document.project_id == job.project_id, Document.deleted_at.is_not(None),
                                   Document.index_id.in_(allowed_ids))
        if job.index_id:
            q = q.where(Document.index_id == job.index_id)
        deleted = list(s.exec(q.where(Document.deleted_at <= cutoff)).all())
    purged = []
    for d in deleted:
        service.delete(principal, d.id, hard=True)
        purged.append({"document_id": d.id, "name": d.name})
    dropped = []
    if retain:
        with ctx.db.session() as s:
            q = select(Document, Index).join(Index, Index.id == Document.index_id).where(
                Document.project_id == job.project_id, Document.index_id.in_(allowed_ids))
            if job.index_id:
                q = q.where(Document.index_id == job.index_id)
            docs = list(s.exec(q).all())
        for doc, index in docs:
            if not doc.current_version:
                continue
            floor = doc.current_version - retain + 1
            with ctx.db.session() as s:
                old = list(s.exec(select(DocumentVersion).where(
                    DocumentVersion.document_id == doc.id, DocumentVersion.version < floor,
                    DocumentVersion.status == "ready")).all())
            for v in old:
                ctx.vectors.delete(index.collection, Filter(must=(Match("document_id", doc.id), Match("version", v.version))))
                with ctx.db.session() as s:
                    s.exec(update(DocumentVersion).where(DocumentVersion.id == v.id).values(status="archived"))
                    s.commit()
                dropped.append({"document_id": doc.id, "version": v.version})
    handle.progress(100)
    return {"purged_documents": purged, "archived_versions": dropped,
            "older_than_seconds": older, "retain_versions": retain, "indexes_excluded": excluded}


def run_reindex(handle: JobHandle) -> dict[str, Any]:
    from rag_service.services.reindex import run_reindex as reindex

    return reindex(handle)


HANDLERS = {"ingest": run_ingest, "eval": run_eval, "reconcile": run_reconcile, "purge": run_purge,
            "reindex": run_reindex}
