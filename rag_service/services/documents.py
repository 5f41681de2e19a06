"""Documents and their versions: views, reads, soft delete / restore, hard delete. (Uploads,
which create versions, are services/uploads.py.)"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, or_, update
from sqlmodel import select

from rag_service.context import ServiceContext
from rag_service.errors import NotFound
from rag_service.models import (
    Chunk,
    Document,
    DocumentVersion,
    Index,
    utcnow,
)
from rag_service.services.access import Access, AccessService, Boundary, nfc, spellings
from rag_service.services.common import (
    Principal,
    audit,
    fetch_page,
    get_owned,
    page_of,
    purge_documents,
)
from rag_service.services.events import emit_document, reported_version
from rag_service.services.ingestion import IngestionService
from rag_service.services.values import readable_metadata
from rag_service.stores.vector import Filter, Match


def etag(version: int) -> str:
    return f'"v{version}"'


def version_view(v: DocumentVersion, include_text: bool = False) -> dict[str, Any]:
    out = {
        "id": v.id,
        "version": v.version,
        "status": v.status,
        "content_hash": v.content_hash,
        "size_bytes": v.size_bytes,
        "media_type": v.media_type,
        "filename": v.filename,
        **readable_metadata(v.doc_metadata),
        "chunk_count": v.chunk_count,
        "chunks_embedded": v.chunks_embedded,
        "chunks_reused": v.chunks_reused,
        "error": v.error,
        "created_at": v.created_at,
        "ready_at": v.ready_at,
    }
    if include_text:
        out["text"] = v.text
    return out


def document_view(doc: Document, v: DocumentVersion | None, **extra: Any) -> dict[str, Any]:
    out = {
        "id": doc.id,
        "index_id": doc.index_id,
        "name": doc.name,
        "version": v.version if v else doc.latest_version,
        "latest_version": doc.latest_version,
        "current_version": doc.current_version,
        "status": v.status if v else "pending",
        "content_hash": v.content_hash if v else None,
        **(readable_metadata(v.doc_metadata) if v else {"metadata": {}}),
        "chunk_count": v.chunk_count if v else 0,
        "chunks_embedded": v.chunks_embedded if v else 0,
        "chunks_reused": v.chunks_reused if v else 0,
        "media_type": v.media_type if v else None,
        "size_bytes": v.size_bytes if v else None,
        "filename": v.filename if v else None,
        "deleted": doc.deleted_at is not None,
        "deleted_at": doc.deleted_at,
        "created_at": v.created_at if v else doc.created_at,
        "document_created_at": doc.created_at,
        "updated_at": doc.updated_at,
        "etag": etag(v.version if v else doc.latest_version),
    }
    out.update(extra)
    return out


class DocumentService:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.access = AccessService(ctx)
        self.ingestion = IngestionService(ctx)  # the live flags follow deletes and restores

    # -- reads -----------------------------------------------------------------
    def _document(self, principal: Principal, document_id: str, operation: str, boundary: Boundary,
                  index_id: str | None = None) -> tuple[Document, Access]:
        """A document of the project, through the access gate of its index (the index named in
        the path, id or name, first; the document must then be in it)."""
        self.access.require_role(principal, operation)
        access = self.access.authorize(principal, index_id, operation, boundary) if index_id else None
        doc = get_owned(self.ctx.db, Document, document_id, principal.project_id, "document", document_id=document_id)
        if access is not None and doc.index_id != access.index.id:
            raise NotFound("document not found", document_id=document_id)
        return doc, access or self.access.authorize(principal, doc.index_id, operation, boundary)

    def _view(self, doc: Document) -> dict[str, Any]:
        return self._views([doc])[0]

    def _views(self, docs: list[Document]) -> list[dict[str, Any]]:
        """Each document with the version it shows (current, else latest): one query for the page."""
        shown = {d.id: d.current_version or d.latest_version for d in docs}
        with self.ctx.db.session() as s:
            rows = s.exec(select(DocumentVersion).where(DocumentVersion.document_id.in_(list(shown)))
                          .where(or_(*[and_(DocumentVersion.document_id == i, DocumentVersion.version == n)
                                       for i, n in shown.items()]))).all() if docs else []
        by_doc = {v.document_id: v for v in rows}
        return [document_view(d, by_doc.get(d.id)) for d in docs]

    def list(self, principal: Principal, index_id: str | None, page: int, per_page: int,
             include_deleted: bool = False, name_prefix: str | None = None,
             boundary: Boundary = Boundary()) -> dict[str, Any]:
        """One index's documents (refused under a boundary that may not read it), or the
        project's, skipping indexes the boundary may not read and listing them as excluded."""
        excluded: list[dict[str, Any]] = []
        if index_id:
            index_id = self.access.authorize(principal, index_id, "read", boundary).index.id
        else:
            excluded = self.access.partition(principal, "read", boundary)[1]
        with self.ctx.db.session() as s:
            q = select(Document).where(Document.project_id == principal.project_id)
            if index_id:
                q = q.where(Document.index_id == index_id)
            if excluded:
                q = q.where(Document.index_id.not_in([e["index_id"] for e in excluded]))
            if not include_deleted:
                q = q.where(Document.deleted_at.is_(None))
            if name_prefix:
                q = q.where(Document.name.startswith(nfc(name_prefix)))
            docs, total = fetch_page(s, q, (Document.created_at, Document.id), page, per_page)
        out = page_of(self._views(docs), total, page, per_page) | {"data_boundary": boundary.name}
        return out if index_id else out | {"indexes_excluded": excluded}

    def get(self, principal: Principal, document_id: str, index_id: str | None = None,
            boundary: Boundary = Boundary()) -> dict[str, Any]:
        return self._view(self._document(principal, document_id, "read", boundary, index_id)[0])

    def get_by_name(self, principal: Principal, index_id: str, name: str,
                    boundary: Boundary = Boundary()) -> dict[str, Any]:
        return self._view(self._by_name(principal, index_id, name, boundary))

    def _by_name(self, principal: Principal, index_id: str, name: str, boundary: Boundary) -> Document:
        """Names are stored in NFC: either spelling of `café.txt` finds the document."""
        index = self.access.authorize(principal, index_id, "read", boundary).index
        with self.ctx.db.session() as s:
            docs = s.exec(select(Document).where(Document.index_id == index.id,
                                                 Document.name.in_(spellings(name)))).all()
        if not docs:
            raise NotFound("document not found", name=name)
        return min(docs, key=lambda d: d.name != nfc(name))  # the NFC row, if an old build left both

    def versions(self, principal: Principal, index_id: str, name: str,
                 boundary: Boundary = Boundary()) -> dict[str, Any]:
        doc = self._by_name(principal, index_id, name, boundary)
        with self.ctx.db.session() as s:
            rows = s.exec(select(DocumentVersion).where(DocumentVersion.document_id == doc.id).order_by(DocumentVersion.version)).all()
        items = [version_view(v) | {"current": v.version == doc.current_version} for v in rows]
        return page_of(items, len(items), 1, max(len(items), 1)) | {"document_id": doc.id, "name": doc.name}

    def version(self, principal: Principal, document_id: str, number: int, index_id: str | None = None,
                boundary: Boundary = Boundary()) -> dict[str, Any]:
        doc = self._document(principal, document_id, "read", boundary, index_id)[0]
        with self.ctx.db.session() as s:
            v = s.exec(select(DocumentVersion).where(DocumentVersion.document_id == doc.id, DocumentVersion.version == number)).first()
            if v is None:
                raise NotFound("version not found", document_id=document_id, version=number)
            collection = s.get(Index, doc.index_id).collection
            chunks = s.exec(select(Chunk).where(Chunk.version_id == v.id, Chunk.collection == collection)
                            .order_by(Chunk.ordinal)).all()
        out = version_view(v, include_text=True) | {"document_id": doc.id, "name": doc.name, "index_id": doc.index_id}
        out["chunks"] = [
            {"chunk_id": c.id, "ordinal": c.ordinal, "text": c.text, "page": c.page, "section": c.section,
             "element_type": c.element_type, "content_hash": c.content_hash} for c in chunks
        ]
        return out

    # -- delete / restore --------------------------------------------------------
    def delete(self, principal: Principal, document_id: str, hard: bool, index_id: str | None = None,
               boundary: Boundary = Boundary()) -> dict[str, Any]:
        doc, access = self._document(principal, document_id, "write", boundary, index_id)
        index = access.index
        if hard:
            with self.ctx.db.session() as s:
                reported = reported_version(s, doc)  # read before its rows go
                purge_documents(s, Document.id == doc.id)
                audit(s, principal, "document.hard_delete", "document", doc.id, name=doc.name)
                emit_document(s, "document.purged", doc, reported)  # the outbox: last, then commit
                s.commit()
            # SQL first: from here search drops every hit of this document, and the
            # points go next (sync_live_flags deletes them once the row is gone).
            self.ingestion.sync_live_flags(index, doc.id)
            remaining = self.ctx.vectors.count(index.collection, _doc_filter(doc.id))
            return {"id": doc.id, "deleted": True, "hard": True, "points_remaining": remaining}
        with self.ctx.db.session() as s:
            s.exec(update(Document).where(Document.id == doc.id).values(deleted_at=utcnow(), updated_at=utcnow()))
            audit(s, principal, "document.delete", "document", doc.id, name=doc.name)
            emit_document(s, "document.deleted", s.get(Document, doc.id))
            s.commit()
        self.ingestion.sync_live_flags(index, doc.id)
        self.ingestion.refresh_bm25_average(index.id)
        return self.get(principal, doc.id, boundary=boundary)

    def restore(self, principal: Principal, document_id: str, index_id: str | None = None,
                boundary: Boundary = Boundary()) -> dict[str, Any]:
        doc, access = self._document(principal, document_id, "write", boundary, index_id)
        index = access.index
        with self.ctx.db.session() as s:
            s.exec(update(Document).where(Document.id == doc.id).values(deleted_at=None, updated_at=utcnow()))
            audit(s, principal, "document.restore", "document", doc.id, name=doc.name)
            emit_document(s, "document.restored", s.get(Document, doc.id))
            s.commit()
        self.ingestion.sync_live_flags(index, doc.id)
        return self.get(principal, doc.id, boundary=boundary)


def _doc_filter(document_id: str):
    return Filter(must=(Match("document_id", document_id),))
