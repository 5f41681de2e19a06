"""`python -m benchmarks precision`: every encoder variant, weighed for the `auto` quality gate.

Variants: torch fp32 (the reference), torch bf16, onnx fp32, onnx int8 (exported
and quantized locally, pipelines/embed.py). In one run, for each variant:

- encode throughput (documents/s; variants interleaved round by round, median and
  best round) and one-query latency, on the same documents (benchmarks/encoders.py);
- dense nDCG@10 through the service: one index per variant in one service (the
  variant pinned at index creation), the documents uploaded over HTTP, every
  judged query asked with `mode: dense`;
- cosine to torch fp32 of the vectors the service stored for the same chunks.

A variant whose nDCG@10 is more than --max-ndcg-drop below torch fp32 is not
eligible for `auto`. With --gate-file the verdict is written there (the service
ships rag_service/stores/encoder_gate.json and reads it at run time).
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchmarks.common import ServiceHarness, load_beir, log
from benchmarks.encoders import (
    ALL_VARIANTS,
    auto_choice,
    encoder_registry,
    identity,
    measure_variants,
)
from benchmarks.quality import score, search_mode
from benchmarks.report import emit

MAX_NDCG_DROP = 0.005


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("precision", help="every encoder variant: encode speed, cosine to fp32, dense nDCG@10",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True, type=Path, help="BEIR folder")
    p.add_argument("--limit-docs", type=int, default=1000, help="documents to embed (judged ones first)")
    p.add_argument("--limit-queries", type=int, default=300)
    p.add_argument("--model", default="all-MiniLM-L6-v2")
    p.add_argument("--variants", default=",".join(ALL_VARIANTS), help="comma-separated subset of " + ",".join(ALL_VARIANTS))
    p.add_argument("--timing-docs", type=int, default=128, help="documents in each timed round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=2, help="concurrent uploads per index")
    p.add_argument("--chunk-chars", type=int, default=4000, help="index chunk_max_characters (most docs one chunk)")
    p.add_argument("--max-ndcg-drop", type=float, default=MAX_NDCG_DROP)
    p.add_argument("--encoder-cache", type=Path, default=Path("data/encoders"),
                   help="where ONNX builds are made and reused (the service's RAG_DATA_DIR/encoders)")
    p.add_argument("--gate-file", type=Path, default=None, help="write the eligibility verdict here")
    p.add_argument("--out", type=Path, default=None, help="write results.json and results.md here")
    return p


def _ingest(h: ServiceHarness, index_id: str, ds, workers: int) -> dict[str, Any]:
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        codes = list(pool.map(lambda d: h.upload_text(index_id, d, ds.document_text(d)).status_code, ds.corpus))
    failed = sum(c not in (200, 201) for c in codes)
    if failed:
        raise RuntimeError(f"{failed} uploads failed: the comparison would not be like for like")
    return {"seconds": round(time.perf_counter() - started, 1)}


def _stored_vectors(h: ServiceHarness, variant: str, model: str) -> dict[str, Any]:
    import numpy as np
    from sqlmodel import select

    from rag_service.models import EmbeddingCache

    e = identity(model, variant)
    with h.ctx.db.session() as s:
        rows = s.exec(select(EmbeddingCache).where(EmbeddingCache.model == e.model, EmbeddingCache.backend == e.backend,
                                                   EmbeddingCache.precision == e.precision)).all()
    return {r.content_hash: np.frombuffer(r.vector, dtype=np.float32) for r in rows}


def gate_entry(results: dict[str, Any], max_drop: float) -> dict[str, Any]:
    ref = results["variants"]["torch-fp32"]["ndcg@10"]
    for v, r in results["variants"].items():
        r["ndcg@10_delta"] = round(r["ndcg@10"] - ref, 4)
        r["eligible"] = r["ndcg@10"] >= ref - max_drop
    return {"eligible": [v for v, r in results["variants"].items() if r["eligible"]],
            "max_ndcg_drop": max_drop, "measured_at": results["measured_at"], "cpu": results["cpu"],
            "dataset": f"{results['dataset']} ({results['documents']} documents, {results['queries']} queries)",
            "variants": {v: {k: r.get(k) for k in ("ndcg@10", "ndcg@10_delta", "docs_per_s", "query_ms", "cosine_mean",
                                                    "cosine_min")} for v, r in results["variants"].items()}}


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from rag_service.stores.encoder_choice import GATE_FILE, load_gate, machine_profile

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if "torch-fp32" not in variants or set(variants) - set(ALL_VARIANTS):
        raise SystemExit(f"--variants: a subset of {ALL_VARIANTS} that includes torch-fp32 (the reference)")
    ds = load_beir(args.dataset, "test", args.limit_docs, args.limit_queries)
    docs = [ds.document_text(d) for d in ds.corpus]
    profile = machine_profile()
    log(f"{ds.name}: {len(docs)} documents, {len(ds.queries)} queries, model {args.model}, CPU {profile['cpu']}")
    registry = encoder_registry(args.encoder_cache, batch_size=args.batch_size)
    speed = measure_variants(docs[: args.timing_docs], registry, args.model, variants, args.rounds,
                             queries=list(ds.queries.values())[:50], auto=False)
    log(f"encode: {speed['variants']}; failed: {speed['failed']}")
    results: dict[str, Any] = {"dataset": ds.name, "model": args.model, "documents": len(docs),
                               "queries": len(ds.queries), "cpu": profile["cpu"], "machine": profile,
                               "measured_at": datetime.now(timezone.utc).date().isoformat(),
                               "timing": {k: speed[k] for k in ("texts", "rounds")}, "failed": speed["failed"],
                               "variants": {}}
    with ServiceHarness(embedders=registry) as h:
        stored = {}
        for v in speed["variants"]:
            e = identity(args.model, v)
            h.settings.embedding_backend, h.settings.embedding_precision = e.backend, e.precision
            index = h.create_index(f"precision-{v}", chunk_max_characters=args.chunk_chars, privacy_tier="public")
            assert index["encoder"] == e.as_dict(), index["encoder"]
            ingest = _ingest(h, index["id"], ds, args.workers)
            run_, latencies, _ = search_mode(h, index["id"], ds, "dense", False, label=v)
            stored[v] = _stored_vectors(h, v, args.model)
            results["variants"][v] = {**speed["variants"][v], **score(ds, run_), "ingest_s": ingest["seconds"],
                                      "search_ms_p50": round(float(np.percentile(latencies, 50)), 2)}
            log(f"{v}: {results['variants'][v]}")
    ref = stored["torch-fp32"]
    for v, vecs in stored.items():
        common = [k for k in vecs if k in ref]
        cosine = np.array([float(np.dot(vecs[k], ref[k])) for k in common])
        results["variants"][v].update(cosine_mean=round(float(cosine.mean()), 5), cosine_min=round(float(cosine.min()), 5),
                                      chunks_compared=len(common))
    results["speedup_over_torch_fp32"] = speed.get("speedup_over_torch_fp32", {})
    entry = gate_entry(results, args.max_ndcg_drop)
    results["eligible"] = entry["eligible"]
    log(f"eligible for auto: {entry['eligible']}; speed-up over torch fp32: {results['speedup_over_torch_fp32']}")
    gate = load_gate(args.gate_file or GATE_FILE)
    gate["about"] = ("Encoder variants eligible for RAG_EMBEDDING_*=auto, per model: dense nDCG@10 no more than "
                     "max_ndcg_drop below torch fp32 (python -m benchmarks precision). Read at run time by "
                     "rag_service/stores/encoder_choice.py.")
    gate.setdefault("models", {})[args.model] = entry
    # What `auto` picks on this machine under the verdict just measured (probe, as at a service start).
    registry.gate = gate
    results["auto"] = auto_choice(registry, args.model)
    results["auto"]["speedup_over_torch_fp32"] = results["speedup_over_torch_fp32"].get(results["auto"]["variant"])
    log(f"auto -> {results['auto']['variant']} ({results['auto']['decision'].get('probed')})")
    if args.gate_file:
        args.gate_file.write_text(json.dumps(gate, indent=2) + "\n", encoding="utf-8")
        log(f"wrote {args.gate_file}")
    emit(args.out, results, _markdown(results, args))
    return 0


def _capabilities(results: dict[str, Any]) -> str:
    m = results.get("machine", {})
    yes = lambda flag: "yes" if m.get(flag) else "no"  # noqa: E731
    return (f"{m.get('cores', '?')} cores; native bf16: {yes('bf16_native')}, AVX512-VNNI: {yes('avx512_vnni')}, "
            f"CUDA: {yes('cuda')}")


def _markdown(results: dict[str, Any], args) -> str:
    lines = [f"# Encoder variants: {results['dataset']} ({results['documents']} documents, {results['queries']} queries)",
             "", f"Model `{results['model']}`, batch {args.batch_size}, CPU {results['cpu']} ({_capabilities(results)}), "
             f"{results['measured_at']}. "
             f"Encode speed: {results['timing']['texts']} documents x {results['timing']['rounds']} interleaved rounds "
             "(median round; best in brackets). nDCG@10: dense search through the service, one index per variant.", "",
             "| variant | docs/s | x torch fp32 | one query ms | cosine to fp32 (mean / min) | dense nDCG@10 | delta | eligible |",
             "|---|---|---|---|---|---|---|---|"]
    for v, r in results["variants"].items():
        lines.append(f"| {v} | {r['docs_per_s']} ({r['docs_per_s_best']}) | {results['speedup_over_torch_fp32'].get(v)} | "
                     f"{r.get('query_ms')} | {r['cosine_mean']} / {r['cosine_min']} | {r['ndcg@10']:.4f} | "
                     f"{r['ndcg@10_delta']:+.4f} | {'yes' if r['eligible'] else 'no'} |")
    for v, why in results["failed"].items():
        lines.append(f"| {v} | failed: {why} | | | | | | no |")
    decision = results["auto"]["decision"]
    lines += ["", f"`auto` chose **{results['auto']['variant']}** on this machine (probe docs/s: "
                  f"{decision.get('probed')}; skipped: {decision.get('skipped')}).", ""]
    return "\n".join(lines)
