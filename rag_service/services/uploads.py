"""Uploads, from the access gate down: the unchanged check (the hash needs no parse), parsing
and chunking in the isolated parser pool, the version claimed with a compare-and-swap in the
same transaction as its chunks, then embedding, the vector write and the promotion
(services/ingestion.py). An async upload claims its version and leaves the rest to an `ingest` job.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from rag_service.context import ServiceContext
from rag_service.errors import ValidationFailed, VersionConflict
from rag_service.models import Document, DocumentVersion, Index, UploadBlob, utcnow
from rag_service.services.access import AccessService, Boundary
from rag_service.services.common import Principal, audit, versions_with_live_ingest_job
from rag_service.services.documents import document_view
from rag_service.services.ingestion import IngestionService, prepare_isolated
from rag_service.services.jobs import JobService
from rag_service.services.preparation import PreparedUpload, chunk_rows, sniff_upload

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


def document_names(filename: str | None, name: str | None) -> tuple[str, str]:
    """(file name, document name): both cleaned; the document is named after its file unless told."""
    filename = clean_name(filename or "upload")
    return filename, clean_name(name) if name else filename


def version_conflict(current: int, expected: int | None) -> VersionConflict:
    return VersionConflict(
        f"the latest version is {current}, not {expected}", current_version=current, expected_version=expected
    )


class UploadService:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.access = AccessService(ctx)
        self.ingestion = IngestionService(ctx)

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
        filename, name = document_names(filename, name)
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
        filename, name = document_names(filename, name)
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
                raise version_conflict(doc.latest_version, if_version)
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
                        raise version_conflict(0, if_version)
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
                        raise version_conflict(doc.latest_version, if_version)
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
                            raise version_conflict(current, if_version)
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
