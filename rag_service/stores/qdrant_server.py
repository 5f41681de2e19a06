"""Server adapter: qdrant-client against RAG_QDRANT_URL (a server or a cluster).

Each index is a collection `<alias>-<n>` reached through the Qdrant alias
`<alias>`, so a re-index can build a new collection and swap the alias
atomically. Tested against qdrant-client's local mode, which speaks the same API.
"""

from __future__ import annotations

from typing import Any

from qdrant_client import QdrantClient, models

from pipelines.types import SparseVec
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
# VectorStore interface onto its own client library, here qdrant-client.
_SCHEMA = {
    "keyword": models.PayloadSchemaType.KEYWORD,
    "integer": models.PayloadSchemaType.INTEGER,
    "float": models.PayloadSchemaType.FLOAT,
    "datetime": models.PayloadSchemaType.DATETIME,
}


def _condition(c: Match | MatchAny | Range) -> models.FieldCondition:
    if isinstance(c, Match):
        return models.FieldCondition(key=c.key, match=models.MatchValue(value=c.value))
    if isinstance(c, MatchAny):
        return models.FieldCondition(key=c.key, match=models.MatchAny(any=list(c.values)))
    bounds = {"gt": c.gt, "gte": c.gte, "lt": c.lt, "lte": c.lte}
    rng = models.DatetimeRange(**bounds) if c.is_datetime else models.Range(**bounds)
    return models.FieldCondition(key=c.key, range=rng)


def to_qdrant_filter(f: Filter | None) -> models.Filter | None:
    if f is None or (not f.must and not f.must_not):
        return None
    return models.Filter(
        must=[_condition(c) for c in f.must] or None,
        must_not=[_condition(c) for c in f.must_not] or None,
    )


def _sparse(v: SparseVec) -> models.SparseVector:
    return models.SparseVector(indices=list(v.indices), values=list(v.values))


def _vector(v: list[float] | SparseVec) -> list[float] | models.SparseVector:
    return _sparse(v) if isinstance(v, SparseVec) else list(map(float, v))


def _hits(points: list[models.ScoredPoint]) -> list[Hit]:
    return [Hit(id=str(p.id), score=float(p.score), payload=dict(p.payload or {})) for p in points]


