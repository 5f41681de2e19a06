"""Small helpers shared by the services: principals, paging, audit records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, delete, select

from rag_service.errors import NotFound
from rag_service.models import (
    AuditLog,
    Chunk,
    Document,
    DocumentVersion,
    Job,
    UploadBlob,
)

ROLES = ("reader", "editor", "admin")
PRIVACY_TIERS = ("public", "mesh_safe", "private", "personal")


@dataclass(frozen=True)
class Principal:
    project_id: str
    key_id: str | None
    role: str

    def can(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


def get_owned(db, model, object_id: str, project_id: str, what: str, **detail: Any):
    """Load a row of `model` that belongs to the project: another project's row is not_found, like a missing one."""
    with db.session() as s:
        obj = s.get(model, object_id)
    if obj is None or obj.project_id != project_id:
        raise NotFound(f"{what} not found", **detail)
    return obj


def versions_with_live_ingest_job(session: Session, version_ids: list[str], except_job: str | None = None) -> set[str]:
    """Of these versions, those an ingest job will still index (queued, or running)."""
    if not version_ids:
        return set()
    version_of = Job.params["version_id"].as_string()
    q = select(version_of).where(Job.job_class == "ingest", Job.status.in_(("queued", "running")),
                                 version_of.in_(version_ids))
    if except_job is not None:
        q = q.where(Job.id != except_job)
    return set(session.exec(q).all())


def purge_documents(session: Session, which: Any) -> None:
    """The hard-delete cascade, in the caller's transaction: every row of the documents `which`
    (a condition on Document) selects - upload bytes still waiting for their job, chunks, versions,
    the documents. Their vector points go after the commit (the caller's job)."""
    documents = select(Document.id).where(which)
    versions = select(DocumentVersion.id).where(DocumentVersion.document_id.in_(documents))
    session.exec(delete(UploadBlob).where(UploadBlob.version_id.in_(versions)))
    session.exec(delete(Chunk).where(Chunk.document_id.in_(documents)))
    session.exec(delete(DocumentVersion).where(DocumentVersion.document_id.in_(documents)))
    session.exec(delete(Document).where(which))


def page_of(items: list[Any], total: int, page: int, per_page: int) -> dict[str, Any]:
    return {"items": items, "total": total, "page": page, "per_page": per_page}


def fetch_page(session: Session, query: Any, order_by: tuple[Any, ...], page: int, per_page: int) -> tuple[list[Any], int]:
    """One page of a listing's rows (in `order_by`, which ends with a unique column so pages never
    overlap) and how many rows the whole listing has: the one paging rule of every list route."""
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(query.order_by(*order_by).offset((page - 1) * per_page).limit(per_page)).all()
    return list(rows), total


def audit(session: Session, principal: Principal | None, action: str, target_type: str | None = None,
          target_id: str | None = None, project_id: str | None = None, **detail: Any) -> None:
    """Append one audit row in the caller's transaction (so it commits with the write)."""
    session.add(
        AuditLog(
            project_id=project_id or (principal.project_id if principal else ""),
            key_id=principal.key_id if principal else None,
            action=action,
            target_type=target_type,
            target_id=target_id,
            detail=detail,
        )
    )
