"""The BM25 round of a tune job.

k1 and b live in the stored sparse vectors (the document side of BM25), not in a request field,
so a candidate pair cannot be tried on the live collection without changing what every search
of the index gets. It is tried on a shadow copy instead: the same chunks and the same cached
embeddings in a collection of its own, whose BM25 vectors are rewritten for each pair. Live
searches never see a candidate. The winner reaches the live index through the re-encoding a
PATCH of the index runs.
"""

from __future__ import annotations

from typing import Any, Iterator
from contextlib import contextmanager

from sqlalchemy import update

from rag_service.models import Index, Job, new_id, utcnow
from rag_service.services.ingestion import IngestionService
from rag_service.services.job_handle import JobHandle
from rag_service.services.job_params import TuneGrid
from rag_service.services.reindex import drop_shadow, fill_collection

# The Index columns that hold each unit's k1 and b.
BM25_FIELDS = {"chunk": ("bm25_k1", "bm25_b"), "document": ("document_bm25_k1", "document_bm25_b")}


def lexical_unit_of(setting: dict[str, Any], index: Index) -> str | None:
    """The points a setting's lexical side searches on this index (chunk BM25 where it has no
    document points); None for a dense setting."""
    if setting["mode"] == "dense":
        return None
    unit = setting.get("lexical_unit") or "document"
    return unit if index.document_bm25 else "chunk"


def bm25_of(setting: dict[str, Any], index: Index) -> dict[str, Any] | None:
    """The BM25 a setting runs on `index`: its unit, k1 and b (None for dense)."""
    unit = lexical_unit_of(setting, index)
    if unit is None:
        return None
    k1, b = BM25_FIELDS[unit]
    return {"unit": unit, "k1": getattr(index, k1), "b": getattr(index, b)}


def candidate_pairs(grid: TuneGrid, running: dict[str, Any]) -> list[tuple[float, float]]:
    """Every k1 x b of the grid but the pair the index runs now (already judged in the first round)."""
    pairs = [(float(k1), float(b)) for k1 in grid.bm25_k1 for b in grid.bm25_b]
    return [p for p in dict.fromkeys(pairs) if p != (running["k1"], running["b"])]


@contextmanager
def shadow_copy(handle: JobHandle, index: Index, progress=None) -> Iterator[Index]:
    """A copy of the index's collection to try BM25 settings on, dropped when done. Its name is
    kept in the job's params, so a retried job drops what a killed run left half-built."""
    ctx, job = handle.runner.ctx, handle.job
    left = job.params.get("_shadow")
    if left:
        drop_shadow(ctx, left)
    collection = f"idx_{index.id}_tune_{new_id()[:8]}"
    with ctx.db.session() as s:
        s.exec(update(Job).where(Job.id == job.id).values(params={**job.params, "_shadow": collection},
                                                           updated_at=utcnow()))
        s.commit()
    # Same encoder and chunking as the live index: its chunks' vectors come from the embedding
    # cache, and its BM25 mean lengths are the live index's, so only k1 and b differ.
    shadow = Index(**{**index.model_dump(), "collection": collection})
    try:
        ctx.vectors.ensure_collection(collection, index.embedding_dim)
        fill_collection(ctx, shadow, index.id, progress=progress)
        yield shadow
    finally:
        drop_shadow(ctx, collection)


def set_bm25(ctx, target: Index, unit: str, k1: float, b: float) -> None:
    """Rewrite `target`'s BM25 vectors of `unit` with k1 and b (target: a shadow copy)."""
    k1_field, b_field = BM25_FIELDS[unit]
    setattr(target, k1_field, k1)
    setattr(target, b_field, b)
    ingestion = IngestionService(ctx)
    if unit == "document":
        ingestion.encode_document_points(target)
    else:
        ingestion.encode_chunk_lexical(target)


def apply_bm25(ctx, index_id: str, bm25: dict[str, Any]) -> None:
    """The live index gets the winning k1 and b, and its vectors of that unit are re-encoded (as a
    PATCH of bm25_k1 / bm25_b, or document_bm25_k1 / document_bm25_b, does)."""
    k1_field, b_field = BM25_FIELDS[bm25["unit"]]
    with ctx.db.session() as s:
        s.exec(update(Index).where(Index.id == index_id).values({k1_field: bm25["k1"], b_field: bm25["b"],
                                                                  "updated_at": utcnow()}))
        s.commit()
    ingestion = IngestionService(ctx)
    if bm25["unit"] == "document":
        ingestion.reencode_documents(index_id)
    else:
        ingestion.reencode_lexical(index_id)
