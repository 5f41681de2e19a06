"""One query_batch of several exact-scan queries against the same queries one by one (qdrant-edge, plain segment).

    .venv/bin/python docs/studies/store/query_batch.py
"""
import time, tempfile, numpy as np, qdrant_edge as qe
N, D = 100_000, 384  # points, dimensions
rng = np.random.default_rng(0)
sh = qe.EdgeShard.create(tempfile.mkdtemp() + "/s", qe.EdgeConfig(vectors={"dense": qe.EdgeVectorParams(size=D, distance=qe.Distance.Cosine)}))
sh.update(qe.UpdateOperation.create_field_index("live", qe.PayloadSchemaType.Integer))
for i in range(0, N, 2000):
    v = rng.standard_normal((2000, D)).astype(np.float32)
    sh.update(qe.UpdateOperation.upsert_points([qe.Point(id=i + j + 1, vector={"dense": v[j].tolist()}, payload={"live": 1}) for j in range(2000)]))
qs = rng.standard_normal((96, D)).astype(np.float32).tolist()
live = qe.Filter(must=[qe.FieldCondition(key="live", match=qe.MatchValue(value=1))])
req = lambda q: qe.QueryRequest(query=qe.Query.Nearest(q, using="dense"), filter=live, limit=10, with_payload=False)
for rep in range(2):
    t = time.perf_counter()
    one = [sh.query(req(q)) for q in qs]
    t1 = (time.perf_counter() - t) / len(qs) * 1000
    for b in (2, 4, 8):
        t = time.perf_counter()
        out = []
        for i in range(0, len(qs), b): out += sh.query_batch(qe.QueryBatchRequest([req(q) for q in qs[i:i+b]]))
        tb = (time.perf_counter() - t) / len(qs) * 1000
        same = all([p.id for p in a] == [p.id for p in c] for a, c in zip(one, out))
        print(f"single {t1:.2f} ms/query; batch {b}: {tb:.2f} ms/query, same results {same}")
