"""Ingestion: prepare (parse + chunk), then index a version (embed, encode BM25,
upsert with live=0, promote in SQL, flip live flags). Every Qdrant write is
idempotent (deterministic point ids), so a crashed ingestion can simply re-run.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy import func, or_, update
from sqlmodel import select

from pipelines.chunk import content_hash, document_title, embedding_text
from pipelines.lexical import Bm25Params, document_vector, tokenize
from rag_service.context import ServiceContext
from rag_service.errors import RetrievalUnavailable
from rag_service.models import Chunk, Document, DocumentVersion, Index, utcnow
from rag_service.services.events import emit_version_outcome
from rag_service.services.preparation import (
    PreparedUpload,
    check_unzipped_size,
    document_point_id,
    prepare_upload,
)
from rag_service.stores.embedder import identity_of
from rag_service.stores.vector import (
    SPARSE_DOCUMENT,
    Filter,
    Match,
    Range,
    StoreError,
    StoreUnavailable,
    VectorPoint,
)

log = logging.getLogger(__name__)


def prepare_isolated(ctx: ServiceContext, data: bytes, filename: str, max_characters: int, overlap: int) -> PreparedUpload:
    """prepare_upload in the parser pool (time and memory bounded), after the zip-bomb check here.
    Callers have sniffed the bytes already (format, emptiness, hash): an upload before its
    unchanged check, an ingest job's bytes when they were queued."""
    check_unzipped_size(data, filename, ctx.settings.max_unzipped_mb)
    if ctx.parser is None:
        return prepare_upload(data, filename, max_characters, overlap)
    return ctx.parser.prepare(data, filename, max_characters, overlap)


def _field_kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "keyword"
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return "keyword"
    return None


