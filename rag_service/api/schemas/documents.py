"""Answers of the document routes: uploads (single, async, batch), reads, versions,
deletes (services/documents.py `document_view`, `version_view`; api/batch.py items)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from rag_service.api.schemas.common import IndexExclusion, Page, ResponseModel
from rag_service.api.schemas.jobs import Job

METADATA = "the provenance metadata given at upload"
METADATA_ERROR = "only when stored metadata can't be sent as JSON (written by an older build); metadata is then {}"


class DocumentView(ResponseModel):
    """A document at the version it serves (its current version, else its latest)."""

    id: str
    index_id: str
    name: str
    version: int = Field(description="the version this view shows")
    latest_version: int = Field(description="the highest number handed out, indexing or failed included")
    current_version: int | None = Field(description="the highest ready version, the only one search serves")
    status: str = Field(description="pending, indexing, ready or failed (of `version`)")
    content_hash: str | None = Field(description="sha256 of the bytes")
    metadata: dict[str, Any] = Field(description=METADATA)
    metadata_error: str | None = Field(None, description=METADATA_ERROR)
    chunk_count: int
    chunks_embedded: int = Field(description="chunks the model encoded for this version")
    chunks_reused: int = Field(description="chunks whose text was already embedded by the same encoder")
    media_type: str | None
    size_bytes: int | None
    filename: str | None
    deleted: bool
    deleted_at: datetime | None
    created_at: datetime = Field(description="when `version` was created")
    document_created_at: datetime
    updated_at: datetime
    etag: str = Field(description='"vN" for version N; If-Match takes it')
    unchanged: bool = Field(False, description="uploads only: the same bytes and metadata as the latest version, "
                                               "so no new version (200)")


class DocumentPage(Page):
    items: list[DocumentView]
    data_boundary: str
    indexes_excluded: list[IndexExclusion] | None = Field(
        None, description="GET /v1/documents only: indexes the data_boundary may not read, skipped")


class VersionView(ResponseModel):
    id: str
    version: int
    status: str = Field(description="pending, indexing, ready or failed")
    content_hash: str
    size_bytes: int
    media_type: str
    filename: str
    metadata: dict[str, Any] = Field(description=METADATA)
    metadata_error: str | None = Field(None, description=METADATA_ERROR)
    chunk_count: int
    chunks_embedded: int
    chunks_reused: int
    error: str | None = Field(description="why a failed version failed")
    created_at: datetime
    ready_at: datetime | None


class ListedVersion(VersionView):
    current: bool = Field(description="this is the document's current version")


class VersionListing(Page):
    """Every version of one document, oldest first, in one page."""

    items: list[ListedVersion]
    document_id: str
    name: str


class ChunkText(ResponseModel):
    chunk_id: str
    ordinal: int
    text: str
    page: int | None
    section: str | None = Field(description="the heading the chunk sits under")
    element_type: str | None = Field(None, description="Table for rows of a table, else CompositeElement")
    content_hash: str = Field(description="hash of the chunk's text: the embedding cache's key, so two versions' "
                                          "chunks with the same hash share one embedding")


class VersionDetail(VersionView):
    """One version with its text and chunks."""

    document_id: str
    name: str
    index_id: str
    text: str
    chunks: list[ChunkText]


class HardDeleted(ResponseModel):
    """DELETE ...?hard=true: the document, its versions and chunks are gone."""

    id: str
    deleted: bool
    hard: bool
    points_remaining: int = Field(description="vector points of the document still in the store (0 once gone)")


# A soft delete answers the document view (deleted: true); a hard one, HardDeleted.
DeletedDocument = DocumentView | HardDeleted


class AsyncUpload(Job):
    """`?async=true`: the queued ingest job, and the pending version it will index."""

    document: DocumentView


class BatchItem(ResponseModel):
    """One file of a batch, in file order: a single upload's answer (a document view, or with
    `?async=true` the queued job with `document`), or its error (`code`, `message`, detail)."""

    status_code: int = Field(description="what a single upload of this file answered: 201, 200 unchanged, "
                                         "202 queued, or the error's status")
    filename: str
    id: str | None = Field(None, description="the document id (a created or unchanged file), or the job id (202)")
    error: str | None = Field(None, description="a failed file's error code (a queued job's error: null)")
    code: str | None = Field(None, description="a failed file's error code")
    message: str | None = Field(None, description="a failed file's error message")
    document: DocumentView | None = Field(None, description="202 only: the pending version")


class BatchResult(ResponseModel):
    items: list[BatchItem]
    total: int
    failed: int = Field(description="items whose status_code is 400 or more (the request answers 207 then)")
