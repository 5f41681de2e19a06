"""Encoder variants: ONNX builds made once and reused, and how `auto` decides."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

import pipelines.embed as embed
from pipelines.embed import DEFAULT_MODEL_NAME as MODEL, EncoderIdentity
from rag_service.stores import encoder_choice
from rag_service.stores.embedder import EmbedderRegistry

TEXTS = ["Magma rises through the crust and erupts as lava.", "The moon's gravity drives the tides.",
         "Some pine cones open only after wildfires, releasing seeds onto the ash."]


def test_onnx_fp32_build_matches_torch_and_is_reused_not_rebuilt(embedders, monkeypatch):
    onnx = embedders.get(EncoderIdentity(MODEL, "onnx", "fp32"))
    torch_fp32 = embedders.get(EncoderIdentity(MODEL, "torch", "fp32"))
    cosine = np.sum(onnx.encode(TEXTS) * torch_fp32.encode(TEXTS), axis=1)
    assert cosine.min() > 0.9999  # same pooling and normalisation as SentenceTransformer.encode
    folder = embed.onnx_dir(embedders.cache_dir, MODEL, "fp32")
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["cosine_to_torch_fp32"]["min"] >= embed.COSINE_FLOOR["fp32"] and meta["pooling"] == "mean"
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".tmp-")]  # nothing half-written left

    def no_export(*a, **k):
        raise AssertionError("exported again")

    monkeypatch.setattr(embed, "_export_fp32", no_export)
    monkeypatch.setattr(embed, "_quantize", no_export)
    assert embed.build_onnx(embedders.cache_dir, MODEL, "fp32") == folder  # a later start: the same files
    again = embed.load_embedder(EncoderIdentity(MODEL, "onnx", "fp32"), embedders.cache_dir)
    assert np.allclose(again.encode(TEXTS), onnx.encode(TEXTS), atol=1e-6)


def test_the_onnx_export_fuses_attention(embedders):
    # One Attention op per layer: the unfused sdpa export ran 48 MatMuls (ONNX fp32 was no
    # faster than torch); the fused graph is what the speed figures in the docs were measured on.
    import onnx

    embedders.get(EncoderIdentity(MODEL, "onnx", "fp32"))
    graph = onnx.load(str(embed.onnx_dir(embedders.cache_dir, MODEL, "fp32") / "model.onnx")).graph
    ops = [n.op_type for n in graph.node]
    assert ops.count("Attention") == 6 and ops.count("MatMul") == 18


@pytest.mark.parametrize("flags, full_range", [({"avx2", "avx512_vnni"}, True), ({"avx2", "amx_int8"}, True),
                                               ({"avx2", "fma"}, False)])
def test_int8_weights_are_8_bit_only_where_the_cpu_does_not_saturate(monkeypatch, tmp_path, flags, full_range):
    monkeypatch.setattr(embed, "cpu_info", lambda: ("a cpu", flags))
    calls = {}
    monkeypatch.setattr("onnxruntime.quantization.quantize_dynamic", lambda *a, **k: calls.update(k))
    embed._quantize(tmp_path / "fp32.onnx", tmp_path / "int8.onnx")
    assert calls["reduce_range"] is (not full_range) and calls["per_channel"] is True
    # Two builds, never one loaded for the other: a data directory moved to the other kind of CPU builds its own.
    name = embed.onnx_dir(tmp_path, MODEL, "int8").name
    assert name.startswith("onnx-int8-7bit-") is (not full_range)


def test_a_build_that_does_not_reproduce_fp32_is_never_published(embedders, tmp_path, monkeypatch):
    reference = embedders.get(EncoderIdentity(MODEL, "torch", "fp32"))
    real = embed.OnnxEmbedder.encode
    monkeypatch.setattr(embed.OnnxEmbedder, "encode", lambda self, texts: np.roll(real(self, texts), 1, axis=1))
    with pytest.raises(embed.ExportRejected, match="cosine"):
        embed.build_onnx(tmp_path, MODEL, "fp32", reference)
    assert not any(p.name.endswith("meta.json") for p in tmp_path.rglob("*"))


# -- auto ---------------------------------------------------------------------------
class FakeEncoder:
    """Deterministic unit vectors per text; `noise` makes a broken variant."""

    dimension = 8

    def __init__(self, identity: EncoderIdentity, noise: bool = False) -> None:
        self.name, self.backend, self.precision = identity.model, identity.backend, identity.precision
        self.noise = noise

    def encode(self, texts):
        rows = []
        for t in texts:
            seed = int(hashlib.sha256((t + ("noise" if self.noise else "")).encode()).hexdigest()[:8], 16)
            v = np.random.default_rng(seed).normal(size=self.dimension)
            rows.append(v / np.linalg.norm(v))
        return np.array(rows, dtype=np.float32)


GATE = {"models": {MODEL: {"eligible": ["torch-fp32", "onnx-fp32", "onnx-int8"]}}}


def _registry(tmp_path, speeds, broken=(), gate=GATE, probe_calls=None):
    def probe(loaded):
        if probe_calls is not None:
            probe_calls.append(sorted(i.variant for i in loaded))
        return {i: speeds[i.variant] for i in loaded}

    return EmbedderRegistry(backend="auto", precision="auto", cache_dir=tmp_path, gate=gate, probe=probe,
                            loader=lambda i: FakeEncoder(i, noise=i.variant in broken))


def test_auto_picks_the_fastest_eligible_variant_and_remembers_it(tmp_path):
    calls: list = []
    speeds = {"torch-fp32": 10.0, "onnx-fp32": 11.0, "onnx-int8": 25.0, "torch-bf16": 99.0}
    registry = _registry(tmp_path, speeds, probe_calls=calls)
    assert registry.resolve(MODEL) == EncoderIdentity(MODEL, "onnx", "int8")
    assert calls == [["onnx-fp32", "onnx-int8", "torch-fp32"]]  # bf16: not in the gate, never timed
    decision = registry.decisions[(MODEL, "auto", "auto")]
    assert decision["probed"]["onnx-int8"] == 25.0 and "torch-bf16" in decision["skipped"]
    # A later start on the same machine reads the decision instead of probing again.
    again = _registry(tmp_path, {v: 1.0 for v in speeds}, probe_calls=calls)
    assert again.resolve(MODEL) == EncoderIdentity(MODEL, "onnx", "int8") and len(calls) == 1


def test_auto_never_chooses_a_variant_whose_vectors_disagree_with_fp32(tmp_path):
    registry = _registry(tmp_path, {"torch-fp32": 10.0, "onnx-fp32": 11.0, "onnx-int8": 50.0}, broken={"onnx-int8"})
    assert registry.resolve(MODEL) == EncoderIdentity(MODEL, "onnx", "fp32")
    assert "cosine" in registry.decisions[(MODEL, "auto", "auto")]["failed"]["onnx-int8"]


def test_a_model_the_gate_never_measured_gets_only_fp32_variants(tmp_path):
    registry = _registry(tmp_path, {"torch-fp32": 10.0, "onnx-fp32": 9.0, "onnx-int8": 50.0}, gate={"models": {}})
    assert registry.resolve(MODEL) == EncoderIdentity(MODEL, "torch", "fp32")


def test_pinned_settings_narrow_auto_or_skip_it(tmp_path):
    speeds = {"torch-fp32": 10.0, "onnx-fp32": 11.0, "onnx-int8": 25.0}
    registry = _registry(tmp_path, speeds)
    assert registry.resolve(MODEL, "torch", "auto") == EncoderIdentity(MODEL, "torch", "fp32")
    assert registry.resolve(MODEL, "auto", "fp32") == EncoderIdentity(MODEL, "onnx", "fp32")
    # Both pinned: the operator's variant, even one the gate left out.
    assert registry.resolve(MODEL, "torch", "bf16") == EncoderIdentity(MODEL, "torch", "bf16")


@pytest.mark.parametrize("profile, device, expected", [
    ({"bf16_native": False, "cuda": False}, "cpu", {"torch-fp32", "onnx-fp32", "onnx-int8"}),
    ({"bf16_native": True, "cuda": False}, "cpu", {"torch-fp32", "torch-bf16", "onnx-fp32", "onnx-int8"}),
    ({"bf16_native": False, "cuda": True}, "cuda", {"torch-fp32", "torch-bf16", "onnx-fp32"}),
])
def test_capabilities_decide_which_variants_are_timed(profile, device, expected):
    gate = {"models": {MODEL: {"eligible": ["torch-fp32", "torch-bf16", "onnx-fp32", "onnx-int8"]}}}
    found, skipped = encoder_choice.candidates(MODEL, "auto", "auto", device, gate, profile)
    assert {i.variant for i in found} == expected and set(skipped) == {"torch-fp32", "torch-bf16", "onnx-fp32",
                                                                       "onnx-int8"} - expected


def test_the_shipped_gate_comes_from_a_measurement():
    gate = encoder_choice.load_gate()
    entry = gate["models"][MODEL]
    assert "torch-fp32" in entry["eligible"] and entry["max_ndcg_drop"] == 0.005
    ref = entry["variants"]["torch-fp32"]["ndcg@10"]
    for variant, row in entry["variants"].items():
        assert (variant in entry["eligible"]) == (row["ndcg@10"] >= ref - entry["max_ndcg_drop"])
