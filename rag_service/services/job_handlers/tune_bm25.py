"""The BM25 round of a tune job.

k1 and b live in the stored sparse vectors (the document side of BM25), not in a request field,
so a candidate pair cannot be tried on the live collection without changing what every search
of the index gets. It is tried on a shadow copy instead: the index's documents rebuilt in a
collection of their own (vectors mostly from the embedding cache), whose BM25 vectors are
rewritten for each pair; the pair in use is judged on the same shadow, as the control. Live
searches never see a candidate. The winner reaches the live index through the re-encoding a
PATCH of the index runs.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Any, Iterator

from sqlalchemy import update

from rag_service.models import Index, Job, new_id, utcnow
from rag_service.services.ingestion import IngestionService
from rag_service.services.job_handle import JobHandle
from rag_service.services.job_params import TuneGrid
from rag_service.services.reindex import drop_shadow, fill_collection

log = logging.getLogger(__name__)

# Each unit keeps its own k1 and b (document BM25 scores whole documents, whose lengths differ
# from chunks' by an order of magnitude), in these Index columns.
BM25_FIELDS = {"chunk": ("bm25_k1", "bm25_b"), "document": ("document_bm25_k1", "document_bm25_b")}


def unit_on(index: Index, unit: str) -> str:
    """The lexical unit a search of this index runs: chunk BM25 where it has no document points."""
    return unit if index.document_bm25 else "chunk"


def lexical_unit_of(setting: dict[str, Any], index: Index) -> str | None:
    """The points a setting's lexical side searches on this index; None for a dense setting."""
    if setting["mode"] == "dense":
        return None
    return unit_on(index, setting.get("lexical_unit") or "document")


def bm25_of(setting: dict[str, Any], index: Index) -> dict[str, Any] | None:
    """The BM25 a setting runs on `index`: its unit, k1 and b (None for dense)."""
    unit = lexical_unit_of(setting, index)
    if unit is None:
        return None
    k1, b = BM25_FIELDS[unit]
    return {"unit": unit, "k1": getattr(index, k1), "b": getattr(index, b)}


def candidate_pairs(grid: TuneGrid, running: dict[str, Any]) -> list[tuple[float, float]]:
    """Every k1 x b of the grid but the pair the index runs now (judged on the shadow as the control)."""
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
    # The live index's encoder, chunking settings and BM25 mean lengths. It is re-chunked from each
    # version's text (as a reindex builds), so most vectors come from the embedding cache, but a
    # format whose parse carried structure (HTML, PDF) may chunk a little differently: hence the
    # control run on the shadow itself.
    shadow = Index(**{**index.model_dump(), "collection": collection})
    try:
        ctx.vectors.ensure_collection(collection, index.embedding_dim)
        fill_collection(ctx, shadow, index.id, progress=progress)
        yield shadow
    except BaseException:
        try:
            drop_shadow(ctx, collection)
        except Exception:  # keep the job's own error; the retry drops it (its name is in the params)
            log.warning("tune: could not drop shadow %s", collection, exc_info=True)
        raise
    drop_shadow(ctx, collection)


def set_bm25(ctx, shadow: Index, unit: str, k1: float, b: float) -> None:
    """Rewrite the shadow copy's BM25 vectors of `unit` with k1 and b (never the live index's)."""
    k1_field, b_field = BM25_FIELDS[unit]
    setattr(shadow, k1_field, k1)
    setattr(shadow, b_field, b)
    ingestion = IngestionService(ctx)
    if unit == "document":
        ingestion.encode_document_points(shadow)
    else:
        ingestion.encode_chunk_lexical(shadow)


def set_live_bm25(s, index_id: str, measured: dict[str, Any], bm25: dict[str, Any]) -> bool:
    """In session `s`: the live index gets the winning k1 and b, only if it still has the pair
    the job measured against (False when a PATCH changed it meanwhile). The caller commits, then
    calls reencode_live."""
    k1_field, b_field = BM25_FIELDS[bm25["unit"]]
    done = s.exec(update(Index).where(Index.id == index_id, getattr(Index, k1_field) == measured["k1"],
                                      getattr(Index, b_field) == measured["b"])
                  .values({k1_field: bm25["k1"], b_field: bm25["b"], "updated_at": utcnow()}))
    return done.rowcount == 1


def reencode_live(ctx, index_id: str, unit: str) -> None:
    """The live index's vectors of `unit` rewritten with its k1 and b (as a PATCH of bm25_k1 /
    bm25_b, or document_bm25_k1 / document_bm25_b, does)."""
    ingestion = IngestionService(ctx)
    if unit == "document":
        ingestion.reencode_documents(index_id)
    else:
        ingestion.reencode_lexical(index_id)
