"""Document search (result_type=document): each arm ranks documents on its own, an optional
feedback round rewrites both queries, and the two rankings are fused per document in Python.

- Dense arm: the top `document_pool` chunks; a document scores its best chunk's cosine.
- Lexical arm: the whole-document BM25 points (`bm25_doc`) of indexes that have them
  (`lexical_unit=document`), else the chunks' BM25 with each document's best chunk.
- Feedback (`prf`): RM3 on the lexical arm (the top documents' term distributions, weighted by
  their BM25 score, mixed into the query) and Rocchio on the dense arm (the query vector moved
  towards the mean of the top chunks' vectors), then each arm runs again.
- Fusion: `zscore` (each arm's scores standardised over its own list; a document one arm missed
  gets that arm's lowest z) or `rrf` (weighted reciprocal rank, as the store fuses chunks).

Chosen on NFCorpus dev, measured on NFCorpus test and SciFact (docs/studies/quality/FINDINGS.md).
Candidates are confirmed against SQL like every search: a stale or deleted version is never
served, whatever it contributed to the feedback statistics.

The fusion is written here rather than with ranx.fuse: ranx builds Run objects and numba kernels
per call, milliseconds where a search has a few; ranx stays the evaluator (tune, eval, benchmarks).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlmodel import select

from pipelines.types import SparseVec
from rag_service.models import Chunk, Index
from rag_service.services.candidates import Candidate, store_call
from rag_service.stores.embedder import identity_of
from rag_service.stores.vector import (
    DENSE,
    SPARSE,
    SPARSE_DOCUMENT,
    ArmQuery,
    Filter,
    Hit,
    MatchAny,
)

ARM_PAYLOAD = ("document_id", "version", "name")
FEEDBACK_PAYLOAD = ARM_PAYLOAD + ("length",)  # RM3 reads term counts back with the document's length
FEEDBACK_POOL = 100


@dataclass(frozen=True)
class Plan:
    """What a document search runs with (request, else index defaults, else the service's)."""

    mode: str
    fusion: str
    weights: tuple[float, float]
    rrf_k: int
    prf: bool
    lexical_unit: str

    def as_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "fusion": self.fusion, "fusion_weights": list(self.weights), "rrf_k": self.rrf_k,
                "prf": self.prf, "lexical_unit": self.lexical_unit}

    @property
    def needs_pipeline(self) -> bool:
        """The store's fused chunk query answers everything else (RRF, no feedback, chunk BM25)."""
        return self.prf or (self.mode == "hybrid" and self.fusion == "zscore") or (
            self.mode != "dense" and self.lexical_unit == "document")


@dataclass
class _DocumentHits:
    """One document's evidence from one index: best hit per arm, and its chunk hits."""

    index: Index
    dense: Hit | None = None  # its best chunk by cosine
    lexical: Hit | None = None  # its document point, or its best chunk by BM25
    lexical_is_chunk: bool = False
    dense_chunks: int = 0


# -- pure parts (unit-tested in tests/unit/test_document_search.py) --------------------------
def zscores(scores: list[float]) -> list[float]:
    if not scores:
        return []
    arr = np.asarray(scores, dtype=float)
    sd = arr.std()
    return ((arr - arr.mean()) / sd).tolist() if sd > 0 else [0.0] * len(scores)


