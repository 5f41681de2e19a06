"""Documents and their versions: upload with a compare-and-swap on the version
number, reads, soft delete / restore, hard delete."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from sqlalchemy import func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import delete, select

from rag_service.context import ServiceContext
from rag_service.errors import NotFound, ValidationFailed, VersionConflict
from rag_service.models import Chunk, Document, DocumentVersion, Index, UploadBlob, utcnow
from rag_service.services.common import Principal, audit, get_owned, page_of
from rag_service.services.indexes import IndexService
from rag_service.services.ingestion import (
    IngestionService,
    PreparedUpload,
    chunk_rows,
    prepare_isolated,
    sniff_upload,
)

MAX_NAME_LENGTH = 512
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def clean_name(raw: str) -> str:
    """Document names are labels, not paths: drop control characters and any directory part."""
    name = unicodedata.normalize("NFC", raw or "")
    name = _CONTROL.sub("", name).replace("\\", "/").strip()
    name = name.rsplit("/", 1)[-1].strip() if "/" in name else name
    if name in ("", ".", ".."):
        raise ValidationFailed("document name is empty after removing path and control characters", field="name")
    if len(name) > MAX_NAME_LENGTH:
        raise ValidationFailed(f"document name is longer than {MAX_NAME_LENGTH} characters", field="name")
    return name


def etag(version: int) -> str:
    return f'"v{version}"'


def parse_if_match(value: str | None) -> int | None:
    if value is None or value.strip() in ("", "*"):
        return None
    raw = value.strip().removeprefix("W/").strip('"').removeprefix("v")
    if not raw.isdigit():
        raise ValidationFailed("If-Match must be an ETag returned by this service, like \"v3\"", field="If-Match")
    return int(raw)


def version_view(v: DocumentVersion, include_text: bool = False) -> dict[str, Any]:
    out = {
        "id": v.id,
        "version": v.version,
        "status": v.status,
        "content_hash": v.content_hash,
        "size_bytes": v.size_bytes,
        "media_type": v.media_type,
        "filename": v.filename,
        "metadata": v.doc_metadata or {},
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
        "metadata": (v.doc_metadata or {}) if v else {},
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
        self.indexes = IndexService(ctx)
        self.ingestion = IngestionService(ctx)

    # -- upload ----------------------------------------------------------------
    def upload(
        self,
        principal: Principal,
        index_id: str,
        data: bytes,
        filename: str,
        name: str | None,
        metadata: dict[str, Any],
        if_version: int | None,
    ) -> tuple[dict[str, Any], bool]:
        """Returns (document view, created). created=False means unchanged."""
        index = self.indexes.get_owned(principal, index_id)
        filename = clean_name(filename or "upload")
        name = clean_name(name) if name else filename
        if if_version is not None and if_version < 0:
            raise ValidationFailed("if_version must be >= 0", field="if_version")
        prepared = prepare_isolated(self.ctx, data, filename, index.chunk_max_characters, index.chunk_overlap)
        if self.ctx.metrics:
            self.ctx.metrics.ingest_bytes.inc(len(data))

        unchanged = self._unchanged(index.id, name, prepared.content_hash, metadata, if_version)
        if unchanged is not None:
            return unchanged, False
        document, version, chunks = self._allocate_version(principal, index, name, prepared, metadata, if_version)
        self.ingestion.index_version(index, document, version, chunks)
        with self.ctx.db.session() as s:
            version = s.get(DocumentVersion, version.id)
            document = s.get(Document, document.id)
        return document_view(document, version), True

    def upload_async(self, principal: Principal, index_id: str, data: bytes, filename: str, name: str | None,
                     metadata: dict[str, Any], if_version: int | None, data_boundary: str | None = None):
        """Claim the version now (so if_version answers at once), parse and index in an `ingest` job."""
        from rag_service.services.jobs import JobService

        index = self.indexes.get_owned(principal, index_id)
        filename = clean_name(filename or "upload")
        name = clean_name(name) if name else filename
        prepared = sniff_upload(data, filename)
        unchanged = self._unchanged(index.id, name, prepared.content_hash, metadata, if_version)
        if unchanged is not None:
            return None, unchanged
        document, version, _ = self._allocate_version(principal, index, name, prepared, metadata, if_version,
                                                      status="pending", blob=data)
        job = JobService(self.ctx).submit(principal, {
            "job_class": "ingest", "index_id": index.id, "data_boundary": data_boundary,
            "params": {"version_id": version.id, "document_id": document.id},
        })
        return job, document_view(document, version)

    def _latest(self, s, document: Document) -> DocumentVersion | None:
        return s.exec(
            select(DocumentVersion).where(
                DocumentVersion.document_id == document.id, DocumentVersion.version == document.latest_version
            )
        ).first()

    def _unchanged(self, index_id: str, name: str, content_hash: str, metadata: dict, if_version: int | None):
        with self.ctx.db.session() as s:
            doc = s.exec(select(Document).where(Document.index_id == index_id, Document.name == name)).first()
            if doc is None:
                return None
            if if_version is not None and if_version != doc.latest_version:
                raise _conflict(doc.latest_version, if_version)
            latest = self._latest(s, doc)
        if (
            latest is not None
            and doc.deleted_at is None
            # Only a version that is served (or queued to be) makes a re-upload a no-op: one
            # left "indexing" by a crash or a database outage must not swallow the client's retry.
            and (latest.version == doc.current_version or latest.status == "pending")
            and latest.content_hash == content_hash
            and (latest.doc_metadata or {}) == metadata
        ):
            return document_view(doc, latest, unchanged=True)
        return None

    def _allocate_version(self, principal: Principal, index: Index, name: str, prepared: PreparedUpload,
                          metadata: dict, if_version: int | None, status: str = "indexing", blob: bytes | None = None):
        """Claim the next version number with a compare-and-swap and write the
        version and its chunks in the same transaction: two uploads with the same
        if_version can never both win, in one process or many."""
        for _ in range(50):
            with self.ctx.db.session() as s:
                doc = s.exec(select(Document).where(Document.index_id == index.id, Document.name == name)).first()
                if doc is None:
                    if if_version not in (None, 0):
                        raise _conflict(0, if_version)
                    doc = Document(project_id=principal.project_id, index_id=index.id, name=name, latest_version=1)
                    s.add(doc)
                    try:
                        s.flush()
                    except IntegrityError:
                        s.rollback()  # created concurrently: go round and compare again
                        continue
                    number = 1
                else:
                    expected = doc.latest_version if if_version is None else if_version
                    if expected != doc.latest_version:
                        raise _conflict(doc.latest_version, if_version)
                    claimed = s.exec(
                        update(Document)
                        .where(Document.id == doc.id, Document.latest_version == expected)
                        .values(latest_version=expected + 1, deleted_at=None, updated_at=utcnow())
                    )
                    if claimed.rowcount != 1:
                        s.rollback()
                        if if_version is not None:
                            with self.ctx.db.session() as s2:
                                current = s2.get(Document, doc.id).latest_version
                            raise _conflict(current, if_version)
                        continue
                    number = expected + 1
                version = DocumentVersion(
                    document_id=doc.id,
                    version=number,
                    content_hash=prepared.content_hash,
                    size_bytes=prepared.size,
                    media_type=prepared.media_type,
                    filename=prepared.filename,
                    doc_metadata=metadata,
                    status=status,
                    chunk_count=len(prepared.chunks),
                    text=prepared.text,
                    created_by_key_id=principal.key_id,
                )
                s.add(version)
                s.flush()
                chunks = chunk_rows(index, doc.id, version.id, number, prepared)
                s.add_all(chunks)
                if blob is not None:
                    s.add(UploadBlob(version_id=version.id, data=blob))
                audit(s, principal, "document.upload", "document", doc.id, name=name, version=number,
                      content_hash=prepared.content_hash)
                try:
                    s.commit()
                except IntegrityError:
                    s.rollback()
                    continue
                s.refresh(doc)
                return doc, version, chunks
        raise VersionConflict("too much contention on this document name; retry", current_version=None)

    # -- reads -----------------------------------------------------------------
    def _owned_document(self, principal: Principal, document_id: str, index_id: str | None = None) -> Document:
        doc = get_owned(self.ctx.db, Document, document_id, principal.project_id, "document", document_id=document_id)
        if index_id and doc.index_id != index_id:
            raise NotFound("document not found", document_id=document_id)
        return doc

    def _view(self, doc: Document) -> dict[str, Any]:
        with self.ctx.db.session() as s:
            number = doc.current_version or doc.latest_version
            v = s.exec(
                select(DocumentVersion).where(DocumentVersion.document_id == doc.id, DocumentVersion.version == number)
            ).first()
        return document_view(doc, v)

    def list(self, principal: Principal, index_id: str | None, page: int, per_page: int,
             include_deleted: bool = False, name_prefix: str | None = None) -> dict[str, Any]:
        if index_id:
            self.indexes.get_owned(principal, index_id)
        with self.ctx.db.session() as s:
            q = select(Document).where(Document.project_id == principal.project_id)
            if index_id:
                q = q.where(Document.index_id == index_id)
            if not include_deleted:
                q = q.where(Document.deleted_at.is_(None))
            if name_prefix:
                q = q.where(Document.name.startswith(name_prefix))
            total = s.exec(select(func.count()).select_from(q.subquery())).one()
            docs = s.exec(q.order_by(Document.created_at, Document.id).offset((page - 1) * per_page).limit(per_page)).all()
        return page_of([self._view(d) for d in docs], total, page, per_page)

    def get(self, principal: Principal, document_id: str, index_id: str | None = None) -> dict[str, Any]:
        return self._view(self._owned_document(principal, document_id, index_id))

    def get_by_name(self, principal: Principal, index_id: str, name: str) -> dict[str, Any]:
        return self._view(self._by_name(principal, index_id, name))

    def _by_name(self, principal: Principal, index_id: str, name: str) -> Document:
        self.indexes.get_owned(principal, index_id)
        with self.ctx.db.session() as s:
            doc = s.exec(select(Document).where(Document.index_id == index_id, Document.name == name)).first()
        if doc is None:
            raise NotFound("document not found", name=name)
        return doc

    def versions(self, principal: Principal, index_id: str, name: str) -> dict[str, Any]:
        doc = self._by_name(principal, index_id, name)
        with self.ctx.db.session() as s:
            rows = s.exec(select(DocumentVersion).where(DocumentVersion.document_id == doc.id).order_by(DocumentVersion.version)).all()
        items = [version_view(v) | {"current": v.version == doc.current_version} for v in rows]
        return page_of(items, len(items), 1, max(len(items), 1)) | {"document_id": doc.id, "name": doc.name}

    def version(self, principal: Principal, document_id: str, number: int, index_id: str | None = None) -> dict[str, Any]:
        doc = self._owned_document(principal, document_id, index_id)
        with self.ctx.db.session() as s:
            v = s.exec(select(DocumentVersion).where(DocumentVersion.document_id == doc.id, DocumentVersion.version == number)).first()
            if v is None:
                raise NotFound("version not found", document_id=document_id, version=number)
            collection = s.get(Index, doc.index_id).collection
            chunks = s.exec(select(Chunk).where(Chunk.version_id == v.id, Chunk.collection == collection)
                            .order_by(Chunk.ordinal)).all()
        out = version_view(v, include_text=True) | {"document_id": doc.id, "name": doc.name, "index_id": doc.index_id}
        out["chunks"] = [
            {"chunk_id": c.id, "ordinal": c.ordinal, "text": c.text, "page": c.page, "section": c.section} for c in chunks
        ]
        return out

    # -- delete / restore --------------------------------------------------------
    def delete(self, principal: Principal, document_id: str, hard: bool, index_id: str | None = None) -> dict[str, Any]:
        doc = self._owned_document(principal, document_id, index_id)
        index = self.indexes.get_owned(principal, doc.index_id)
        if hard:
            with self.ctx.db.session() as s:
                version_ids = select(DocumentVersion.id).where(DocumentVersion.document_id == doc.id)
                s.exec(delete(Chunk).where(Chunk.document_id == doc.id))
                s.exec(delete(DocumentVersion).where(DocumentVersion.id.in_(version_ids)))
                s.exec(delete(Document).where(Document.id == doc.id))
                audit(s, principal, "document.hard_delete", "document", doc.id, name=doc.name)
                s.commit()
            # SQL first: from here search drops every hit of this document, and the
            # points go next (sync_live_flags deletes them once the row is gone).
            self.ingestion.sync_live_flags(index, doc.id)
            remaining = self.ctx.vectors.count(index.collection, _doc_filter(doc.id))
            return {"id": doc.id, "deleted": True, "hard": True, "points_remaining": remaining}
        with self.ctx.db.session() as s:
            s.exec(update(Document).where(Document.id == doc.id).values(deleted_at=utcnow(), updated_at=utcnow()))
            audit(s, principal, "document.delete", "document", doc.id, name=doc.name)
            s.commit()
        self.ingestion.sync_live_flags(index, doc.id)
        self.ingestion.refresh_bm25_average(index.id)
        return self.get(principal, doc.id)

    def restore(self, principal: Principal, document_id: str, index_id: str | None = None) -> dict[str, Any]:
        doc = self._owned_document(principal, document_id, index_id)
        index = self.indexes.get_owned(principal, doc.index_id)
        with self.ctx.db.session() as s:
            s.exec(update(Document).where(Document.id == doc.id).values(deleted_at=None, updated_at=utcnow()))
            audit(s, principal, "document.restore", "document", doc.id, name=doc.name)
            s.commit()
        self.ingestion.sync_live_flags(index, doc.id)
        return self.get(principal, doc.id)


def _doc_filter(document_id: str):
    from rag_service.stores.vector import Filter, Match

    return Filter(must=(Match("document_id", document_id),))


def _conflict(current: int, expected: int | None) -> VersionConflict:
    return VersionConflict(
        f"the latest version is {current}, not {expected}", current_version=current, expected_version=expected
    )
