"""The VectorStore interface: what the services need from Qdrant, nothing more.

Two adapters implement it (embedded qdrant-edge-py, and qdrant-client against a
server or cluster); one contract suite in tests/unit/test_vector_contract.py runs
on both. Payload keys the services rely on: index_id, document_id, version,
ordinal, name, live (1 = the document's current version and not deleted; an
integer, because a bool in a match condition never matches), meta (provenance).
"""

from __future__ import annotations

import functools
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Literal

from pipelines.types import SparseVec

DENSE = "dense"
SPARSE = "bm25"
# One point per document version carries the whole document's BM25 weights under this name and
# no other vector, so chunk queries (dense, bm25) never meet it; its payload has kind="document".
SPARSE_DOCUMENT = "bm25_doc"
VectorName = Literal["dense", "bm25", "bm25_doc"]

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
    """A chunk (dense + sparse) or a document point (document_sparse only)."""

    id: str
    dense: list[float] | None
    sparse: SparseVec | None
    payload: dict[str, Any]
    document_sparse: SparseVec | None = None

    def vectors(self) -> dict[str, list[float] | SparseVec]:
        named = {DENSE: self.dense, SPARSE: self.sparse, SPARSE_DOCUMENT: self.document_sparse}
        return {name: v for name, v in named.items() if v is not None}


# Counting chunk points: everything but the document points (older chunk points have no `kind`).
DOCUMENT_POINT = Match("kind", "document")


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
class ArmQuery:
    """One nearest-neighbour query on one named vector (a retrieval arm searched on its own, for
    fusion and feedback in the service); payload: the keys to return."""

    using: VectorName
    vector: list[float] | SparseVec
    limit: int
    filter: Filter | None = None
    payload: tuple[str, ...] = ("document_id", "version", "name")


@dataclass
class SearchResult:
    hits: list[Hit]
    dense: list[Hit] = field(default_factory=list)
    lexical: list[Hit] = field(default_factory=list)


class StoreError(RuntimeError):
    """What every vector-store failure is: callers catch this one type (or a subclass)."""


class StoreUnavailable(StoreError):
    """The vector store cannot be reached; services turn this into retrieval_unavailable."""


class CollectionNotFound(StoreError, KeyError):
    """No collection behind this alias (a KeyError too: a missing key, as a dict would say)."""


def _raising_store_errors(method):
    @functools.wraps(method)
    def wrapped(self, *args: Any, **kwargs: Any):
        try:
            return method(self, *args, **kwargs)
        except StoreError:
            raise
        except KeyError as exc:
            raise CollectionNotFound(str(exc)) from exc
        except Exception as exc:
            raise StoreError(f"{type(exc).__name__}: {exc}") from exc

    return wrapped


class VectorStore(ABC):
    """The one interface of the vector stores, subclassed by the embedded engine
    (stores/edge.py) and the Qdrant server adapter (stores/qdrant_server.py), as qdrant-client's
    QdrantBase is by its local and remote twins. tests/unit/test_vector_contract.py runs one
    contract suite on both. Every method raises StoreError (StoreUnavailable when unreachable,
    CollectionNotFound for an unknown alias) and nothing else."""

    kind: str

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # The adapters call two client libraries whose exceptions differ; wrapping each public
        # method once here keeps "raises StoreError" true without a try in every method.
        super().__init_subclass__(**kwargs)
        for name, method in list(vars(cls).items()):
            if callable(method) and not name.startswith("_"):
                setattr(cls, name, _raising_store_errors(method))

    def __init__(self) -> None:
        # Payload indexes this store has made (or tried to), per collection: one call per key, not per write.
        self._field_indexes: set[tuple[str, str]] = set()
        self._field_lock = threading.Lock()

    def ensure_field_index(self, alias: str, key: str, kind: FieldKind) -> None:
        """Create a payload index once per (collection, key); a key whose index cannot be made
        (first seen with another type) is not tried again, and filtering on it still works."""
        with self._field_lock:
            if (alias, key) in self._field_indexes:
                return
        failed: StoreError | None = None
        try:
            self.create_field_index(alias, key, kind)  # wrapped: raises StoreError only
        except StoreUnavailable:
            raise  # not remembered: tried again once the store answers
        except StoreError as exc:
            failed = exc
        with self._field_lock:
            self._field_indexes.add((alias, key))
        if failed is not None:
            raise StoreError(f"payload index on {key} not created: {failed}") from failed

    def forget_field_indexes(self, alias: str) -> None:
        """A dropped collection's indexes go with it."""
        with self._field_lock:
            self._field_indexes = {m for m in self._field_indexes if m[0] != alias}

    @abstractmethod
    def ensure_collection(self, alias: str, dim: int) -> None: ...
    @abstractmethod
    def drop_collection(self, alias: str) -> None: ...
    @abstractmethod
    def collection_exists(self, alias: str) -> bool: ...
    @abstractmethod
    def create_field_index(self, alias: str, key: str, kind: FieldKind) -> None: ...
    @abstractmethod
    def upsert(self, alias: str, points: list[VectorPoint]) -> None: ...
    @abstractmethod
    def update_sparse(self, alias: str, vectors: list[tuple[str, SparseVec]], using: VectorName = SPARSE) -> None: ...
    @abstractmethod
    def set_payload(self, alias: str, filter: Filter, payload: dict[str, Any]) -> None: ...
    @abstractmethod
    def delete(self, alias: str, filter: Filter) -> None: ...
    @abstractmethod
    def count(self, alias: str, filter: Filter | None = None) -> int: ...
    @abstractmethod
    def search(self, alias: str, request: SearchRequest) -> SearchResult: ...
    @abstractmethod
    def query_arms(self, alias: str, arms: list[ArmQuery]) -> list[list[Hit]]:
        """Each arm's hits, best first, in one batch call."""
    @abstractmethod
    def point_vectors(self, alias: str, ids: list[str], using: VectorName) -> dict[str, list[float] | SparseVec]:
        """The stored `using` vectors of these points (of those that exist and have one)."""
    @abstractmethod
    def ping(self) -> None: ...
    @abstractmethod
    def close(self) -> None: ...