def fuse(dense: list[tuple[str, float]], lexical: list[tuple[str, float]], fusion: str,
         weights: tuple[float, float], rrf_k: int) -> dict[str, dict[str, float]]:
    """Fused score per key from two best-first (key, score) lists, with each arm's part."""
    out: dict[str, dict[str, float]] = {}
    total = sum(w for w, arm in zip(weights, (dense, lexical)) if arm) or 1.0
    if fusion == "rrf":
        for (weight, arm, name) in ((weights[0], dense, "dense"), (weights[1], lexical, "lexical")):
            for pos, (key, _) in enumerate(arm):
                # Qdrant's weighted RRF (the chunk path's), so both paths rank alike
                part = 1.0 / ((pos + 1) / weight + rrf_k - 1) if weight > 0 else 0.0
                entry = out.setdefault(key, {"fused": 0.0})
                entry[f"{name}_rrf"] = part
                entry["fused"] += part
        return out
    parts = {}
    for name, arm in (("dense", dense), ("lexical", lexical)):
        z = zscores([s for _, s in arm])
        parts[name] = (dict(zip((k for k, _ in arm), z)), min(z) if z else 0.0)
    for key in {k for k, _ in dense} | {k for k, _ in lexical}:
        zd = parts["dense"][0].get(key, parts["dense"][1])
        zl = parts["lexical"][0].get(key, parts["lexical"][1])
        fused = (weights[0] * zd * bool(dense) + weights[1] * zl * bool(lexical)) / total
        out[key] = {"fused": fused, "dense_z": zd, "lexical_z": zl}
    return out


def term_counts(weights: SparseVec, length: float | None, k1: float, b: float, avg_len: float) -> dict[int, float]:
    """Term frequencies back from stored BM25 weights w = tf(k1+1)/(tf + k1(1-b+b*dl/avgdl)).
    Without a stored length the document is taken to be of average length."""
    if k1 <= 0:
        return dict.fromkeys(weights.indices, 1.0)  # weights carry no frequency: binary
    norm = k1 * (1 - b + b * (length if length else avg_len) / max(avg_len, 1e-9))
    return {i: w * norm / max(k1 + 1 - w, 1e-6) for i, w in zip(weights.indices, weights.values) if w > 0}


def rm3(query: SparseVec, feedback: list[tuple[float, dict[int, float]]], n_terms: int,
        original_weight: float) -> SparseVec:
    """RM3 (as Anserini): each feedback document's L1-normalised term counts weighted by its
    score, the top n_terms, L1-normalised, interpolated with the L1-normalised query."""
    q_total = sum(query.values)
    if not feedback or q_total <= 0:
        return query
    model: Counter[int] = Counter()
    for score, counts in feedback:
        length = sum(counts.values())
        if length > 0:
            for term, tf in counts.items():
                model[term] += score * tf / length
    top = model.most_common(n_terms)
    fb_total = sum(w for _, w in top)
    mixed: Counter[int] = Counter({i: original_weight * v / q_total for i, v in zip(query.indices, query.values)})
    if fb_total > 0:
        for term, w in top:
            mixed[term] += (1 - original_weight) * w / fb_total
    ids = sorted(t for t, w in mixed.items() if w > 0)
    return SparseVec(ids, [mixed[i] for i in ids])


def rocchio(query: list[float], vectors: list[list[float]], beta: float) -> list[float]:
    """The query moved towards the mean of the feedback vectors, unit length (cosine)."""
    if not vectors:
        return query
    moved = np.asarray(query, dtype=float) + beta * np.mean(np.asarray(vectors, dtype=float), axis=0)
    norm = np.linalg.norm(moved)
    return (moved / norm).tolist() if norm > 0 else query


