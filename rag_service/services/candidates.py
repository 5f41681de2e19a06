"""What the searches share: a store hit on its way to a result, and the one translation of
vector-store failures into retrieval_unavailable (a refused query is never an empty result)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from rag_service.errors import RetrievalUnavailable
from rag_service.models import Index
from rag_service.stores.vector import CollectionNotFound, Hit, StoreError, StoreUnavailable

T = TypeVar("T")


@dataclass
class Candidate:
    hit: Hit
    index: Index
    explain: dict[str, Any] = field(default_factory=dict)


def store_call(index: Index, call: Callable[[], T]) -> T:
    try:
        return call()
    except StoreUnavailable as exc:
        raise RetrievalUnavailable(f"vector store unavailable: {exc}", component="vector_store") from exc
    except CollectionNotFound as exc:
        raise RetrievalUnavailable(f"collection of index {index.id} is missing", component="vector_store") from exc
    except StoreError as exc:
        raise RetrievalUnavailable(f"vector store failed: {exc}", component="vector_store") from exc
