"""Embedded adapter: qdrant-edge-py, Qdrant's engine in-process, one shard
directory per collection under RAG_DATA_DIR/qdrant.

A shard has one opener, so the embedded mode is one process (docs/operations.md).
"""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path
from typing import Any

import qdrant_edge as qe

from pipelines.types import SparseVec
from rag_service.stores.combining import Combiner
from rag_service.stores.vector import (
    DENSE,
    SPARSE,
    SPARSE_DOCUMENT,
    ArmQuery,
    CollectionNotFound,
    FieldKind,
    Filter,
    Hit,
    Match,
    MatchAny,
    Range,
    SearchRequest,
    SearchResult,
    StoreUnavailable,
    VectorPoint,
    VectorName,
    VectorStore,
)

# Deliberately the twin of the other adapter (same names, same tables): each maps the one
# VectorStore interface onto its own client library, here qdrant-edge-py.
_SCHEMA = {
    "keyword": qe.PayloadSchemaType.Keyword,
    "integer": qe.PayloadSchemaType.Integer,
    "float": qe.PayloadSchemaType.Float,
    "datetime": qe.PayloadSchemaType.Datetime,
}


def _condition(c: Match | MatchAny | Range) -> qe.FieldCondition:
    if isinstance(c, Match):
        return qe.FieldCondition(key=c.key, match=qe.MatchValue(c.value))
    if isinstance(c, MatchAny):
        return qe.FieldCondition(key=c.key, match=qe.MatchAny(list(c.values)))
    bounds = {"gt": c.gt, "gte": c.gte, "lt": c.lt, "lte": c.lte}
    rng = qe.RangeDateTime(**bounds) if c.is_datetime else qe.RangeFloat(**bounds)
    return qe.FieldCondition(key=c.key, range=rng)


def to_edge_filter(f: Filter | None) -> qe.Filter | None:
    if f is None or (not f.must and not f.must_not):
        return None
    return qe.Filter(
        must=[_condition(c) for c in f.must] or None,
        must_not=[_condition(c) for c in f.must_not] or None,
    )


def _vector(v: list[float] | SparseVec) -> list[float] | qe.SparseVector:
    return qe.SparseVector(v.indices, v.values) if isinstance(v, SparseVec) else list(map(float, v))


def _hits(points: list[Any]) -> list[Hit]:
    # The binding builds a fresh dict per payload already: no copy.
    return [Hit(id=str(p.id), score=p.score, payload=p.payload or {}) for p in points]


