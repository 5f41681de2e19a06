"""The `purge` job: hard-delete long soft-deleted documents and archive versions past a retention."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import update
from sqlmodel import select

from rag_service.errors import PermanentJobError
from rag_service.models import Document, DocumentVersion, Index, utcnow
from rag_service.services.access import AccessService, Boundary
from rag_service.services.boundaries import DEFAULT_BOUNDARY
from rag_service.services.common import Principal
from rag_service.services.documents import DocumentService
from rag_service.services.job_handle import JobHandle
from rag_service.stores.vector import Filter, Match


def run_purge(handle: JobHandle) -> dict[str, Any]:
    ctx = handle.runner.ctx
    job = handle.job
    older = float(job.params.get("older_than_seconds", 30 * 24 * 3600))
    retain = job.params.get("retain_versions")
    if retain is not None and (not isinstance(retain, int) or retain < 1):
        raise PermanentJobError("params.retain_versions must be an integer >= 1")
    cutoff = utcnow() - timedelta(seconds=older)
    principal = Principal(project_id=job.project_id, key_id=job.created_by_key_id, role="editor")
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
