"""Search: embed the query, one vector-store query per index (dense, BM25 or
fused), then drop every hit SQL does not confirm as the current version of a
live document, and shape chunk or document results with evidence."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from sqlmodel import select

from pipelines.embed import EncoderIdentity
from pipelines.lexical import most_informative, query_terms, query_vector, tokenize
from rag_service.context import ServiceContext
from rag_service.errors import (
    RerankNotConfigured,
    RetrievalUnavailable,
)
from rag_service.services.candidates import Candidate, store_call
from rag_service.services.document_search import DocumentSearch, Plan
from rag_service.models import Chunk, Document, DocumentVersion, Evidence, Index
from rag_service.search_params import DEFAULTABLE, SearchParams
from rag_service.services import search_defaults
from rag_service.services.access import AccessService, Boundary
from rag_service.services.common import Principal
from rag_service.services.filters import parse_filters
from rag_service.services.highlight import highlight
from rag_service.services.values import readable_metadata
from rag_service.stores.embedder import identity_of
from rag_service.stores.vector import (
    Filter,
    Match,
    SearchRequest,
)


def _encoders_of(indexes: list[Index]) -> dict[str, str] | list[dict[str, str]] | None:
    """{model, backend, precision} of the searched indexes: one, or a list when they differ."""
    encoders = sorted({identity_of(i) for i in indexes}, key=lambda e: (e.model, e.variant))
    return encoders[0].as_dict() if len(encoders) == 1 else [e.as_dict() for e in encoders] or None


class SearchService:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.access = AccessService(ctx)
        self.reranker = ctx.reranker
        # Per index, what the last document search's feedback round used (for its evidence).
        self.last_feedback: dict[str, Any] = {}

    def lexical_terms(self, query: str, index_ids: list[str]) -> Counter[str]:
        """The query's terms for BM25, capped for long queries so their cost stays bounded."""
        terms = query_terms(query)
        cap = self.ctx.settings.max_query_terms
        if len(terms) <= cap:
            return terms
        # A hand-built context without term statistics: no document frequencies, so every term
        # weighs its query frequency alone.
        doc_freq, docs = self.ctx.term_stats.document_frequencies(index_ids) if self.ctx.term_stats else ({}, 0)
        return most_informative(terms, cap, doc_freq, docs)

    def validate(self, p: SearchParams) -> None:
        """What the model cannot know: whether this service has a reranker."""
        if p.rerank and not self.ctx.settings.rerank_model:
            raise RerankNotConfigured(
                "rerank needs a cross-encoder: set RAG_RERANK_MODEL to a model name or local path", field="rerank"
            )

    def with_index_defaults(self, p: SearchParams, indexes: list[Index]) -> tuple[SearchParams, list[str]]:
        """A search of one index takes that index's defaults (mode, rrf_k, fusion_weights) where
        the request left them out (services/search_defaults.py); several indexes share the service's."""
        if len(indexes) != 1 or set(DEFAULTABLE) <= p.model_fields_set:
            return p, []  # several indexes share the service's; a request that sets all needs no lookup
        return search_defaults.apply(p, search_defaults.stored_defaults(self.ctx.db, [indexes[0].id]).get(indexes[0].id))

    def plan(self, p: SearchParams) -> Plan:
        """What the search runs with: the request's fields (index defaults filled in), else the
        service's. Chunk results fuse in the store (RRF, chunk BM25, no feedback) whatever is asked."""
        service = search_defaults.service_defaults(self.ctx.settings, p.fusion if p.result_type == "document" else "rrf")
        if p.result_type != "document":
            return Plan(p.mode, "rrf", tuple(p.fusion_weights or service["fusion_weights"]), p.rrf_k or service["rrf_k"],
                        False, "chunk")
        return Plan(p.mode, service["fusion"], tuple(p.fusion_weights or service["fusion_weights"]),
                    p.rrf_k or service["rrf_k"], service["prf"] if p.prf is None else p.prf,
                    p.lexical_unit or service["lexical_unit"])

    def _authorized_indexes(self, principal: Principal, p: SearchParams, boundary: Boundary,
                            path_index: str | None) -> tuple[list[Index], list[dict[str, Any]]]:
        """(indexes to search, exclusions): named indexes are all-or-403, all indexes skip what
        the boundary may not read (the access gate decides both)."""
        named = [path_index] if path_index else list(dict.fromkeys(p.index_ids or []))
        if named:
            return [a.index for a in self.access.authorize_many(principal, named, "search", boundary)], []
        return self.access.partition(principal, "search", boundary)

    def search(self, principal: Principal, p: SearchParams, path_index: str | None = None,
               header_boundary: str | None = None, record_evidence: bool = True) -> dict[str, Any]:
        """`header_boundary`: the boundary the request named outside the parameters (X-Data-Boundary,
        ?data_boundary=); naming two different ones is a 422."""
        started = time.perf_counter()
        self.validate(p)
        gate = Boundary.of(p.data_boundary, header_boundary, account_id=p.account_id)
        boundary = gate.name
        conditions = parse_filters(p.filters)
        allowed, excluded = self._authorized_indexes(principal, p, gate, path_index)
        p, from_index = self.with_index_defaults(p, allowed)

        results, stale_dropped, models = self.retrieve(allowed, p, conditions)
        if stale_dropped and self.ctx.metrics:
            self.ctx.metrics.stale_dropped.inc(stale_dropped)
        plan = self.plan(p)
        evidence = {
            "mode": p.mode,
            "model": models[0] if len(models) == 1 else models,
            "models": models,
            "encoder": _encoders_of(allowed),
            "query": p.query,
            "top_k": p.top_k,
            "result_type": p.result_type,
            "filters": p.filters or {},
            "reranked": bool(p.rerank),
            # What the fusion ran with, and which fields came from the index's own defaults.
            "search_settings": {**plan.as_dict(), "from_index_defaults": from_index,
                                **({"feedback": self.last_feedback} if self.last_feedback else {})},
            "data_boundary": boundary,
            "privacy_tiers_read": sorted({i.privacy_tier for i in allowed}),
            "indexes_searched": [i.id for i in allowed],
            "indexes_excluded": excluded,
            "stale_dropped": stale_dropped,
            "result_count": len(results),
            "results": [
                {"chunk_id": r.get("chunk_id") or r["best_chunk"]["chunk_id"], "document_id": r["document_id"], "version": r["version"], "score": r["score"]}
                for r in results
            ],
        }
        evidence["latency_ms"] = round((time.perf_counter() - started) * 1000, 3)
        record = Evidence(project_id=principal.project_id, kind="search", body=evidence)
        if record_evidence:
            with self.ctx.db.session() as s:
                s.add(record)
                s.commit()
        evidence = {"evidence_id": record.id if record_evidence else None, **evidence}
        return {"results": results, "evidence": evidence, "data_boundary": boundary,
                "privacy_tiers_read": evidence["privacy_tiers_read"]}

    # -- retrieval -------------------------------------------------------------
    def retrieve(self, indexes: list[Index], p: SearchParams, conditions=()) -> tuple[list[dict], int, list[str]]:
        """Search the given (already authorised) indexes: (rows, stale dropped, models)."""
        models = sorted({i.embedding_model for i in indexes})
        if not indexes:
            return [], 0, models
        # One query vector per encoder identity: an index is queried with the encoder it was built with.
        dense_by_model: dict[EncoderIdentity, list[float]] = {}
        if p.mode in ("dense", "hybrid"):
            for encoder in sorted({identity_of(i) for i in indexes}, key=lambda e: (e.model, e.variant)):
                try:
                    started = time.perf_counter()
                    dense_by_model[encoder] = self.ctx.embedders.encode(encoder, [p.query])[0].tolist()
                    if self.ctx.metrics:
                        self.ctx.metrics.embed_batch.labels("query").observe(time.perf_counter() - started)
                except RetrievalUnavailable:
                    raise
                except Exception as exc:
                    raise RetrievalUnavailable(f"embedding model {encoder.model} unavailable: {exc}",
                                               component="embedder") from exc
        # Dense-only searches send no lexical query: no need to estimate term statistics for one.
        sparse = query_vector(self.lexical_terms(p.query, [i.id for i in indexes]) if p.mode != "dense" else Counter())
        base = Filter(must=tuple(conditions))
        if p.as_of_version is not None:
            base = base.and_(Match("version", p.as_of_version))
        elif not p.include_history:
            base = base.and_(Match("live", 1))
        plan = self.plan(p)
        self.last_feedback = {}
        if plan.needs_pipeline:
            rows, stale_total, self.last_feedback = DocumentSearch(self, sparse).retrieve(
                indexes, p, plan, dense_by_model, base)
            return self._shape(rows, p), stale_total, models
        need = p.top_k * (5 if p.result_type == "document" else 1)
        if p.rerank:
            need = max(need, 50)
        limit = need + 10
        stale_total = 0
        for _ in range(4):
            candidates = self._query_all(indexes, p, plan, dense_by_model, sparse, base, limit)
            confirmed, stale = self.confirm(candidates, p)
            stale_total = stale
            if stale == 0 or len(candidates) < limit or len(confirmed) >= need:
                break
            limit *= 3  # stale hits took room: ask for more so filters still fill top_k
        return self._shape(self.hydrate(confirmed), p), stale_total, models

    def _shape(self, rows: list[dict[str, Any]], p: SearchParams) -> list[dict[str, Any]]:
        """Chunk rows best first: reranked and filtered where asked, then the top_k chunks or documents."""
        if p.rerank and rows:
            rows = self._rerank(p.query, rows)
        if p.min_score is not None:
            rows = [r for r in rows if r["score"] >= p.min_score]
        if p.result_type == "document":
            docs = _group_documents(rows)[: p.top_k]
            self.finish([d["best_chunk"] for d in docs], p.query)
            return docs
        # Highlights only for what is returned: stemming every candidate's words was most of a search.
        rows = rows[: p.top_k]
        self.finish(rows, p.query)
        return rows

    def _query_all(self, indexes, p, plan: Plan, dense_by_model, sparse, base, limit) -> list[Candidate]:
        settings = self.ctx.settings
        rrf_k, weights = plan.rrf_k, plan.weights
        out: list[Candidate] = []
        for index in indexes:
            req = SearchRequest(
                mode=p.mode,
                limit=limit,
                dense=dense_by_model.get(identity_of(index)),
                sparse=sparse,
                filter=base,
                prefetch_limit=max(limit * settings.prefetch_multiplier, 100),
                rrf_k=rrf_k,
                weights=weights,
                with_components=p.explain and p.mode == "hybrid",
            )
            started = time.perf_counter()
            res = store_call(index, lambda: self.ctx.vectors.search(index.collection, req))
            if self.ctx.metrics:
                self.ctx.metrics.vector_query.labels(p.mode).observe(time.perf_counter() - started)
            dense_rank = {h.id: (r, h.score) for r, h in enumerate(res.dense, 1)}
            lex_rank = {h.id: (r, h.score) for r, h in enumerate(res.lexical, 1)}
            for rank, hit in enumerate(res.hits, 1):
                explain: dict[str, Any] = {"fused_score": None, "dense_rank": None, "dense_score": None,
                                           "lexical_rank": None, "lexical_score": None}
                if p.mode == "dense":
                    explain.update(dense_rank=rank, dense_score=hit.score)
                elif p.mode == "lexical":
                    explain.update(lexical_rank=rank, lexical_score=hit.score)
                else:
                    explain["fused_score"] = hit.score
                    if hit.id in dense_rank:
                        explain.update(dense_rank=dense_rank[hit.id][0], dense_score=dense_rank[hit.id][1])
                    if hit.id in lex_rank:
                        explain.update(lexical_rank=lex_rank[hit.id][0], lexical_score=lex_rank[hit.id][1])
                out.append(Candidate(hit=hit, index=index, explain=explain))
        # Ties (mirrored ranks in RRF) are broken by chunk id so identical requests answer identically.
        out.sort(key=lambda c: (-c.hit.score, c.hit.id))
        return out

    def confirm(self, candidates: list[Candidate], p: SearchParams) -> tuple[list[Candidate], int]:
        """SQL is the source of truth: keep a hit only if its version is the one to serve."""
        doc_ids = list({c.hit.payload.get("document_id") for c in candidates})
        # Columns, not ORM entities: building Document objects was most of this step's time.
        docs: dict[str, tuple[int, Any]] = {}  # id -> (current_version, deleted_at)
        ready: set[tuple[str, int]] = set()
        with self.ctx.db.session() as s:
            for start in range(0, len(doc_ids), 500):
                part = doc_ids[start : start + 500]
                docs.update({d: (current, deleted) for d, current, deleted in s.exec(
                    select(Document.id, Document.current_version, Document.deleted_at).where(Document.id.in_(part)))})
                if p.include_history or p.as_of_version is not None:
                    rows = s.exec(
                        select(DocumentVersion.document_id, DocumentVersion.version).where(
                            DocumentVersion.document_id.in_(part), DocumentVersion.status == "ready"
                        )
                    ).all()
                    ready.update((d, v) for d, v in rows)
        kept, stale = [], 0
        for c in candidates:
            doc_id = c.hit.payload.get("document_id")
            found = docs.get(doc_id)
            version = c.hit.payload.get("version")
            if found is None or found[1] is not None:  # gone, or deleted
                ok = False
            elif p.include_history or p.as_of_version is not None:
                ok = (doc_id, version) in ready
            else:
                ok = version == found[0]
            if ok:
                kept.append(c)
            else:
                stale += 1
        return kept, stale

    def hydrate(self, candidates: list[Candidate]) -> list[dict[str, Any]]:
        ids = [c.hit.id for c in candidates]
        # One joined query of the columns a result shows (ORM entities cost more than the query).
        chunks: dict[str, Any] = {}
        with self.ctx.db.session() as s:
            for start in range(0, len(ids), 500):
                chunks.update({row.id: row for row in s.exec(
                    select(Chunk.id, Chunk.document_id, Chunk.version, Chunk.text, Chunk.ordinal, Chunk.page,
                           Chunk.section, DocumentVersion.doc_metadata)
                    .join(DocumentVersion, DocumentVersion.id == Chunk.version_id)
                    .where(Chunk.id.in_(ids[start : start + 500])))})
        rows = []
        for c in candidates:
            chunk = chunks.get(c.hit.id)
            if chunk is None:  # the SQL row is gone (hard delete in flight): never serve it
                continue
            rows.append(
                {
                    "chunk_id": chunk.id,
                    "document_id": chunk.document_id,
                    "document_name": c.hit.payload.get("name"),
                    "index_id": c.index.id,
                    "index_name": c.index.name,
                    "version": chunk.version,
                    "text": chunk.text,
                    "score": c.hit.score,
                    **readable_metadata(chunk.doc_metadata),
                    "ordinal": chunk.ordinal,
                    "page": chunk.page,
                    "section": chunk.section,
                    "position": {"ordinal": chunk.ordinal, "page": chunk.page, "section": chunk.section},
                    "explain": c.explain,
                }
            )
        return rows

    def _rerank(self, query: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        scores = self.reranker.score(query, [r["text"] for r in rows])
        for row, score in zip(rows, scores):
            row["explain"]["retrieval_score"] = row["score"]
            row["explain"]["rerank_score"] = score
            row["score"] = score
        return sorted(rows, key=lambda r: (-r["score"], r["chunk_id"]))

    def finish(self, rows: list[dict[str, Any]], query: str) -> None:
        stems = set(tokenize(query))
        for row in rows:
            row["highlights"] = highlight(row["text"], stems)


def _group_documents(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    grouped: dict[str, dict[str, Any]] = {}
    for row in rows:  # rows arrive best first, so the first chunk seen is the best
        doc = grouped.get(row["document_id"])
        if doc is None:
            grouped[row["document_id"]] = {
                "document_id": row["document_id"],
                "document_name": row["document_name"],
                "index_id": row["index_id"],
                "version": row["version"],
                "score": row["score"],
                "metadata": row["metadata"],
                "best_chunk": row,
                "matching_chunks": row.pop("matching_chunks", 1),
            }
        else:
            doc["matching_chunks"] += 1
    return sorted(grouped.values(), key=lambda d: (-d["score"], d["document_id"]))
