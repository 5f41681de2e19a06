"""One query_batch of several exact-scan queries against the same queries one by one (qdrant-edge, plain segment).

    .venv/bin/python docs/studies/store/query_batch.py
"""

from __future__ import annotations

import time

import numpy as np
import qdrant_edge as qe

from edge_hnsw import random_queries, random_shard  # this folder is on sys.path when run as a script


def main() -> None:
    rng = np.random.default_rng(0)
    shard = random_shard(rng, 100_000, 384)
    queries = random_queries(rng, 96, 384)
    for _ in range(2):
        t = time.perf_counter()
        alone = [shard.query(q) for q in queries]
        single_ms = (time.perf_counter() - t) / len(queries) * 1000
        for size in (2, 4, 8):
            t = time.perf_counter()
            batched = []
            for i in range(0, len(queries), size):
                batched += shard.query_batch(qe.QueryBatchRequest(queries[i:i + size]))
            batch_ms = (time.perf_counter() - t) / len(queries) * 1000
            same = all([p.id for p in a] == [p.id for p in b] for a, b in zip(alone, batched))
            print(f"single {single_ms:.2f} ms/query; batch {size}: {batch_ms:.2f} ms/query, same results {same}")


if __name__ == "__main__":
    main()
