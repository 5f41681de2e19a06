"""`python -m benchmarks precision`: fp32 vs bf16 embeddings, measured to pick the default.

Both precisions of the same model (loaded exactly as the service loads it,
pipelines.embed.SentenceEmbedder) embed the same documents and queries, one after
the other in this process. Reported side by side: encode throughput (documents
per second, after a warm-up), the cosine between each document's two vectors,
and dense retrieval quality (exact cosine search over the subset, scored with ranx
like `quality`), so the speed gain is weighed against what it costs in ranking.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from benchmarks.common import load_beir, log
from benchmarks.quality import score

PRECISIONS = ("fp32", "bf16")


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("precision", help="fp32 vs bf16: encode speed, vector agreement and dense nDCG@10",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True, type=Path, help="BEIR folder")
    p.add_argument("--limit-docs", type=int, default=1000, help="documents to embed (judged ones first)")
    p.add_argument("--limit-queries", type=int, default=300)
    p.add_argument("--model", default="all-MiniLM-L6-v2")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--out", type=Path, default=None, help="write results.json and results.md here")
    return p


def _load(precision: str, args):
    from pipelines.embed import SentenceEmbedder

    return SentenceEmbedder(args.model, precision=precision, batch_size=args.batch_size)


def _encode(model, args, texts: list[str]) -> tuple[Any, float]:
    import numpy as np

    model.encode(texts[: args.batch_size])  # warm-up: first-call allocations are not throughput
    started = time.perf_counter()
    vectors = model.encode(texts)
    seconds = time.perf_counter() - started
    # bf16 rounding leaves norms a hair off 1; Qdrant's cosine normalises, so do the same here.
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True), seconds


def run(args: argparse.Namespace) -> int:
    import numpy as np

    ds = load_beir(args.dataset, "test", args.limit_docs, args.limit_queries)
    doc_ids = list(ds.corpus)
    docs = [ds.document_text(d) for d in doc_ids]
    queries = list(ds.queries.values())
    log(f"{ds.name}: {len(docs)} documents, {len(queries)} queries, model {args.model}")
    results: dict[str, Any] = {"dataset": ds.name, "model": args.model, "documents": len(docs),
                               "queries": len(queries), "precisions": {}}
    vectors: dict[str, Any] = {}
    for precision in PRECISIONS:
        model = _load(precision, args)  # once per precision: documents and queries share it
        doc_vecs, seconds = _encode(model, args, docs)
        query_vecs, _ = _encode(model, args, queries)
        vectors[precision] = doc_vecs
        scores = query_vecs @ doc_vecs.T  # unit vectors: cosine, as the store ranks
        run_ = {}
        for qid, row in zip(ds.queries, scores):
            top = np.argsort(-row)[:100]
            run_[qid] = {doc_ids[j]: float(row[j]) for j in top}
        results["precisions"][precision] = {"docs_per_s": round(len(docs) / seconds, 2), **score(ds, run_)}
        log(f"{precision}: {results['precisions'][precision]}")
    cosine = np.sum(vectors["fp32"] * vectors["bf16"], axis=1)
    fp32, bf16 = results["precisions"]["fp32"], results["precisions"]["bf16"]
    results["agreement"] = {"cosine_mean": round(float(cosine.mean()), 5), "cosine_min": round(float(cosine.min()), 5)}
    results["speedup_bf16"] = round(bf16["docs_per_s"] / fp32["docs_per_s"], 2)
    results["ndcg@10_delta_bf16"] = round(bf16["ndcg@10"] - fp32["ndcg@10"], 4)
    log(f"bf16 speed-up {results['speedup_bf16']}x, nDCG@10 delta {results['ndcg@10_delta_bf16']:+.4f}, "
        f"cosine mean {results['agreement']['cosine_mean']}")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        lines = [f"# fp32 vs bf16: {ds.name} ({len(docs)} documents, {len(queries)} queries)", "",
                 f"Model `{args.model}`, batch {args.batch_size}, exact cosine search over the subset.", "",
                 "| precision | docs/s | nDCG@10 | Recall@100 | MRR@10 |", "|---|---|---|---|---|"]
        for name, r in results["precisions"].items():
            lines.append(f"| {name} | {r['docs_per_s']} | {r['ndcg@10']:.4f} | {r['recall@100']:.4f} | {r['mrr@10']:.4f} |")
        lines += ["", f"bf16 / fp32 throughput: **{results['speedup_bf16']}×**; nDCG@10 change "
                      f"**{results['ndcg@10_delta_bf16']:+.4f}**; cosine(fp32, bf16) mean "
                      f"{results['agreement']['cosine_mean']}, min {results['agreement']['cosine_min']}.", ""]
        (args.out / "results.md").write_text("\n".join(lines), encoding="utf-8")
        log(f"wrote {args.out / 'results.json'} and results.md")
    else:
        print(json.dumps(results, indent=2))
    return 0