# -- the search ------------------------------------------------------------------------------
class DocumentSearch:
    """One document search. `search`: the SearchService, for its SQL confirm and hydrate steps."""

    def __init__(self, search: Any, sparse: SparseVec) -> None:
        self.search = search
        self.ctx = search.ctx
        self.settings = search.ctx.settings
        self.sparse = sparse

    def _lexical_params(self, index: Index, unit: str) -> tuple[float, float, float]:
        if unit == SPARSE_DOCUMENT:
            return index.document_bm25_k1, index.document_bm25_b, max(index.document_bm25_avg_len, 1.0)
        return index.bm25_k1, index.bm25_b, max(index.bm25_avg_len, 1.0)

    def query_index(self, index: Index, plan: Plan, dense: list[float] | None,
                    base: Filter) -> tuple[list[Hit], list[Hit], bool, dict[str, Any]]:
        """(dense chunk hits, lexical hits, lexical hits are chunks, feedback used) of one index,
        after the feedback round when the plan has one."""
        s, sparse = self.settings, self.sparse
        pool = s.document_pool
        unit = SPARSE_DOCUMENT if plan.lexical_unit == "document" and index.document_bm25 else SPARSE
        use_dense = plan.mode in ("dense", "hybrid") and dense is not None
        use_lexical = plan.mode in ("lexical", "hybrid") and bool(sparse.indices)
        # With feedback the first round only picks the feedback (a few hits; 100 keeps the dense
        # search as exact as the full pool's): the second round ranks. Turning thousands of hits
        # into Python objects was most of a search's cost.
        first = max(FEEDBACK_POOL, s.rocchio_chunks, s.rm3_docs) if plan.prf else pool
        arms = ([ArmQuery(DENSE, dense, first, base, ARM_PAYLOAD)] if use_dense else []) + (
            [ArmQuery(unit, sparse, first, base, FEEDBACK_PAYLOAD)] if use_lexical else [])
        results = store_call(index, lambda: self.ctx.vectors.query_arms(index.collection, arms))
        dense_hits = results.pop(0) if use_dense else []
        lexical_hits = results.pop(0) if use_lexical else []
        feedback: dict[str, Any] = {}
        if plan.prf and (dense_hits or lexical_hits):
            again = []
            if dense_hits:
                top = [h.id for h in dense_hits[: s.rocchio_chunks]]
                stored = store_call(index, lambda: self.ctx.vectors.point_vectors(index.collection, top, DENSE))
                moved = rocchio(dense, [stored[i] for i in top if i in stored], s.rocchio_beta)
                again.append(ArmQuery(DENSE, moved, pool, base, ARM_PAYLOAD))
                feedback["rocchio_chunks"] = len(stored)
            if lexical_hits:
                top_hits = [h for h in lexical_hits[: s.rm3_docs] if h.score > 0]
                stored = store_call(index, lambda: self.ctx.vectors.point_vectors(
                    index.collection, [h.id for h in top_hits], unit))
                k1, b, avg = self._lexical_params(index, unit)
                docs = [(h.score, term_counts(stored[h.id], h.payload.get("length"), k1, b, avg))
                        for h in top_hits if h.id in stored]
                expanded = rm3(sparse, docs, s.rm3_terms, s.rm3_original_weight)
                again.append(ArmQuery(unit, expanded, pool, base, ARM_PAYLOAD))
                feedback["rm3_documents"], feedback["rm3_query_terms"] = len(docs), len(expanded.indices)
            results = store_call(index, lambda: self.ctx.vectors.query_arms(index.collection, again))
            dense_hits = results.pop(0) if dense_hits else []
            lexical_hits = results.pop(0) if lexical_hits else lexical_hits
        return dense_hits, lexical_hits, unit == SPARSE, feedback

    def retrieve(self, indexes: list[Index], p, plan: Plan, dense_by_model: dict,
                 base: Filter) -> tuple[list[dict[str, Any]], int, dict[str, Any]]:
        """(document rows best first, stale dropped, feedback per index)."""
        per_doc: dict[str, _DocumentHits] = {}
        dense_arm: list[tuple[str, float]] = []
        lexical_arm: list[tuple[str, float]] = []
        feedback: dict[str, Any] = {}
        for index in indexes:
            dense_hits, lexical_hits, lexical_chunks, used = self.query_index(
                index, plan, dense_by_model.get(identity_of(index)), base)
            if used:
                feedback[index.id] = used
            for hit in dense_hits:  # best first: the first chunk of a document is its best
                doc = per_doc.setdefault(hit.payload.get("document_id"), _DocumentHits(index=index))
                doc.dense_chunks += 1
                if doc.dense is None:
                    doc.dense = hit
                    dense_arm.append((hit.payload.get("document_id"), hit.score))
            for hit in lexical_hits:
                doc = per_doc.setdefault(hit.payload.get("document_id"), _DocumentHits(index=index))
                if doc.lexical is None:
                    doc.lexical, doc.lexical_is_chunk = hit, lexical_chunks
                    lexical_arm.append((hit.payload.get("document_id"), hit.score))
        # Several indexes: one list per arm over all of them, best first.
        dense_arm.sort(key=lambda x: -x[1])
        lexical_arm.sort(key=lambda x: -x[1])
        fused = fuse(dense_arm, lexical_arm, plan.fusion, plan.weights, plan.rrf_k)
        dense_rank = {k: r for r, (k, _) in enumerate(dense_arm, 1)}
        lexical_rank = {k: r for r, (k, _) in enumerate(lexical_arm, 1)}
        order = sorted(fused, key=lambda k: (-fused[k]["fused"], k))
        need = p.top_k if not p.rerank else max(p.top_k, 50)
        # SQL confirms the best documents only (what can be served), more while stale ones took room.
        rows, stale, start, step = [], 0, 0, need + 10
        while len(rows) < need and start < len(order):
            batch = order[start : start + step]
            start += step
            got = self._confirmed_rows(batch, per_doc, fused, dense_rank, lexical_rank, p, base)
            stale += len(batch) - len(got)
            rows += got
            step *= 3
        return rows, stale, feedback

    def _confirmed_rows(self, keys, per_doc, fused, dense_rank, lexical_rank, p, base) -> list[dict[str, Any]]:
        representative = []
        for key in keys:
            doc = per_doc[key]
            hit = doc.dense or doc.lexical
            representative.append(Candidate(hit=hit, index=doc.index))
        confirmed, _ = self.search.confirm(representative, p)
        chunks: list[Candidate] = []
        missing: list[tuple[str, Candidate]] = []
        for c in confirmed:
            key = c.hit.payload.get("document_id")
            doc = per_doc[key]
            version = c.hit.payload.get("version")
            # Its best chunk: the best by cosine, else by chunk BM25, else found below.
            if doc.dense is not None and doc.dense.payload.get("version") == version:
                chunk_hit = doc.dense
            elif doc.lexical is not None and doc.lexical_is_chunk and doc.lexical.payload.get("version") == version:
                chunk_hit = doc.lexical
            else:
                chunk_hit = None
            explain = {"fused_score": fused[key]["fused"], "dense_rank": dense_rank.get(key),
                       "dense_score": doc.dense.score if doc.dense else None,
                       "lexical_rank": lexical_rank.get(key), "lexical_score": doc.lexical.score if doc.lexical else None,
                       **{k: v for k, v in fused[key].items() if k != "fused"}}
            candidate = Candidate(hit=Hit(id=chunk_hit.id if chunk_hit else "", score=fused[key]["fused"],
                                          payload=c.hit.payload), index=doc.index, explain=explain)
            (chunks.append(candidate) if chunk_hit else missing.append((key, candidate)))
        for key, candidate in missing:
            candidate.hit.id = self._a_chunk(candidate, per_doc[key].index, base)
            if candidate.hit.id:
                chunks.append(candidate)
        rows = self.search.hydrate(chunks)
        for row in rows:
            row["matching_chunks"] = max(per_doc[row["document_id"]].dense_chunks, 1)
        return sorted(rows, key=lambda r: (-r["score"], r["document_id"]))

    def _a_chunk(self, candidate, index: Index, base: Filter) -> str:
        """A chunk to show for a document only the whole-document arm found: its best by chunk BM25
        for the query, else its first."""
        doc_id, version = candidate.hit.payload.get("document_id"), candidate.hit.payload.get("version")
        sparse = self.sparse
        if sparse is not None and sparse.indices:
            only = base.and_(MatchAny("document_id", (doc_id,)))
            hits = store_call(index, lambda: self.ctx.vectors.query_arms(
                index.collection, [ArmQuery(SPARSE, sparse, 5, only, ARM_PAYLOAD)]))[0]
            for hit in hits:
                if hit.payload.get("version") == version:
                    return hit.id
        with self.ctx.db.session() as s:
            first = s.exec(select(Chunk.id).where(Chunk.document_id == doc_id, Chunk.version == version,
                                                  Chunk.collection == index.collection)
                           .order_by(Chunk.ordinal).limit(1)).first()
        return first or ""

