"""Documents and their versions: upload with a compare-and-swap on the version
number, reads, soft delete / restore, hard delete."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from sqlalchemy import and_, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from rag_service.context import ServiceContext
from rag_service.errors import NotFound, ValidationFailed, VersionConflict
from rag_service.models import (
    Chunk,
    Document,
    DocumentVersion,
    Index,
    UploadBlob,
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
    versions_with_live_ingest_job,
)
from rag_service.services.events import emit_document, reported_version
from rag_service.services.ingestion import IngestionService, prepare_isolated
from rag_service.services.jobs import JobService
from rag_service.services.preparation import PreparedUpload, chunk_rows, sniff_upload
from rag_service.services.values import readable_metadata
from rag_service.stores.vector import Filter, Match

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
        boundary: Boundary = Boundary(),
    ) -> tuple[dict[str, Any], bool]:
        """Returns (document view, created). created=False means unchanged. `index_id` is an
        index id or name; the access gate runs before the file is parsed or anything is written."""
        index = self.access.authorize(principal, index_id, "write", boundary).index
        filename = clean_name(filename or "upload")
        name = clean_name(name) if name else filename
        if if_version is not None and if_version < 0:
            raise ValidationFailed("if_version must be >= 0", field="if_version")
        # Identical bytes and metadata need no parse: the unchanged check reads only the hash.
        sniffed = sniff_upload(data, filename)
        unchanged = self._unchanged(index.id, name, sniffed.content_hash, metadata, if_version)
        if unchanged is not None:
            return unchanged, False
        prepared = prepare_isolated(self.ctx, data, filename, index.chunk_max_characters, index.chunk_overlap)
        if self.ctx.metrics:
            self.ctx.metrics.ingest_bytes.inc(len(data))
        document, version, chunks = self._allocate_version(principal, index, name, prepared, metadata, if_version)
        self.ingestion.index_version(index, document, version, chunks, prepared.tokens)
        with self.ctx.db.session() as s:
            version = s.get(DocumentVersion, version.id)
            document = s.get(Document, document.id)
        return document_view(document, version), True

    def upload_async(self, principal: Principal, index_id: str, data: bytes, filename: str, name: str | None,
                     metadata: dict[str, Any], if_version: int | None, boundary: Boundary = Boundary()):
        """Claim the version now (so if_version answers at once), parse and index in an `ingest` job.
        The gate runs first: a refused upload stores no version and no bytes (the job's own check
        below then cannot refuse what the gate let through)."""
        index = self.access.authorize(principal, index_id, "write", boundary).index
        filename = clean_name(filename or "upload")
        name = clean_name(name) if name else filename
        prepared = sniff_upload(data, filename)
        unchanged = self._unchanged(index.id, name, prepared.content_hash, metadata, if_version)
        if unchanged is not None:
            return None, unchanged
        document, version, _ = self._allocate_version(principal, index, name, prepared, metadata, if_version,
                                                      status="pending", blob=data)
        job = JobService(self.ctx).submit(principal, {
            "job_class": "ingest", "index_id": index.id, "data_boundary": boundary.name,
            "account_id": boundary.account_id,
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
            queued = (latest is not None and latest.status == "pending"
                      and bool(versions_with_live_ingest_job(s, [latest.id])))
        if (
            latest is not None
            and doc.deleted_at is None
            # Only a version that is served (or queued to be, by a job that still exists) makes a
            # re-upload a no-op: one left "indexing" by a crash or a database outage, or "pending"
            # with no ingest job to finish it, must not swallow the client's retry.
            and (latest.version == doc.current_version or queued)
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
            {"chunk_id": c.id, "ordinal": c.ordinal, "text": c.text, "page": c.page, "section": c.section} for c in chunks
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


def _conflict(current: int, expected: int | None) -> VersionConflict:
    return VersionConflict(
        f"the latest version is {current}, not {expected}", current_version=current, expected_version=expected
    )
