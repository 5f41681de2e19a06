"""How `auto` picks an encoder variant on this machine.

1. Candidates: the variants the quality gate found eligible for the model
   (encoder_gate.json, written by `python -m benchmarks precision`: nDCG@10 on
   SciFact no more than `max_ndcg_drop` below torch fp32). A model the gate never
   measured gets only the fp32 variants (torch and onnx compute the same vectors).
   RAG_EMBEDDING_BACKEND / RAG_EMBEDDING_PRECISION, when not `auto`, narrow them.
2. Capability: bf16 only where it is native (AVX512-BF16 or AMX on the CPU, or
   CUDA): emulated bf16 measured 0.23x fp32. int8 only on the CPU (onnxruntime's
   dynamic-quantization kernels are CPU kernels).
3. Probe: each remaining candidate encodes the fixed PROBE_TEXTS, interleaved
   round by round for a bounded time; the fastest (best round) wins. A candidate
   that fails to build, or whose vectors fall below COSINE_FLOOR to torch fp32 on
   those texts, is dropped (a broken export is never chosen).
4. The decision is stored under the cache directory, keyed by CPU model and
   flags, CUDA, library versions, model files and batch size, so later starts skip
   the probe; a new machine or library version probes again.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
import uuid
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import numpy as np

from pipelines.embed import (
    COSINE_FLOOR,
    PROBE_TEXTS,
    VARIANTS,
    EncoderIdentity,
    cpu_info,
    cuda_available,
    int8_full_range,
    model_fingerprint,
)

GATE_FILE = Path(__file__).with_name("encoder_gate.json")
FP32_VARIANTS = ("torch-fp32", "onnx-fp32")
PROBE_BUDGET_S = 20.0  # the whole probe, all candidates; at least one full round always runs
PROBE_ROUNDS = 3


@lru_cache(maxsize=1)
def machine_profile() -> dict[str, Any]:
    """CPU model and flags, CUDA, and the library versions a decision depends on."""
    model, flag_set = cpu_info()
    model = model or platform.processor() or platform.machine()
    versions = {}
    for lib in ("torch", "onnxruntime", "transformers", "sentence_transformers"):
        try:
            versions[lib] = __import__(lib).__version__
        except Exception:  # noqa: BLE001 - a missing library is part of the profile too
            versions[lib] = None
    flags = " ".join(sorted(flag_set))
    return {"cpu": model, "cores": os.cpu_count(), "flags_sha": hashlib.sha256(flags.encode()).hexdigest()[:12],
            "bf16_native": bool(flag_set & {"avx512_bf16", "amx_bf16"}), "avx512_vnni": "avx512_vnni" in flag_set,
            "int8_full_range": int8_full_range(),
            "cuda": cuda_available(), "versions": versions}


def load_gate(path: Path = GATE_FILE) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"models": {}}


def eligible_variants(gate: dict[str, Any], model: str) -> list[str]:
    entry = gate.get("models", {}).get(model) or gate.get("models", {}).get(model.removeprefix("sentence-transformers/"))
    return list(entry["eligible"]) if entry else list(FP32_VARIANTS)


def candidates(model: str, backend: str, precision: str, device: str, gate: dict[str, Any],
               profile: dict[str, Any]) -> tuple[list[EncoderIdentity], dict[str, str]]:
    """(candidates in preference order, why each other variant was left out)."""
    if (backend, precision) in VARIANTS:  # both pinned by the operator: that variant, no gate, no probe
        return [EncoderIdentity(model, backend, precision)], {}
    eligible = eligible_variants(gate, model)
    out, skipped = [], {}
    on_cuda = device.startswith("cuda") and profile["cuda"]
    for b, p in VARIANTS:
        name = f"{b}-{p}"
        if backend not in ("auto", b) or precision not in ("auto", p):
            continue
        if name not in eligible:
            skipped[name] = "not eligible by the quality gate (benchmarks precision)"
        elif p == "bf16" and not (profile["bf16_native"] or on_cuda):
            skipped[name] = "no native bf16 on this machine (no AVX512-BF16/AMX, no CUDA)"
        elif p == "int8" and on_cuda:
            skipped[name] = "int8 kernels are CPU-only"
        else:
            out.append(EncoderIdentity(model, b, p))
    return out, skipped


def probe(embedders: dict[EncoderIdentity, Any], texts: list[str] = PROBE_TEXTS,
          budget_s: float = PROBE_BUDGET_S, rounds: int = PROBE_ROUNDS) -> dict[EncoderIdentity, float]:
    """Docs/s of each embedder on `texts`: the best of interleaved rounds (the best round
    is the least disturbed by other work on a shared machine)."""
    for e in embedders.values():
        e.encode(texts[:4])  # warm-up: first-call allocations are not throughput
    best: dict[EncoderIdentity, float] = {}
    started = time.perf_counter()
    for r in range(rounds):
        for identity, e in embedders.items():
            t = time.perf_counter()
            e.encode(texts)
            best[identity] = max(best.get(identity, 0.0), len(texts) / (time.perf_counter() - t))
        if time.perf_counter() - started > budget_s:
            break
    return best


def sanity(embedders: dict[EncoderIdentity, Any], reference: Any) -> dict[EncoderIdentity, float]:
    """Min cosine to the torch fp32 reference on PROBE_TEXTS, per embedder."""
    ref = reference.encode(PROBE_TEXTS)
    return {i: float(np.min(np.sum(e.encode(PROBE_TEXTS) * ref, axis=1))) for i, e in embedders.items()}


def decision_key(model: str, backend: str, precision: str, device: str, batch_size: int,
                 options: list[EncoderIdentity], profile: dict[str, Any]) -> str:
    raw = json.dumps([model, backend, precision, device, batch_size, [o.variant for o in options],
                      model_fingerprint(model), profile], sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()[:20]


def read_decision(cache_dir: Path | None, key: str) -> dict[str, Any] | None:
    if cache_dir is None:
        return None
    try:
        return json.loads((Path(cache_dir) / "decisions" / f"{key}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_decision(cache_dir: Path | None, key: str, decision: dict[str, Any]) -> None:
    if cache_dir is None:
        return
    folder = Path(cache_dir) / "decisions"
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{key}.{uuid.uuid4().hex[:8]}.tmp"
    tmp.write_text(json.dumps(decision, indent=2), encoding="utf-8")
    os.replace(tmp, folder / f"{key}.json")  # atomic: readers see the old file or the new one


def decide(model: str, backend: str, precision: str, device: str, batch_size: int, cache_dir: Path | None,
           load: Callable[[EncoderIdentity], Any], gate: dict[str, Any] | None = None,
           profile: dict[str, Any] | None = None,
           probe_fn: Callable[[dict[EncoderIdentity, Any]], dict[EncoderIdentity, float]] = probe) -> dict[str, Any]:
    """The decision record: {"identity": {...}, "probed": {variant: docs/s}, "skipped": {...}, ...}."""
    profile = profile or machine_profile()
    options, skipped = candidates(model, backend, precision, device, load_gate() if gate is None else gate, profile)
    if not options:
        raise ValueError(f"no encoder variant for {model} with backend={backend}, precision={precision}: "
                         + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    key = decision_key(model, backend, precision, device, batch_size, options, profile)
    cached = read_decision(cache_dir, key)
    if cached is not None:
        return cached | {"cached": True}
    record: dict[str, Any] = {"model": model, "requested": {"backend": backend, "precision": precision},
                              "skipped": skipped, "failed": {}, "probed": {}, "cosine_min": {},
                              "cpu": profile["cpu"], "cuda": profile["cuda"],
                              "decided_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    if len(options) == 1:
        record["identity"] = options[0].as_dict()
        write_decision(cache_dir, key, record)
        return record
    loaded: dict[EncoderIdentity, Any] = {}
    for identity in options:
        try:
            loaded[identity] = load(identity)
        except Exception as exc:  # noqa: BLE001 - a variant that cannot build here is not a candidate
            record["failed"][identity.variant] = f"{type(exc).__name__}: {exc}"[:300]
    reference = load(EncoderIdentity(model, "torch", "fp32"))
    for identity, cosine in sanity(loaded, reference).items():
        record["cosine_min"][identity.variant] = round(cosine, 5)
        if cosine < COSINE_FLOOR[identity.precision]:
            record["failed"][identity.variant] = f"cosine {cosine:.4f} to torch fp32 below {COSINE_FLOOR[identity.precision]}"
            loaded.pop(identity)
    if not loaded:
        raise ValueError(f"no encoder variant of {model} works here: {record['failed']}")
    speeds = probe_fn(loaded)
    record["probed"] = {i.variant: round(v, 2) for i, v in speeds.items()}
    chosen = max(speeds, key=lambda i: (speeds[i], -options.index(i)))
    record["identity"] = chosen.as_dict()
    write_decision(cache_dir, key, record)
    return record