class EdgeVectorStore(VectorStore):
    kind = "embedded"

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._alias_file = self.root / "aliases.json"
        self._aliases: dict[str, str] = (
            json.loads(self._alias_file.read_text()) if self._alias_file.exists() else {}
        )
        self._shards: dict[str, qe.EdgeShard] = {}
        self._lock = threading.RLock()
        self._closed = False
        # Concurrent searches of one shard run as one query_batch (stores/combining.py).
        self._queries: Combiner[qe.QueryRequest, list[Any]] = Combiner()

    # -- collections -------------------------------------------------------
    def _save_aliases(self) -> None:
        tmp = self._alias_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._aliases))
        tmp.replace(self._alias_file)

    def _shard(self, alias: str) -> qe.EdgeShard:
        if self._closed:
            raise StoreUnavailable("embedded vector store is closed")
        shard = self._shards.get(alias)
        if shard is not None:
            return shard
        with self._lock:
            if alias in self._shards:
                return self._shards[alias]
            target = self._aliases.get(alias)
            if target is None:
                raise CollectionNotFound(f"no collection behind alias {alias!r}")
            try:
                shard = qe.EdgeShard.load(str(self.root / target))
            except Exception as exc:
                raise StoreUnavailable(f"cannot open shard {target}: {exc}") from exc
            self._shards[alias] = shard
            return shard

    def collection_exists(self, alias: str) -> bool:
        return alias in self._aliases

    def ensure_collection(self, alias: str, dim: int) -> None:
        with self._lock:
            if alias in self._aliases:
                return
            target = f"{alias}-1"
            path = self.root / target
            if path.exists():
                shutil.rmtree(path)  # leftovers of a create that crashed before the alias was written
            config = qe.EdgeConfig(
                vectors={DENSE: qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine)},
                sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf),
                                SPARSE_DOCUMENT: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
            )
            shard = qe.EdgeShard.create(str(path), config)
            for key, kind in (("document_id", "keyword"), ("live", "integer"), ("version", "integer"), ("name", "keyword")):
                shard.update(qe.UpdateOperation.create_field_index(key, _SCHEMA[kind]))
            self._shards[alias] = shard
            self._aliases[alias] = target
            self._save_aliases()

    def drop_collection(self, alias: str) -> None:
        self.forget_field_indexes(alias)
        with self._lock:
            target = self._aliases.pop(alias, None)
            shard = self._shards.pop(alias, None)
            if shard is not None:
                shard.close()
            self._save_aliases()
            if target:
                shutil.rmtree(self.root / target, ignore_errors=True)

    def create_field_index(self, alias: str, key: str, kind: FieldKind) -> None:
        self._shard(alias).update(qe.UpdateOperation.create_field_index(key, _SCHEMA[kind]))

    # -- writes ------------------------------------------------------------
    def upsert(self, alias: str, points: list[VectorPoint]) -> None:
        if not points:
            return
        edge_points = [qe.Point(id=p.id, vector={name: _vector(v) for name, v in p.vectors().items()}, payload=p.payload)
                       for p in points]
        self._shard(alias).update(qe.UpdateOperation.upsert_points(edge_points))

    def update_sparse(self, alias: str, vectors: list[tuple[str, SparseVec]], using: VectorName = SPARSE) -> None:
        if not vectors:
            return
        ops = [qe.PointVectors(id=pid, vector={using: qe.SparseVector(v.indices, v.values)}) for pid, v in vectors]
        self._shard(alias).update(qe.UpdateOperation.update_vectors(ops))

    def set_payload(self, alias: str, filter: Filter, payload: dict[str, Any]) -> None:
        self._shard(alias).update(qe.UpdateOperation.set_payload_by_filter(to_edge_filter(filter), payload))

    def delete(self, alias: str, filter: Filter) -> None:
        self._shard(alias).update(qe.UpdateOperation.delete_points_by_filter(to_edge_filter(filter)))

    # -- reads -------------------------------------------------------------
    def count(self, alias: str, filter: Filter | None = None) -> int:
        return int(self._shard(alias).count(qe.CountRequest(filter=to_edge_filter(filter), exact=True)))

    def _query(self, shard: qe.EdgeShard, requests: list[qe.QueryRequest]) -> list[list[Any]]:
        """Each request's points, in order; combined with other threads' queries of this shard."""
        def execute(all_requests: list[qe.QueryRequest]) -> list[list[Any]]:
            if len(all_requests) == 1:
                return [shard.query(all_requests[0])]
            return shard.query_batch(qe.QueryBatchRequest(all_requests))

        return self._queries.run(id(shard), requests, execute)

    def search(self, alias: str, request: SearchRequest) -> SearchResult:
        shard = self._shard(alias)
        f = to_edge_filter(request.filter)
        dense_q = qe.Query.Nearest(list(map(float, request.dense)), using=DENSE) if request.dense is not None else None
        sparse_q = (
            qe.Query.Nearest(qe.SparseVector(request.sparse.indices, request.sparse.values), using=SPARSE)
            if request.sparse is not None
            else None
        )

        def single(query: Any, limit: int) -> qe.QueryRequest:
            return qe.QueryRequest(limit=limit, query=query, filter=f, with_payload=True)

        if request.mode == "dense":
            return SearchResult(hits=_hits(self._query(shard, [single(dense_q, request.limit)])[0]))
        if request.mode == "lexical":
            if not request.sparse.indices:
                return SearchResult(hits=[])
            return SearchResult(hits=_hits(self._query(shard, [single(sparse_q, request.limit)])[0]))

        n = max(request.prefetch_limit, request.limit)
        prefetches = [qe.Prefetch(limit=n, query=dense_q, filter=f)]
        weights = [request.weights[0]]
        if request.sparse.indices:
            prefetches.append(qe.Prefetch(limit=n, query=sparse_q, filter=f))
            weights.append(request.weights[1])
        fused = qe.QueryRequest(
            limit=request.limit,
            prefetches=prefetches,
            query=qe.Fusion.Rrf(k=request.rrf_k, weights=weights),
            with_payload=True,
        )
        if not request.with_components:
            return SearchResult(hits=_hits(self._query(shard, [fused])[0]))
        batch = [fused, single(dense_q, n)] + ([single(sparse_q, n)] if request.sparse.indices else [])
        results = self._query(shard, batch)
        return SearchResult(
            hits=_hits(results[0]),
            dense=_hits(results[1]),
            lexical=_hits(results[2]) if len(results) > 2 else [],
        )

    def query_arms(self, alias: str, arms: list[ArmQuery]) -> list[list[Hit]]:
        if not arms:
            return []
        batch = [qe.QueryRequest(limit=a.limit, query=qe.Query.Nearest(_vector(a.vector), using=a.using),
                                 filter=to_edge_filter(a.filter), with_payload=list(a.payload))
                 for a in arms]
        return [_hits(r) for r in self._query(self._shard(alias), batch)]

    def point_vectors(self, alias: str, ids: list[str], using: VectorName) -> dict[str, list[float] | SparseVec]:
        if not ids:
            return {}
        out: dict[str, list[float] | SparseVec] = {}
        for r in self._shard(alias).retrieve(list(ids), with_payload=False, with_vector=[using]):
            vector = r.vector.get(using) if isinstance(r.vector, dict) else None
            if vector is not None:
                out[str(r.id)] = (SparseVec(list(vector.indices), list(vector.values)) if hasattr(vector, "indices")
                                  else list(vector))
        return out

    def optimize(self, alias: str) -> bool:
        return bool(self._shard(alias).optimize())

    def ping(self) -> None:
        if self._closed:
            raise StoreUnavailable("embedded vector store is closed")
        if not self.root.is_dir():
            raise StoreUnavailable(f"vector store directory {self.root} is missing")

    def close(self) -> None:
        with self._lock:
            for shard in self._shards.values():
                try:
                    shard.flush()
                    shard.close()
                except Exception:
                    pass
            self._shards.clear()
            self._closed = True