class IngestionService:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    # -- indexing ------------------------------------------------------------
    def index_version(self, index: Index, document: Document, version: DocumentVersion, chunks: list[Chunk],
                      tokens: list[list[str]] | None = None) -> dict[str, int]:
        """Embed and upsert a version's chunks, then make it the served version. `tokens`: the
        chunks' BM25 tokens when the caller has them from parsing (else they are computed).
        Returns the counts stored on the version: chunks_embedded and chunks_reused.

        On failure the version is marked failed and the previous version keeps serving.
        """
        try:
            # Written live: one store write per chunk batch and no flag flips for a new document.
            # Early flags are harmless, as in promote: search serves a hit only if SQL says its
            # version is current, and a failed version's points are darkened by the next promote.
            embedded = self.write_points(index, document, version, chunks, tokens, live=1)
        except Exception as exc:
            self._drop_points(index, document.id, version.version)
            self.mark_failed(version.id, f"{type(exc).__name__}: {exc}")
            if isinstance(exc, StoreUnavailable):
                raise RetrievalUnavailable(f"vector store unavailable: {exc}", component="vector_store") from exc
            raise
        counts = {"chunks_embedded": embedded, "chunks_reused": len(chunks) - embedded}
        self.promote(index, document.id, version.id, version.version, counts=counts, written_live=True)
        return counts

    def write_points(self, index: Index, document: Document, version: DocumentVersion, chunks: list[Chunk],
                      tokens: list[list[str]] | None = None, live: int = 0) -> int:
        """Embed (reusing cached vectors) and upsert with this `live` flag; returns how many
        chunks the model embedded."""
        started = time.perf_counter()
        # Titled vectors: the embedded text (and so its cache key) has the title in front; the
        # stored chunk text, its BM25 and its highlights do not.
        title = document_title(version.text) if index.title_vectors else None
        texts = [embedding_text(title, c.text) for c in chunks]
        keys = [c.content_hash if t is c.text else content_hash(t) for c, t in zip(chunks, texts)]
        vectors, computed = self.ctx.embedding.embed(identity_of(index), texts, keys)
        if self.ctx.metrics and computed:
            self.ctx.metrics.embed_batch.labels("document").observe(time.perf_counter() - started)
        params = self._bm25_params(index, [c.token_count for c in chunks])
        metadata = version.doc_metadata or {}
        self._ensure_metadata_indexes(index, metadata)
        if tokens is None or len(tokens) != len(chunks):
            tokens = [tokenize(c.text) for c in chunks]
        payload = {"index_id": index.id, "document_id": document.id, "version": version.version,
                   "name": document.name, "live": live, "meta": metadata}
        points = [
            VectorPoint(id=c.id, dense=vec.tolist(), sparse=document_vector(chunk_tokens, params),
                        payload={**payload, "ordinal": c.ordinal})
            for c, vec, chunk_tokens in zip(chunks, vectors, tokens)
        ]
        if index.document_bm25:
            # The document's terms are its chunks' terms (a section's heading counts once per chunk).
            doc_tokens = [t for chunk_tokens in tokens for t in chunk_tokens]
            points.append(VectorPoint(
                id=document_point_id(index.collection, document.id, version.version), dense=None, sparse=None,
                payload={**payload, "kind": "document", "length": len(doc_tokens)},  # length: RM3 reads term counts back
                document_sparse=document_vector(doc_tokens, self._document_bm25_params(index, len(doc_tokens)))))
        for start in range(0, len(points), 256):
            self.ctx.vectors.upsert(index.collection, points[start : start + 256])
        if self.ctx.metrics:
            self.ctx.metrics.ingest_chunks.inc(len(chunks))  # chunks, not the document point
        return computed

    def _ensure_metadata_indexes(self, index: Index, metadata: dict[str, Any]) -> None:
        # Payload indexes on provenance keys let Qdrant filter inside the HNSW/sparse search;
        # the store remembers which it made, so this costs nothing after a key's first upload.
        for key, value in metadata.items():
            kind = _field_kind(value)
            if not kind:
                continue
            try:
                self.ctx.vectors.ensure_field_index(index.collection, f"meta.{key}", kind)
            except StoreUnavailable:
                raise
            except StoreError as exc:  # a key first seen as another type: filtering still works unindexed
                log.info("payload index on meta.%s not created: %s", key, exc)

    def _first_average(self, index: Index, column: str, value: float) -> float:
        """The index's mean length in `column`; the first upload sets it (compare-and-swap, so
        concurrent first uploads agree), and the drift check corrects it later."""
        if getattr(index, column) <= 0:
            with self.ctx.db.session() as s:
                s.exec(update(Index).where(Index.id == index.id, getattr(Index, column) <= 0)
                       .values({column: max(value, 1.0)}))
                s.commit()
                setattr(index, column, getattr(s.get(Index, index.id), column))
        return getattr(index, column)

    def _bm25_params(self, index: Index, new_lengths: list[int]) -> Bm25Params:
        avg = self._first_average(index, "bm25_avg_len", sum(new_lengths) / max(len(new_lengths), 1))
        return Bm25Params(k1=index.bm25_k1, b=index.bm25_b, avg_len=avg)

    def _document_bm25_params(self, index: Index, length: int) -> Bm25Params:
        avg = self._first_average(index, "document_bm25_avg_len", float(length))
        return Bm25Params(k1=index.document_bm25_k1, b=index.document_bm25_b, avg_len=avg)

    def _drop_points(self, index: Index, document_id: str, version: int) -> None:
        """Best effort: a failed version's live points would crowd search's candidates (SQL
        never serves them). If the store is down they stay, and the next promote darkens them."""
        try:
            self.ctx.vectors.delete(index.collection, Filter(must=(Match("document_id", document_id), Match("version", version))))
        except Exception as exc:  # noqa: BLE001 - the upload's own error is the one to report
            log.info("points of failed version %s/%s not removed: %s", document_id, version, exc)

    def mark_failed(self, version_id: str, error: str) -> None:
        with self.ctx.db.session() as s:
            s.exec(update(DocumentVersion).where(DocumentVersion.id == version_id).values(status="failed", error=error[:2000]))
            emit_version_outcome(s, version_id, error=error[:2000])  # the outbox: commits with the change
            s.commit()

    def promote(self, index: Index, document_id: str, version_id: str, version: int,
                counts: dict[str, int] | None = None, written_live: bool = False) -> None:
        # Flag the new points live before SQL makes them current. The other order leaves a
        # window where SQL rejects the old points and the store has no live new ones, and the
        # document vanishes from search (found by `python -m benchmarks stale`). Early flags
        # are harmless: search serves a hit only if SQL says its version is current.
        # written_live: the points were upserted with live=1 already.
        if not written_live:
            self.ctx.vectors.set_payload(
                index.collection, Filter(must=(Match("document_id", document_id), Match("version", version))), {"live": 1})
        with self.ctx.db.session() as s:
            # Compare-and-swap: an older version finishing late never replaces a newer one.
            s.exec(
                update(Document)
                .where(Document.id == document_id, or_(Document.current_version.is_(None), Document.current_version < version))
                .values(current_version=version, updated_at=utcnow())
            )
            s.exec(
                update(DocumentVersion)
                .where(DocumentVersion.id == version_id)
                .values(status="ready", ready_at=utcnow(), error=None, **(counts or {}))
            )
            emit_version_outcome(s, version_id)  # the outbox: commits with the change
            s.commit()
        self.sync_live_flags(index, document_id, flagged_live=version)
        promoted = sum(counts.values()) if counts else None
        if self._bm25_check_due(index.id, promoted):
            self.refresh_bm25_average(index.id)

    def sync_live_flags(self, index: Index, document_id: str, flagged_live: int | None = None) -> None:
        """Make Qdrant's live flags match SQL for one document.

        Search re-checks every hit against SQL, so a flag that lags is never served;
        re-reading after the flip makes concurrent promotions converge on SQL's state.
        flagged_live: a version whose points the caller has just flagged live=1; when it is the
        current one, that write is not repeated, and when it is version 1 no other version ever
        served, so there are no old points to darken (the common case: a new document costs no
        flag writes at all).
        """
        seen: object = object()  # no state read yet
        for _ in range(5):
            with self.ctx.db.session() as s:
                doc = s.get(Document, document_id)
            state = (doc.current_version, doc.deleted_at is None) if doc else None
            if state == seen:
                return
            seen = state
            by_doc = Match("document_id", document_id)
            if doc is None:
                self.ctx.vectors.delete(index.collection, Filter(must=(by_doc,)))
                return
            current = doc.current_version
            just_flagged = flagged_live is not None and current == flagged_live
            flagged_live = None  # only the first read can vouch for the caller's write
            if just_flagged and current == 1 and doc.deleted_at is None:
                continue  # re-read once: a concurrent promote or delete may have moved SQL on
            # The current version goes live before the others go dark: for a moment both may
            # match (SQL keeps exactly one), but a live document never drops out of search.
            if current and doc.deleted_at is None and not just_flagged:
                self.ctx.vectors.set_payload(index.collection, Filter(must=(by_doc, Match("version", current))), {"live": 1})
            # Only versions older than the current one go dark: a newer one is still being written
            # (live from its upsert on), and darkening it on a stale read of `current` would leave
            # it dark after its own promotion, which trusts its upsert (found under load by
            # test_concurrent_unconditional_uploads_get_dense_versions). A newer version that
            # failed has its points dropped (or by reconcile); SQL never serves them meanwhile.
            older = (Range("version", lt=current),) if current else ()
            self.ctx.vectors.set_payload(index.collection, Filter(must=(by_doc, Match("live", 1), *older)), {"live": 0})
            if current and doc.deleted_at is not None:
                self.ctx.vectors.set_payload(index.collection, Filter(must=(by_doc, Match("live", 1))), {"live": 0})

    # -- BM25 average length -------------------------------------------------
    # The mean is an AVG over every live chunk of the index: O(index) per check. Checked after
    # BM25_CHECK_FRACTION of the index's chunks were promoted since the last check, it costs O(1)
    # per chunk; for the mean to drift past the tolerance (0.1) within 2% new chunks, their own
    # mean would have to differ from the index's more than fivefold.
    BM25_CHECK_FRACTION = 0.02
    _bm25_checks: dict[str, list[float]] = {}  # index id -> [chunks promoted since the check, live chunks then]

    def _bm25_check_due(self, index_id: str, promoted: int | None) -> bool:
        since, live = self._bm25_checks.get(index_id, (0.0, 0.0))
        since += promoted if promoted is not None else float("inf")
        if since < live * self.BM25_CHECK_FRACTION:
            self._bm25_checks[index_id] = [since, live]
            return False
        return True

    def live_mean_tokens(self, index_id: str) -> float | None:
        with self.ctx.db.session() as s:
            mean, live = s.exec(
                select(func.avg(Chunk.token_count), func.count(Chunk.id))
                .join(Document, Document.id == Chunk.document_id)
                .join(Index, Index.id == Chunk.index_id)
                .where(
                    Chunk.index_id == index_id,
                    Chunk.collection == Index.collection,
                    Chunk.version == Document.current_version,
                    Document.deleted_at.is_(None),
                )
            ).one()
        self._bm25_checks[index_id] = [0.0, float(live or 0)]
        return float(mean) if mean is not None else None

    def live_mean_document_tokens(self, index_id: str) -> float | None:
        """The mean length of the index's current documents, in chunk tokens (what their document
        points were encoded from)."""
        with self.ctx.db.session() as s:
            lengths = (
                select(func.sum(Chunk.token_count).label("n"))
                .join(Document, Document.id == Chunk.document_id)
                .join(Index, Index.id == Chunk.index_id)
                .where(Chunk.index_id == index_id, Chunk.collection == Index.collection,
                       Chunk.version == Document.current_version, Document.deleted_at.is_(None))
                .group_by(Chunk.version_id)
                .subquery()
            )
            mean = s.exec(select(func.avg(lengths.c.n))).one()
        mean = mean[0] if isinstance(mean, tuple) else mean
        return float(mean) if mean is not None else None

    def _drifted(self, mean: float | None, used: float) -> bool:
        return mean is not None and mean > 0 and abs(mean - used) / max(used, 1e-9) > self.ctx.settings.bm25_avg_len_tolerance

    def refresh_bm25_average(self, index_id: str) -> bool:
        """Re-encode the index's lexical vectors (chunk, and document points) when the true mean
        length they were encoded with drifted."""
        mean = self.live_mean_tokens(index_id)
        with self.ctx.db.session() as s:
            index = s.get(Index, index_id)
        if index is None:
            return False
        doc_mean = self.live_mean_document_tokens(index_id) if index.document_bm25 else None
        changed = False
        for column, true_mean, reencode in (("bm25_avg_len", mean, self.reencode_lexical),
                                            ("document_bm25_avg_len", doc_mean, self.reencode_documents)):
            if self._drifted(true_mean, getattr(index, column)):
                with self.ctx.db.session() as s:
                    s.exec(update(Index).where(Index.id == index_id).values({column: true_mean}))
                    s.commit()
                reencode(index_id)
                changed = True
        return changed

    def reencode_documents(self, index_id: str) -> int:
        """Re-encode every ready version's document point with the index's document BM25 settings."""
        with self.ctx.db.session() as s:
            index = s.get(Index, index_id)
        return self.encode_document_points(index) if index is not None and index.document_bm25 else 0

    def encode_document_points(self, index: Index) -> int:
        """Rewrite the document points' BM25 vectors in `index.collection` with `index`'s document
        k1, b and mean length (the live index's, or a tune job's shadow copy of it)."""
        index_id = index.id
        params = Bm25Params(k1=index.document_bm25_k1, b=index.document_bm25_b,
                            avg_len=max(index.document_bm25_avg_len, 1.0))
        done, last_id = 0, ""
        while True:
            with self.ctx.db.session() as s:
                batch = s.exec(
                    select(DocumentVersion.id, DocumentVersion.document_id, DocumentVersion.version)
                    .join(Document, Document.id == DocumentVersion.document_id)
                    .where(Document.index_id == index_id, DocumentVersion.status == "ready", DocumentVersion.id > last_id)
                    .order_by(DocumentVersion.id).limit(200)
                ).all()
                texts: dict[str, list[str]] = {}
                for vid, text in s.exec(select(Chunk.version_id, Chunk.text)
                                        .where(Chunk.version_id.in_([b[0] for b in batch]), Chunk.collection == index.collection)
                                        .order_by(Chunk.version_id, Chunk.ordinal)).all():
                    texts.setdefault(vid, []).append(text)
            if not batch:
                return done
            vectors = [(document_point_id(index.collection, doc_id, version),
                        document_vector([t for text in texts[vid] for t in tokenize(text)], params))
                       for vid, doc_id, version in batch if vid in texts]
            self.ctx.vectors.update_sparse(index.collection, vectors, using=SPARSE_DOCUMENT)
            done += len(vectors)
            last_id = batch[-1][0]

    def reencode_lexical(self, index_id: str) -> int:
        with self.ctx.db.session() as s:
            index = s.get(Index, index_id)
        return self.encode_chunk_lexical(index) if index is not None else 0

    def encode_chunk_lexical(self, index: Index) -> int:
        """Rewrite the chunk points' BM25 vectors in `index.collection` with `index`'s k1, b and
        mean length."""
        params = Bm25Params(k1=index.bm25_k1, b=index.bm25_b, avg_len=max(index.bm25_avg_len, 1.0))
        done, last_id = 0, ""
        while True:
            with self.ctx.db.session() as s:
                # Only versions whose points exist: an in-flight version is encoded by its own ingestion.
                rows = s.exec(
                    select(Chunk.id, Chunk.text)
                    .join(DocumentVersion, DocumentVersion.id == Chunk.version_id)
                    .where(Chunk.collection == index.collection, Chunk.id > last_id, DocumentVersion.status == "ready")
                    .order_by(Chunk.id)
                    .limit(1000)
                ).all()
            if not rows:
                return done
            self.ctx.vectors.update_sparse(index.collection, [(cid, document_vector(tokenize(text), params)) for cid, text in rows])
            done += len(rows)
            last_id = rows[-1][0]
