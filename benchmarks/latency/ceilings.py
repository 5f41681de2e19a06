"""The ceilings each latency level is set against, measured in the benchmark process
while the server is stopped (an embedded qdrant-edge shard has a single opener, and
nothing else competes for the CPU): raw encode throughput for ingestion, and the
query-embedding plus raw vector-store time for search."""

from __future__ import annotations

import random
import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks.common import percentile, rounded
from benchmarks.encoders import as_served
from pipelines.lexical import query_vector
from rag_service.stores.vector import Filter, Match, SearchRequest


def load_embedder(index: dict[str, Any], settings):
    """The index's encoder exactly as the service loads and runs it (same identity: model, backend
    and precision `auto` resolved to; same batch size and device; ONNX builds from the server's
    cache; its lanes, benchmarks/encoders.py as_served)."""
    from transformers.utils import logging as hf_logging

    from pipelines.embed import EncoderIdentity
    from pipelines.embed import load_embedder as load

    hf_logging.disable_progress_bar()  # the "Loading weights" bar: noise in a benchmark log
    encoder = index.get("encoder") or {"model": index["embedding_model"]}
    return as_served(load(EncoderIdentity(**encoder), settings.encoder_cache_dir, device=settings.embedding_device,
                          batch_size=settings.embedding_batch_size))


def encode_ceiling(embedder, texts: list[str], sample: int, seed: int) -> dict[str, Any]:
    """Raw encode throughput (the model as the service runs it) on chunk texts of this level, in service-sized batches."""
    picked = random.Random(seed).sample(texts, min(sample, len(texts)))
    embedder.encode(picked[:64])  # warm-up: first-call allocations and thread pools
    started = time.perf_counter()
    embedder.encode(picked)
    seconds = time.perf_counter() - started
    return {"chunks": len(picked), "seconds": round(seconds, 2), "chunks_per_s": rounded(len(picked) / seconds),
            "batch_size": embedder.batch_size}


def _embed_queries(embedder, queries: list[str]) -> tuple[list[float], list[list[float]]]:
    """(ms per query, its vector), each query embedded alone, the way SearchService does."""
    for q in queries[:3]:
        embedder.encode([q])  # warm-up
    embed_ms, dense = [], []
    for q in queries:
        t0 = time.perf_counter()
        vector = embedder.encode([q])[0].tolist()  # the service converts it the same way
        embed_ms.append((time.perf_counter() - t0) * 1000)
        dense.append(vector)
    return embed_ms, dense


def _time_store(store, alias: str, requests: list) -> tuple[list[float], int]:
    """(ms per raw store query, hits in all) after a short warm-up."""
    for req in requests[:5]:
        store.search(alias, req)  # warm-up: opening the shard, first-touch pages
    store_ms, hits = [], 0
    for req in requests:
        t0 = time.perf_counter()
        result = store.search(alias, req)
        store_ms.append((time.perf_counter() - t0) * 1000)
        hits += len(result.hits)
    return store_ms, hits


def search_floor(data_dir: Path, alias: str, embedder, queries: list[str], modes: list[str], top_k: int,
                 result_type: str, settings) -> dict[str, Any]:
    """Median query-embedding time and median raw vector-store query time per mode.

    The requests are the ones SearchService.retrieve/_query_all build for a plain
    search (no filters, explain off, live documents only), sent through the
    service's own adapter to the shard the server just closed.
    """
    from rag_service.stores.edge import EdgeVectorStore
    need = top_k * (5 if result_type == "document" else 1)
    limit = need + 10
    live = Filter(must=(Match("live", 1),))
    embed_ms, dense = _embed_queries(embedder, queries)

    def request(mode: str, i: int) -> SearchRequest:
        return SearchRequest(mode=mode, limit=limit, dense=dense[i] if mode != "lexical" else None,
                             sparse=query_vector(queries[i]), filter=live,
                             prefetch_limit=max(limit * settings.prefetch_multiplier, 100),
                             rrf_k=settings.rrf_k, weights=(1.0, 1.0), with_components=False)

    store = EdgeVectorStore(data_dir / "qdrant")
    out: dict[str, Any] = {"embed_ms": rounded(statistics.median(embed_ms), 3), "queries": len(queries)}
    try:
        for mode in modes:
            requests = [request(mode, i) for i in range(len(queries))]
            store_ms, hits = _time_store(store, alias, requests)
            raw = statistics.median(store_ms)
            embed = 0.0 if mode == "lexical" else statistics.median(embed_ms)
            out[mode] = {"store_ms": rounded(raw, 3), "store_p95_ms": rounded(percentile(store_ms, 95), 3),
                         "embed_ms": rounded(embed, 3), "floor_ms": rounded(embed + raw, 3),
                         "mean_hits": rounded(hits / len(requests))}
    finally:
        store.close()
    return out
