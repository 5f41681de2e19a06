"""Published scores to put our numbers next to (test split), copied from
/work/shared/eval/REFERENCE.md with the source each comes from. None = not published."""

from __future__ import annotations

from typing import Any

# (system, {dataset: (ndcg@10, recall@100)}, source)
_ROWS: list[tuple[str, dict[str, tuple[float | None, float | None]], str]] = [
    ("BM25 flat (Anserini/Lucene, k1=0.9 b=0.4, stemmed)",
     {"scifact": (0.6789, 0.9253), "nfcorpus": (0.3218, 0.2457)},
     "castorini/anserini regressions beir-v1.0.0-*.flat"),
    ("BM25 multifield (Anserini)",
     {"scifact": (0.6647, 0.9076), "nfcorpus": (0.3254, 0.2500)},
     "castorini/anserini regressions beir-v1.0.0-*.multifield"),
    ("BM25 (BEIR paper, Elasticsearch)",
     {"scifact": (0.665, None), "nfcorpus": (0.325, None)},
     "BEIR, arXiv 2104.08663, Table 2"),
    ("BM25 + cross-encoder rerank of top 100 (BEIR paper)",
     {"scifact": (0.688, None), "nfcorpus": (0.350, None)},
     "BEIR, arXiv 2104.08663, Table 2"),
    ("all-MiniLM-L6-v2 (MTEB)",
     {"scifact": (0.6451, 0.925), "nfcorpus": (0.3159, 0.3115)},
     "embeddings-benchmark/results"),
    ("bge-small-en-v1.5 (MTEB)",
     {"scifact": (0.7127, 0.945), "nfcorpus": (0.3426, 0.3116)},
     "embeddings-benchmark/results"),
    ("e5-small-v2 (MTEB)",
     {"scifact": (0.6885, 0.9277), "nfcorpus": (0.3245, 0.2981)},
     "embeddings-benchmark/results"),
    ("hybrid BM25 + TAS-B (OpenSearch, normalised harmonic mean)",
     {"scifact": (0.673, None), "nfcorpus": (0.346, None)},
     "opensearch-project blog, 2023-03-30"),
    ("hybrid BM25 + arctic-embed-xs (Vespa tutorial; RRF 0.3207, atan-normalised sum 0.3410)",
     {"nfcorpus": (0.341, None)},
     "vespa-engine/documentation hybrid-search tutorial"),
]

# The published row our own mode should be read against, where one exists.
COMPARABLE = {
    "lexical": "BM25 flat (Anserini/Lucene, k1=0.9 b=0.4, stemmed)",
    "rank_bm25_baseline": "BM25 flat (Anserini/Lucene, k1=0.9 b=0.4, stemmed)",
    "dense": "all-MiniLM-L6-v2 (MTEB)",
}


def published(dataset: str) -> list[dict[str, Any]]:
    """The rows published for one dataset (matched by folder name, case-insensitive)."""
    key = dataset.lower()
    return [
        {"system": system, "ndcg@10": scores[key][0], "recall@100": scores[key][1], "source": source}
        for system, scores, source in _ROWS
        if key in scores
    ]
