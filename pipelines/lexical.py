"""BM25 term weights as sparse vectors: one tokenizer for documents and queries.

Documents carry the BM25 term-frequency part, tf*(k1+1) / (tf + k1*(1-b+b*dl/avgdl));
the vector store multiplies by IDF at query time (Qdrant's `Modifier.Idf`), so the
score of a query is sum(idf(t) * qtf(t) * weight(t, d)) - BM25 with repeated query
terms counting. The same vectors feed the embedded and the server adapter, so both
rank identically.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from collections.abc import Mapping
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


def query_terms(text: str) -> Counter[str]:
    """Each query term with how often the query repeats it."""
    return Counter(tokenize(text))


def most_informative(terms: Counter[str], max_terms: int, doc_freq: Mapping[str, int], docs: int) -> Counter[str]:
    """The `max_terms` terms of a long query that carry most weight: query frequency times the
    BM25 IDF from (estimated) document frequencies, so words every document has go first.
    A term no counted document has gets the highest IDF. Ties keep the query's own order."""
    if len(terms) <= max_terms:
        return terms

    def weight(term: str) -> float:
        df = doc_freq.get(term, 0)
        return terms[term] * math.log(1 + (docs - df + 0.5) / (df + 0.5))

    ranked = sorted(terms, key=weight, reverse=True)  # stable: equal weights stay in query order
    return Counter({t: terms[t] for t in ranked[:max_terms]})


def query_vector(text: str | Counter[str]) -> SparseVec:
    terms = query_terms(text) if isinstance(text, str) else text
    counts: Counter[int] = Counter()
    for token, qtf in terms.items():
        counts[term_id(token)] += qtf
    ids = sorted(counts)
    return SparseVec(ids, [float(counts[i]) for i in ids])
