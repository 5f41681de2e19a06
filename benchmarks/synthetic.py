"""Unique chunk texts recombined from a BEIR corpus's sentences, for the benchmarks that
load an index to a given size (latency, ingest)."""

from __future__ import annotations

import random
import re

from benchmarks.common import BeirDataset
from pipelines.chunk import document_title, embedding_text

# BEIR corpora split into sentences at a terminal mark followed by a capital/digit/bracket.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\[])")


class ChunkSynthesizer:
    """Unique paragraphs of min_chars..max_chars built from the corpus's sentences.

    Every paragraph joins at least two sentences of at most half the chunk size, so
    the length distribution stays the same from the first chunk to the last (a
    drifting mean chunk length would make the service re-encode the whole index's
    BM25 vectors, which is a real cost but not the one measured here), and the
    number of distinct combinations dwarfs any level.
    """

    def __init__(self, ds: BeirDataset, chunk_chars: int, seed: int) -> None:
        self.max_chars = chunk_chars
        # Two paragraphs of more than half the limit never fit in one chunk together.
        self.min_chars = chunk_chars // 2 + 2
        pool: dict[str, None] = {}
        for doc in ds.corpus.values():
            for sentence in _SENTENCE_END.split(doc.get("text") or ""):
                sentence = " ".join(sentence.split())
                if sentence and not sentence.endswith((".", "!", "?")):
                    sentence += "."  # a line without a stop may be classed a Title, which starts a new section
                if 30 <= len(sentence) <= (chunk_chars - 1) // 2:
                    pool[sentence] = None
        if len(pool) < 20:
            raise SystemExit(f"{ds.name}: only {len(pool)} usable sentences; need a bigger corpus to synthesize chunks")
        self.sentences = list(pool)
        self.rng = random.Random(seed)
        self.seen: set[str] = set()
        self.documents_made = 0

    def paragraph(self) -> str:
        for _ in range(10_000):
            parts, length = [], -1
            while length < self.min_chars:
                sentence = self.rng.choice(self.sentences)
                parts.append(sentence)
                length += len(sentence) + 1
            text = " ".join(parts)
            if length <= self.max_chars and text not in self.seen:
                self.seen.add(text)
                return text
        raise RuntimeError("cannot synthesize more unique chunks from this corpus")

    def documents(self, count: int, per_doc: int) -> list[tuple[str, list[str]]]:
        out = []
        for _ in range(count):
            self.documents_made += 1
            out.append((f"syn-{self.documents_made:06d}", [self.paragraph() for _ in range(per_doc)]))
        return out


def embedded_texts(documents: list[tuple[str, list[str]]]) -> list[str]:
    """What the model embeds for these documents' chunks (one paragraph each) under the default
    index settings: title vectors put the document's title (here its first paragraph) in front of
    every chunk. An encode ceiling measured on anything else is not the uploads' work."""
    return [embedding_text(document_title("\n\n".join(paragraphs)), p) for _, paragraphs in documents
            for p in paragraphs]
