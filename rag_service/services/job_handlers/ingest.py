"""The `ingest` job: parse, chunk, embed and index an async upload's version (idempotent:
an attempt after a crash finishes from the chunks an earlier one stored)."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from sqlalchemy import delete as sql_delete
from sqlalchemy import update
from sqlmodel import select

from rag_service.errors import PermanentJobError, ServiceError
from rag_service.models import (
    Chunk,
    Document,
    DocumentVersion,
    Index,
    UploadBlob,
    utcnow,
)
from rag_service.services.common import versions_with_live_ingest_job
from rag_service.services.ingestion import IngestionService, prepare_isolated
from rag_service.services.job_handle import JobHandle
from rag_service.services.preparation import chunk_rows


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
    if version.status == "ready":  # an earlier attempt finished it: answer with what it stored
        return _result(document, version, version.chunk_count, {
            "chunks_embedded": version.chunks_embedded, "chunks_reused": version.chunks_reused}) | {"already_ready": True}
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
            ingestion.mark_failed(version.id, f"{exc.code}: {exc.message}")
            raise PermanentJobError(f"{exc.code}: {exc.message}") from None
        chunks, tokens = chunk_rows(index, document.id, version.id, version.version, prepared), prepared.tokens
        with ctx.db.session() as s:
            s.add_all(chunks)
            s.exec(update(DocumentVersion).where(DocumentVersion.id == version.id).values(
                status="indexing", text=prepared.text, chunk_count=len(chunks)))
            s.commit()
    handle.progress(30)
    wait_for_older_versions(handle, version)
    counts = ingestion.index_version(index, document, version, chunks, tokens)
    with ctx.db.session() as s:
        s.exec(sql_delete(UploadBlob).where(UploadBlob.version_id == version.id))
        s.commit()
    return _result(document, version, len(chunks), counts)


def _result(document: Document, version: DocumentVersion, chunk_count: int, counts: dict[str, int]) -> dict[str, Any]:
    # As a synchronous upload answers: how many chunks the model embedded and how many it reused.
    return {"document_id": document.id, "version": version.version, "chunk_count": chunk_count, **counts}


def wait_for_older_versions(handle: JobHandle, version: DocumentVersion, stuck_after_s: float = 300.0) -> None:
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
