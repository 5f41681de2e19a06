"""Bulk ingestion: many files in one request, each answered as a single upload would be.

Files run concurrently (RAG_INGEST_CONCURRENCY at a time), so one file parses in the
parser pool while others embed: the group encoder folds the concurrent embedding calls
into shared model batches. Files that name the same document run in their order, one
after the other, so their versions come out in the order they were sent.
"""

from __future__ import annotations

import concurrent.futures as cf
from dataclasses import dataclass, field
from typing import Any

from rag_service.context import ServiceContext
from rag_service.errors import ServiceError
from rag_service.services.access import AccessService, Boundary
from rag_service.services.common import Principal
from rag_service.services.uploads import UploadService, document_names


@dataclass
class BatchFile:
    data: bytes
    filename: str
    name: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    if_version: int | None = None


@dataclass
class BatchOutcome:
    """One file's answer: a document view (created / unchanged), a queued job, or a domain error."""

    filename: str
    view: dict[str, Any] | None = None
    created: bool = False
    job: dict[str, Any] | None = None
    error: ServiceError | None = None


class BatchUploadService:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.uploads = UploadService(ctx)

    def upload(self, principal: Principal, index_ref: str, files: list[BatchFile], boundary: Boundary,
               run_async: bool = False) -> list[BatchOutcome]:
        # The gate refuses the whole batch (404, 403) before any file is read or row written;
        # after that each file succeeds or fails on its own.
        index = AccessService(self.ctx).authorize(principal, index_ref, "write", boundary).index
        outcomes: list[BatchOutcome | None] = [None] * len(files)
        groups: dict[str, list[int]] = {}
        for i, f in enumerate(files):
            groups.setdefault(self._group_key(f), []).append(i)

        def run_group(positions: list[int]) -> None:
            for i in positions:
                outcomes[i] = self._one(principal, index.id, files[i], boundary, run_async)

        workers = max(1, min(self.ctx.settings.ingest_concurrency, len(groups)))
        with cf.ThreadPoolExecutor(workers, thread_name_prefix="batch-upload") as pool:
            for future in [pool.submit(run_group, g) for g in groups.values()]:
                future.result()
        return [o for o in outcomes if o is not None]

    @staticmethod
    def _group_key(f: BatchFile) -> str:
        try:
            return document_names(f.filename, f.name)[1]
        except ServiceError:
            return f"\0invalid:{id(f)}"  # reported by its own upload call

    def _one(self, principal: Principal, index_id: str, f: BatchFile, boundary: Boundary,
             run_async: bool) -> BatchOutcome:
        try:
            if run_async:
                job, view = self.uploads.upload_async(principal, index_id, f.data, f.filename, f.name, f.metadata,
                                                        f.if_version, boundary)
                return BatchOutcome(f.filename, view=view, job=job)
            view, created = self.uploads.upload(principal, index_id, f.data, f.filename, f.name, f.metadata,
                                                  f.if_version, boundary)
            return BatchOutcome(f.filename, view=view, created=created)
        except ServiceError as exc:
            return BatchOutcome(f.filename, error=exc)
