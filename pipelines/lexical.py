"""BM25 term weights as sparse vectors: one tokenizer for documents and queries.

Documents carry the BM25 term-frequency part, tf*(k1+1) / (tf + k1*(1-b+b*dl/avgdl));
the vector store multiplies by IDF at query time (Qdrant's `Modifier.Idf`), so the
score of a query is sum(idf(t) * qtf(t) * weight(t, d)) - BM25 with repeated query
terms counting. The same vectors feed the embedded and the server adapter, so both
rank identically.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

import Stemmer

from pipelines.types import SparseVec

# Lucene's English stop set (what Anserini's BM25 baselines use).
STOPWORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their "
    "then there these they this to was will with".split()
)
_WORD = re.compile(r"\w+", re.UNICODE)
_stemmer = Stemmer.Stemmer("english")


def tokenize(text: str) -> list[str]:
    words = [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS]
    return _stemmer.stemWords(words)


@lru_cache(maxsize=200_000)
def term_id(token: str) -> int:
    # Stable across processes and machines (Python's hash() is salted).
    return int.from_bytes(hashlib.blake2b(token.encode("utf-8"), digest_size=4).digest(), "big") & 0x7FFFFFFF


@dataclass(frozen=True)
class Bm25Params:
    k1: float = 1.2
    b: float = 0.75
    avg_len: float = 100.0


def document_vector(tokens: list[str], params: Bm25Params) -> SparseVec:
    if not tokens:
        return SparseVec([], [])
    counts = Counter(tokens)
    norm = params.k1 * (1 - params.b + params.b * len(tokens) / max(params.avg_len, 1e-9))
    weights: dict[int, float] = {}
    for token, tf in counts.items():
        tid = term_id(token)
        # Hash collisions merge terms: keep the larger weight, never sum twice.
        weights[tid] = max(weights.get(tid, 0.0), tf * (params.k1 + 1) / (tf + norm))
    ids = sorted(weights)
    return SparseVec(ids, [weights[i] for i in ids])


def query_vector(text: str) -> SparseVec:
    counts: Counter[int] = Counter(term_id(t) for t in tokenize(text))
    ids = sorted(counts)
    return SparseVec(ids, [float(counts[i]) for i in ids])
