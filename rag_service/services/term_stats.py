"""Document frequencies of an index's terms, estimated from a sample of its chunks.

Only long queries need them: the lexical side of a query with more distinct terms than
RAG_MAX_QUERY_TERMS keeps its most informative ones (pipelines.lexical.most_informative), and
"informative" needs IDF. The vector store applies the exact IDF at query time but does not
expose it, so the service estimates it from up to `sample` chunks per index (chunk ids are
content hashes, so the first ones by id are an unbiased sample), cached for `ttl_s`. An estimate
is enough: it only decides which terms are dropped, never how the kept ones are scored.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass

from sqlmodel import select

from pipelines.lexical import tokenize
from rag_service.db import Database
from rag_service.models import Chunk


@dataclass(frozen=True)
class _Sample:
    taken_at: float
    doc_freq: Counter[str]
    docs: int


class TermStatistics:
    def __init__(self, db: Database, sample: int = 2000, ttl_s: float = 300.0) -> None:
        self.db = db
        self.sample = sample
        self.ttl_s = ttl_s
        self._samples: dict[str, _Sample] = {}
        self._lock = threading.Lock()

    def document_frequencies(self, index_ids: list[str]) -> tuple[Counter[str], int]:
        """Summed over the indexes: how many sampled chunks hold each term, and how many were sampled."""
        total: Counter[str] = Counter()
        docs = 0
        for index_id in index_ids:
            sample = self._sample_of(index_id)
            total.update(sample.doc_freq)
            docs += sample.docs
        return total, docs

    def _sample_of(self, index_id: str) -> _Sample:
        with self._lock:
            cached = self._samples.get(index_id)
        if cached and time.monotonic() - cached.taken_at < self.ttl_s:
            return cached
        with self.db.session() as s:
            texts = s.exec(select(Chunk.text).where(Chunk.index_id == index_id).order_by(Chunk.id)
                           .limit(self.sample)).all()
        doc_freq: Counter[str] = Counter()
        for text in texts:
            doc_freq.update(set(tokenize(text)))
        fresh = _Sample(time.monotonic(), doc_freq, len(texts))
        with self._lock:
            self._samples[index_id] = fresh
        return fresh
