"""What the winning pipeline's extra vector-store queries cost, measured on qdrant-edge (the
service's embedded store) with the NFCorpus chunks, on this 2-core machine, single-threaded client.

  cd /work/main && OMP_NUM_THREADS=1 .venv/bin/python docs/studies/quality/latency.py
Prints per-query p50/p95 ms for each query shape (NFCorpus dev queries), writes latency.json.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
import tempfile
import time
from dataclasses import replace

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, "/work/main")
import numpy as np  # noqa: E402
import qdrant_edge as qe  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)
from core import Collection, Config, lexical_scores, query_matrix, rm3_expand  # noqa: E402

DENSE, SPARSE = "dense", "bm25"


def sparse_rows(W, idx):
    row = W.getrow(idx)
    return qe.SparseVector(row.indices.tolist(), row.data.tolist())


def build(path: str, dense: np.ndarray | None, W, payload_doc: np.ndarray) -> qe.EdgeShard:
    vectors = {DENSE: qe.EdgeVectorParams(size=384, distance=qe.Distance.Cosine)} if dense is not None else {}
    shard = qe.EdgeShard.create(path, qe.EdgeConfig(
        vectors=vectors, sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)}))
    pts = []
    for i in range(W.shape[0]):
        vec = {SPARSE: sparse_rows(W, i)}
        if dense is not None:
            vec[DENSE] = dense[i].tolist()
        pts.append(qe.Point(id=i + 1, vector=vec, payload={"document_id": int(payload_doc[i]), "live": 1}))
        if len(pts) == 256:
            shard.update(qe.UpdateOperation.upsert_points(pts))
            pts = []
    if pts:
        shard.update(qe.UpdateOperation.upsert_points(pts))
    shard.optimize()
    return shard


def timed(fn, n):
    out = []
    for i in range(n):
        t = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - t) * 1000)
    return {"p50_ms": round(float(np.percentile(out, 50)), 2), "p95_ms": round(float(np.percentile(out, 95)), 2)}


def main() -> None:
    col = Collection("nfcorpus")
    split = "dev"
    base = Config()
    best = replace(base, k1=0.9, b=0.4, lex_unit="doc", rm3_docs=10, rm3_terms=40, rm3_orig=0.3)
    q = query_matrix(col, split)
    Wc, _ = col.bm25_matrix("chunk", base.k1, base.b)
    Wd, _ = col.bm25_matrix("doc", best.k1, best.b)
    # the RM3 expansion of each query (its cost in Python is measured separately below)
    t = time.perf_counter()
    lex = lexical_scores(col, best, q, "doc")
    q2 = rm3_expand(col, best, q, lex, "doc")
    rm3_ms = (time.perf_counter() - t) * 1000 / q.shape[0]
    inv = {v: k for k, v in col.vocab.items()}
    from pipelines.lexical import term_id

    tid = np.array([term_id(inv[j]) for j in range(len(inv))])

    def sv(row):
        r = row.tocsr()
        order = np.argsort(tid[r.indices])
        return qe.SparseVector(tid[r.indices][order].tolist(), r.data[order].astype(float).tolist())

    Wc_h = Wc.copy(); Wd_h = Wd.copy()
    # store term ids as the service does (hashed); the matrices are re-indexed per row in sparse_rows
    tmp = tempfile.mkdtemp(prefix="q-lat-")
    try:
        def hashed(W):
            import scipy.sparse as sp
            W = W.tocoo()
            return sp.csr_matrix((W.data, (W.row, tid[W.col])), shape=(W.shape[0], int(tid.max()) + 1))

        started = time.time()
        chunks = build(f"{tmp}/chunks", col.chunk_vec, hashed(Wc_h), col.chunk_doc)
        docs = build(f"{tmp}/docs", None, hashed(Wd_h), np.arange(col.n_docs))
        print(f"built shards in {time.time() - started:.0f}s", flush=True)
        qv = col.qvec[split]
        qs = [sv(q.getrow(i)) for i in range(q.shape[0])]
        qs2 = [sv(q2.getrow(i)) for i in range(q.shape[0])]
        n = q.shape[0]
        prefetch = 2040

        def dq(i, vecs=qv):
            return qe.Query.Nearest(list(map(float, vecs[i])), using=DENSE)

        def hybrid(i):  # the service today: one fused query
            chunks.query(qe.QueryRequest(limit=510, prefetches=[
                qe.Prefetch(limit=prefetch, query=dq(i)),
                qe.Prefetch(limit=prefetch, query=qe.Query.Nearest(qs[i], using=SPARSE))],
                query=qe.Fusion.Rrf(k=60, weights=[1.0, 1.0]), with_payload=True))

        def dense_only(i):
            chunks.query(qe.QueryRequest(limit=prefetch, query=dq(i), with_payload=True))

        def dense_with_vectors(i):
            chunks.query(qe.QueryRequest(limit=3, query=dq(i), with_payload=False, with_vector=True))

        def doc_sparse(i):
            docs.query(qe.QueryRequest(limit=prefetch, query=qe.Query.Nearest(qs[i], using=SPARSE), with_payload=True))

        def doc_sparse_rm3(i):
            docs.query(qe.QueryRequest(limit=prefetch, query=qe.Query.Nearest(qs2[i], using=SPARSE), with_payload=True))

        res = {"queries": n, "chunks": col.n_chunks, "docs": col.n_docs,
               "rm3_expansion_python_ms_per_query": round(rm3_ms, 2),
               "expanded_query_terms_mean": float(np.mean([len(x.indices) for x in qs2])),
               "original_query_terms_mean": float(np.mean([len(x.indices) for x in qs]))}
        for name, fn in [("service_hybrid_fused", hybrid), ("dense_chunks_2040", dense_only),
                         ("dense_top3_with_vectors", dense_with_vectors), ("sparse_docs_2040", doc_sparse),
                         ("sparse_docs_2040_rm3_expanded", doc_sparse_rm3)]:
            fn(0)
            res[name] = timed(fn, n)
            print(name, res[name], flush=True)
        from pipelines.embed import SentenceEmbedder

        emb = SentenceEmbedder("all-MiniLM-L6-v2", "fp32")
        texts = col.queries[split]["texts"]
        emb.encode([texts[0]])
        res["query_embedding_fp32"] = timed(lambda i: emb.encode([texts[i]]), n)
        print("query embedding", res["query_embedding_fp32"], flush=True)
        chunks.close()
        docs.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    json.dump(res, open(str(Path(__file__).resolve().parent / "latency.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
