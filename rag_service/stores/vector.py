"""The VectorStore interface: what the services need from Qdrant, nothing more.

Two adapters implement it (embedded qdrant-edge-py, and qdrant-client against a
server or cluster); one contract suite in tests/unit/test_vector_contract.py runs
on both. Payload keys the services rely on: index_id, document_id, version,
ordinal, name, live (1 = the document's current version and not deleted; an
integer, because a bool in a match condition never matches), meta (provenance).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pipelines.types import SparseVec

DENSE = "dense"
SPARSE = "bm25"

Mode = Literal["dense", "lexical", "hybrid"]
FieldKind = Literal["keyword", "integer", "float", "datetime"]


@dataclass(frozen=True)
class Match:
    key: str
    value: str | int


@dataclass(frozen=True)
class MatchAny:
    key: str
    values: tuple[str, ...] | tuple[int, ...]


@dataclass(frozen=True)
class Range:
    key: str
    gt: float | str | None = None
    gte: float | str | None = None
    lt: float | str | None = None
    lte: float | str | None = None
    is_datetime: bool = False


Condition = Match | MatchAny | Range


@dataclass(frozen=True)
class Filter:
    must: tuple[Condition, ...] = ()
    must_not: tuple[Condition, ...] = ()

    def and_(self, *conditions: Condition) -> "Filter":
        return Filter(must=self.must + tuple(conditions), must_not=self.must_not)


@dataclass
class VectorPoint:
    id: str
    dense: list[float]
    sparse: SparseVec
    payload: dict[str, Any]


@dataclass
class Hit:
    id: str
    score: float
    payload: dict[str, Any]


@dataclass
class SearchRequest:
    mode: Mode
    limit: int
    dense: list[float] | None = None
    sparse: SparseVec | None = None
    filter: Filter | None = None
    prefetch_limit: int = 100
    rrf_k: int = 60
    weights: tuple[float, float] = (1.0, 1.0)  # dense, lexical
    # Also return each retriever's own ranking (for `explain`), in the same call.
    with_components: bool = False


@dataclass
class SearchResult:
    hits: list[Hit]
    dense: list[Hit] = field(default_factory=list)
    lexical: list[Hit] = field(default_factory=list)


class StoreUnavailable(RuntimeError):
    """The vector store cannot be reached; services turn this into retrieval_unavailable."""


class VectorStore(Protocol):
    kind: str

    def ensure_collection(self, alias: str, dim: int) -> None: ...
    def drop_collection(self, alias: str) -> None: ...
    def collection_exists(self, alias: str) -> bool: ...
    def ensure_field_index(self, alias: str, key: str, kind: FieldKind) -> None: ...
    def upsert(self, alias: str, points: list[VectorPoint]) -> None: ...
    def update_sparse(self, alias: str, vectors: list[tuple[str, SparseVec]]) -> None: ...
    def set_payload(self, alias: str, filter: Filter, payload: dict[str, Any]) -> None: ...
    def delete(self, alias: str, filter: Filter) -> None: ...
    def count(self, alias: str, filter: Filter | None = None) -> int: ...
    def search(self, alias: str, request: SearchRequest) -> SearchResult: ...
    def ping(self) -> None: ...
    def close(self) -> None: ...
