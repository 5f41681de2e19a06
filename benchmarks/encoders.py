"""Encode throughput of every encoder variant on given texts, and what `auto` picks.

Used by `python -m benchmarks precision` and callable from other benchmarks (the
ingest benchmark's encode ceiling):

    from benchmarks.encoders import encoder_registry, measure_variants
    report = measure_variants(texts, encoder_registry(cache_dir))
    report["variants"]["onnx-int8"]["docs_per_s"], report["auto"]["variant"]

Variants run interleaved, round by round, so a burst of other work on a shared
machine lands on all of them alike; each reports the median and the best round.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from pipelines.embed import DEFAULT_MODEL_NAME, VARIANTS, EncoderIdentity

ALL_VARIANTS = [f"{b}-{p}" for b, p in VARIANTS]


def identity(model: str, variant: str) -> EncoderIdentity:
    backend, precision = variant.split("-", 1)
    return EncoderIdentity(model, backend, precision)


def encoder_registry(cache_dir: Path | str, batch_size: int = 32, device: str = "cpu"):
    """A registry whose ONNX builds and `auto` decisions live in cache_dir (reused across runs)."""
    from rag_service.stores.embedder import EmbedderRegistry

    return EmbedderRegistry(backend="auto", precision="auto", device=device, batch_size=batch_size, cache_dir=cache_dir)


def as_served(embedder):
    """The embedder as the service runs it: through its group encoder (rag_service/stores/embedder.py),
    so an embedder with lanes (torch on a CPU of several cores) encodes a big call on every lane
    side by side, and one query on one lane, as a search's. A ceiling measured any other way would
    not be the ceiling of what the service runs."""
    from rag_service.stores.embedder import EmbedderRegistry

    registry = EmbedderRegistry()
    registry.register(embedder)  # pins the model's name to this embedder's identity
    return registry.encoder(embedder.name)


def load_variants(registry, model: str, variants: list[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """(loaded embedders by variant, why the others failed)."""
    loaded, failed = {}, {}
    for v in variants:
        try:
            loaded[v] = registry.get(identity(model, v))
        except Exception as exc:  # noqa: BLE001 - a variant that cannot run here is reported, not fatal
            failed[v] = f"{type(exc).__name__}: {exc}"[:300]
    return loaded, failed


def measure_variants(texts: list[str], registry, model: str = DEFAULT_MODEL_NAME, variants: list[str] | None = None,
                     rounds: int = 3, queries: list[str] | None = None, auto: bool = True) -> dict[str, Any]:
    """{"variants": {variant: {docs_per_s, docs_per_s_best, query_ms?}}, "failed": {...},
    "auto": {"variant", "decision"}, "speedup_over_torch_fp32": {variant: x}} on these texts."""
    loaded, failed = load_variants(registry, model, variants or ALL_VARIANTS)
    loaded = {v: as_served(e) for v, e in loaded.items()}
    for e in loaded.values():
        e.encode(texts[:8])  # warm-up
    seconds: dict[str, list[float]] = {v: [] for v in loaded}
    for _ in range(rounds):
        for v, e in loaded.items():
            started = time.perf_counter()
            e.encode(texts)
            seconds[v].append(time.perf_counter() - started)
    out: dict[str, Any] = {"texts": len(texts), "rounds": rounds, "variants": {}, "failed": failed}
    for v, s in seconds.items():
        out["variants"][v] = {"docs_per_s": round(len(texts) / statistics.median(s), 2),
                              "docs_per_s_best": round(len(texts) / min(s), 2)}
    if queries:
        one: dict[str, list[float]] = {v: [] for v in loaded}
        for q in queries:
            for v, e in loaded.items():
                started = time.perf_counter()
                e.encode([q])
                one[v].append((time.perf_counter() - started) * 1000)
        for v, ms in one.items():
            out["variants"][v]["query_ms"] = round(statistics.median(ms), 2)
    base = out["variants"].get("torch-fp32", {}).get("docs_per_s")
    if base:
        out["speedup_over_torch_fp32"] = {v: round(r["docs_per_s"] / base, 2) for v, r in out["variants"].items()}
    if auto:
        out["auto"] = auto_choice(registry, model)
        out["auto"]["speedup_over_torch_fp32"] = out.get("speedup_over_torch_fp32", {}).get(out["auto"]["variant"])
    return out


def auto_choice(registry, model: str = DEFAULT_MODEL_NAME) -> dict[str, Any]:
    """What `auto` resolves to with this registry (its gate; its cached decision, if any). A
    decision this process made earlier, under another gate, is dropped: the gate just
    measured decides (the on-disk cache is keyed by the candidates, so it agrees)."""
    registry.decisions.pop((model, "auto", "auto"), None)
    decided = registry.resolve(model, "auto", "auto")
    return {"variant": decided.variant, "decision": registry.decisions.get((model, "auto", "auto"), {})}