class QdrantServerVectorStore(VectorStore):
    kind = "server"

    def __init__(self, url: str | None = None, api_key: str | None = None, client: QdrantClient | None = None) -> None:
        super().__init__()
        self.client = client or QdrantClient(url=url, api_key=api_key, timeout=10)
        self._local = client is not None and url is None

    def _call(self, fn, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (ConnectionError, TimeoutError, OSError) as exc:
            raise StoreUnavailable(f"qdrant unreachable: {exc}") from exc
        except Exception as exc:
            # httpx / grpc transport failures come wrapped in client exceptions.
            if type(exc).__name__ in {"ResponseHandlingException", "ConnectError", "ReadTimeout", "RpcError"}:
                raise StoreUnavailable(f"qdrant unreachable: {exc}") from exc
            raise

    def collection_exists(self, alias: str) -> bool:
        aliases = self._call(self.client.get_aliases).aliases
        return any(a.alias_name == alias for a in aliases)

    def ensure_collection(self, alias: str, dim: int) -> None:
        if self.collection_exists(alias):
            return
        name = f"{alias}-1"
        if not self._call(self.client.collection_exists, name):
            self._call(
                self.client.create_collection,
                name,
                vectors_config={DENSE: models.VectorParams(size=dim, distance=models.Distance.COSINE)},
                sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF),
                                       SPARSE_DOCUMENT: models.SparseVectorParams(modifier=models.Modifier.IDF)},
            )
        for key, kind in (("document_id", "keyword"), ("live", "integer"), ("version", "integer"), ("name", "keyword")):
            self._call(self.client.create_payload_index, name, key, _SCHEMA[kind])
        self._call(
            self.client.update_collection_aliases,
            change_aliases_operations=[
                models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name=name, alias_name=alias))
            ],
        )

    def _target(self, alias: str) -> str:
        # Local mode resolves aliases for reads and writes like a server does;
        # resolving here keeps error messages naming the real collection.
        for a in self._call(self.client.get_aliases).aliases:
            if a.alias_name == alias:
                return a.collection_name
        raise CollectionNotFound(f"no collection behind alias {alias!r}")

    def drop_collection(self, alias: str) -> None:
        self.forget_field_indexes(alias)
        try:
            name = self._target(alias)
        except CollectionNotFound:
            return
        self._call(
            self.client.update_collection_aliases,
            change_aliases_operations=[models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias))],
        )
        self._call(self.client.delete_collection, name)

    def create_field_index(self, alias: str, key: str, kind: FieldKind) -> None:
        self._call(self.client.create_payload_index, self._target(alias), key, _SCHEMA[kind])

    def upsert(self, alias: str, points: list[VectorPoint]) -> None:
        if not points:
            return
        structs = [models.PointStruct(id=p.id, vector={name: _vector(v) for name, v in p.vectors().items()}, payload=p.payload)
                   for p in points]
        self._call(self.client.upsert, self._target(alias), points=structs, wait=True)

    def update_sparse(self, alias: str, vectors: list[tuple[str, SparseVec]], using: VectorName = SPARSE) -> None:
        if not vectors:
            return
        ops = [models.PointVectors(id=pid, vector={using: _sparse(v)}) for pid, v in vectors]
        self._call(self.client.update_vectors, self._target(alias), points=ops, wait=True)

    def set_payload(self, alias: str, filter: Filter, payload: dict[str, Any]) -> None:
        self._call(self.client.set_payload, self._target(alias), payload=payload, points=to_qdrant_filter(filter), wait=True)

    def delete(self, alias: str, filter: Filter) -> None:
        selector = models.FilterSelector(filter=to_qdrant_filter(filter))
        self._call(self.client.delete, self._target(alias), points_selector=selector, wait=True)

    def count(self, alias: str, filter: Filter | None = None) -> int:
        return int(self._call(self.client.count, self._target(alias), count_filter=to_qdrant_filter(filter), exact=True).count)

    def search(self, alias: str, request: SearchRequest) -> SearchResult:
        name = self._target(alias)
        f = to_qdrant_filter(request.filter)
        sparse = _sparse(request.sparse) if request.sparse is not None else None

        def single(query: Any, using: str, limit: int) -> models.QueryRequest:
            return models.QueryRequest(query=query, using=using, limit=limit, filter=f, with_payload=True)

        if request.mode == "dense":
            res = self._call(self.client.query_points, name, query=request.dense, using=DENSE, limit=request.limit, query_filter=f, with_payload=True)
            return SearchResult(hits=_hits(res.points))
        if request.mode == "lexical":
            if not request.sparse.indices:
                return SearchResult(hits=[])
            res = self._call(self.client.query_points, name, query=sparse, using=SPARSE, limit=request.limit, query_filter=f, with_payload=True)
            return SearchResult(hits=_hits(res.points))

        n = max(request.prefetch_limit, request.limit)
        prefetch = [models.Prefetch(query=request.dense, using=DENSE, limit=n, filter=f)]
        weights = [request.weights[0]]
        if request.sparse.indices:
            prefetch.append(models.Prefetch(query=sparse, using=SPARSE, limit=n, filter=f))
            weights.append(request.weights[1])
        fused = models.QueryRequest(
            prefetch=prefetch,
            query=models.RrfQuery(rrf=models.Rrf(k=request.rrf_k, weights=weights)),
            limit=request.limit,
            with_payload=True,
        )
        batch = [fused]
        if request.with_components:
            batch.append(single(request.dense, DENSE, n))
            if request.sparse.indices:
                batch.append(single(sparse, SPARSE, n))
        results = self._call(self.client.query_batch_points, name, requests=batch)
        return SearchResult(
            hits=_hits(results[0].points),
            dense=_hits(results[1].points) if len(results) > 1 else [],
            lexical=_hits(results[2].points) if len(results) > 2 else [],
        )

    def query_arms(self, alias: str, arms: list[ArmQuery]) -> list[list[Hit]]:
        if not arms:
            return []
        batch = [models.QueryRequest(query=_vector(a.vector), using=a.using, limit=a.limit,
                                     filter=to_qdrant_filter(a.filter), with_payload=list(a.payload))
                 for a in arms]
        return [_hits(r.points) for r in self._call(self.client.query_batch_points, self._target(alias), requests=batch)]

    def point_vectors(self, alias: str, ids: list[str], using: VectorName) -> dict[str, list[float] | SparseVec]:
        if not ids:
            return {}
        records = self._call(self.client.retrieve, self._target(alias), ids=list(ids), with_payload=False,
                             with_vectors=[using])
        out: dict[str, list[float] | SparseVec] = {}
        for r in records:
            vector = r.vector.get(using) if isinstance(r.vector, dict) else None
            if vector is not None:
                out[str(r.id)] = (SparseVec(list(vector.indices), list(vector.values))
                                  if isinstance(vector, models.SparseVector) else list(vector))
        return out

    def ping(self) -> None:
        self._call(self.client.get_collections)

    def close(self) -> None:
        self.client.close()
