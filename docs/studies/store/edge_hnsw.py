"""What qdrant-edge's HNSW index would buy the embedded store, and why the service does not build it yet.

The service's EdgeVectorStore never calls `EdgeShard.optimize()`, so every point stays in the
appendable (plain) segment and a dense query is an exact scan over the whole collection. This
measures, on one shard of random unit vectors with the service's payload filter (`live = 1`):
- a dense top-10 query before and after `optimize()` (which builds the HNSW segment);
- how long `optimize()` takes;
- how much another Python thread gets done meanwhile (a counter loop): the binding holds the
  GIL for the whole build, so a server calling it in-process would stop answering until it ends;
- the same for a loop of queries (the store's query time is GIL-held too: concurrent searches
  serialise on it).

    .venv/bin/python docs/studies/store/edge_hnsw.py --points 100000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time

import numpy as np
import qdrant_edge as qe


def spin_rate(work) -> tuple[float, float, object]:
    """Counter increments per second in a side thread while `work()` runs, against the rate
    with nothing else running; and work()'s wall time and result."""
    count, stop = [0], [False]

    def spin():
        while not stop[0]:
            count[0] += 1

    side = threading.Thread(target=spin)
    side.start()
    time.sleep(0.5)
    baseline = count[0] / 0.5
    count[0] = 0
    t = time.perf_counter()
    result = work()
    wall = time.perf_counter() - t
    stop[0] = True
    side.join()
    return count[0] / wall / baseline, wall, result


LIVE = qe.Filter(must=[qe.FieldCondition(key="live", match=qe.MatchValue(value=1))])


def random_shard(rng: np.random.Generator, points: int, dim: int, datatype: str = "Float32") -> qe.EdgeShard:
    """A fresh shard of `points` random vectors, each with the service's `live = 1` payload (indexed)."""
    shard = qe.EdgeShard.create(tempfile.mkdtemp() + "/shard", qe.EdgeConfig(
        vectors={"dense": qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine,
                                           datatype=getattr(qe.VectorStorageDatatype, datatype))}))
    shard.update(qe.UpdateOperation.create_field_index("live", qe.PayloadSchemaType.Integer))
    for start in range(0, points, 2000):
        block = rng.standard_normal((min(2000, points - start), dim)).astype(np.float32)
        shard.update(qe.UpdateOperation.upsert_points(
            [qe.Point(id=start + j + 1, vector={"dense": v.tolist()}, payload={"live": 1}) for j, v in enumerate(block)]))
    return shard


def random_queries(rng: np.random.Generator, n: int, dim: int) -> list[qe.QueryRequest]:
    """Dense top-10 queries with the service's `live = 1` filter, as it sends them."""
    return [qe.QueryRequest(query=qe.Query.Nearest(v.tolist(), using="dense"), filter=LIVE, limit=10, with_payload=False)
            for v in rng.standard_normal((n, dim)).astype(np.float32)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--datatype", choices=["Float32", "Float16"], default="Float32",
                    help="vector storage datatype (Float16 halves the bytes a plain scan reads)")
    ap.add_argument("--no-optimize", action="store_true", help="measure the plain segment only")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    shard = random_shard(rng, args.points, args.dim, args.datatype)
    queries = random_queries(rng, args.queries, args.dim)

    def query_loop():
        for q in queries:
            shard.query(q)

    def alone(work) -> float:
        t = time.perf_counter()
        work()
        return time.perf_counter() - t

    # Query times alone (the side thread would compete for the GIL and inflate them), then shares.
    wall_q = alone(query_loop)
    share_q_before = spin_rate(query_loop)[0]
    if args.no_optimize:
        print(json.dumps({"points": args.points, "dim": args.dim, "datatype": args.datatype,
                          "query_ms_plain": round(wall_q / args.queries * 1000, 2)}))
        shard.close()
        return
    share_opt, wall_opt, changed = spin_rate(shard.optimize)
    wall_q_after = alone(query_loop)
    share_q_after = spin_rate(query_loop)[0]
    info = shard.info()
    out = {
        "points": args.points, "dim": args.dim, "datatype": args.datatype,
        "query_ms_plain": round(wall_q / args.queries * 1000, 2),
        "query_ms_hnsw": round(wall_q_after / args.queries * 1000, 2),
        "optimize_s": round(wall_opt, 1), "optimize_changed": changed,
        "indexed_vectors_count": info.indexed_vectors_count, "segments": info.segments_count,
        # 1.0: the other thread ran as fast as alone; ~0: it was stopped (the GIL was held);
        # ~0.5 with a query loop: the two threads took turns at the GIL (switch interval 5 ms).
        "other_thread_speed_during_optimize": round(share_opt, 5),
        "other_thread_speed_during_plain_queries": round(share_q_before, 3),
        "other_thread_speed_during_hnsw_queries": round(share_q_after, 3),
    }
    print(json.dumps(out, indent=1))
    shard.close()


if __name__ == "__main__":
    main()
