"""Chunk stage: title-aware, content-defined chunks over parsed elements.

Why not unstructured's `chunk_by_title`: it packs elements greedily, so one
paragraph inserted near the start of a document can move every later boundary,
and every chunk it moves is embedded again (vectors are cached by chunk text;
measured: up to all chunks of a 30-paragraph document, a third on average). Here a
boundary is a property of the text around it, not of its distance from the
start (content-defined chunking, as in rsync or FastCDC, at element granularity):

- A section starts at a Title; every chunk of a section carries its first title
  as `section` (consecutive titles stack). Chunks span two sections only where
  small ones are combined: a section under min(budget / 2, 500) characters takes
  the following ones in while they all fit in one chunk (as chunk_by_title's
  combine_text_under_n_chars did), named after the first.
- Inside a section, elements (paragraphs, list items, table rows; an element
  longer than the budget is first cut into sentences, then words) are packed in
  order. After a unit, the chunk is closed when the unit is an *anchor*: a
  hash of its text falls below len(unit) / target, so anchors come about
  every `target` characters whatever the element sizes. Anchors closer than `min`
  characters to the chunk start are skipped, which keeps chunks from being tiny.
  A chunk that fills the budget before any anchor is cut after its strongest
  candidate (lowest score) instead, so even forced cuts depend on content
  (TTTD's backup divisor).
- So an edit changes the chunk it falls in and, at most, the chunks up to the
  next anchor that both versions share; the rest are byte-identical and reused.
- `overlap` works as in unstructured (overlap_all=False): when an oversized
  element is split, each piece after the first starts with the last `overlap`
  characters of the previous piece. The packing budget is max_characters -
  overlap (overlap capped at half of max_characters), so a chunk with its
  overlap never exceeds max_characters.
- Tables (CSV rows, HTML/Markdown table rows) are never mixed with prose in a
  chunk; a chunk of rows is `element_type="Table"`, any other "CompositeElement".

Linear in the input: one 8-byte blake2b per unit, and a backup cut re-reads at
most the chunk it cut (each unit is read a bounded number of times).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Iterable, Iterator

from pipelines.types import ChunkDraft, ParsedElement

# Anchors every ~half budget on average; none before a quarter of it. Measured with
# `python -m benchmarks incremental`: chunks fill ~50 % of the budget and one inserted
# paragraph re-embeds one or two chunks (larger fractions filled more but resynchronised
# later: up to a third of a 30-paragraph document re-embedded).
# The chunk sizes an index (or a reindex) may ask for: every edge checks with chunking_problem.
MIN_CHUNK_CHARACTERS = 50
MAX_CHUNK_CHARACTERS = 20_000


def chunking_problem(max_characters: int, overlap: int) -> tuple[str, str] | None:
    """(field, message) when the settings are out of bounds, else None."""
    if not MIN_CHUNK_CHARACTERS <= max_characters <= MAX_CHUNK_CHARACTERS:
        return "chunk_max_characters", (f"chunk_max_characters must be between {MIN_CHUNK_CHARACTERS} "
                                        f"and {MAX_CHUNK_CHARACTERS}")
    if not 0 <= overlap < max_characters:
        return "chunk_overlap", "chunk_overlap must be >= 0 and below chunk_max_characters"
    return None


_TARGET_FRACTION = 0.5
_MIN_FRACTION = 0.25
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+|\n+")


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


TITLE_MAX_CHARACTERS = 200


def document_title(text: str) -> str:
    """A document's title for its chunk vectors: its first parsed element (the text up to the
    first blank line), cut at a word near TITLE_MAX_CHARACTERS. In BEIR-like collections it is
    the title line; in a document without one it is the opening words, context all the same."""
    first = text.strip().split("\n\n", 1)[0].strip()
    if len(first) <= TITLE_MAX_CHARACTERS:
        return first
    cut = first[:TITLE_MAX_CHARACTERS]
    return cut.rsplit(" ", 1)[0] if " " in cut else cut


def embedding_text(title: str | None, chunk_text: str) -> str:
    """What the model embeds for a chunk: the title, a blank line, the chunk, unless the chunk
    begins with the title already (the first chunk). A chunk out of its document loses the title
    that says what it is about; in front, it moved SciFact +0.017 nDCG@10 (FINDINGS.md)."""
    if not title or chunk_text.startswith(title):
        return chunk_text
    return f"{title}\n\n{chunk_text}"


@dataclass(frozen=True)
class _Unit:
    text: str
    category: str
    page: int | None
    element: int  # index of the element the unit came from (pieces of one element share it)
    first_piece: bool  # the unit starts its element
    score: float  # hash in [0, 1) over length: an anchor when below 1 / target

    @property
    def is_table(self) -> bool:
        return self.category == "Table"


def _score(text: str) -> float:
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 / max(len(text), 1)


def _cut_words(text: str, budget: int) -> Iterator[str]:
    """Greedy word packing for one sentence longer than the budget (hard cut for long words)."""
    piece = ""
    for word in text.split():
        while len(word) > budget:
            if piece:
                yield piece
                piece = ""
            yield word[:budget]
            word = word[budget:]
        if piece and len(piece) + 1 + len(word) > budget:
            yield piece
            piece = ""
        piece = f"{piece} {word}" if piece else word
    if piece:
        yield piece


def _split(text: str, budget: int) -> Iterator[str]:
    """Sentences of an oversized element; sentences over the budget are cut at words."""
    for sentence in _SENTENCE_END.split(text):
        sentence = sentence.strip()
        if not sentence:
            continue
        if len(sentence) <= budget:
            yield sentence
        else:
            yield from _cut_words(sentence, budget)


def _units(elements: Iterable[ParsedElement], budget: int) -> Iterator[_Unit]:
    for i, e in enumerate(elements):
        text = (e.text or "").strip()
        if not text:
            continue
        if len(text) <= budget:
            yield _Unit(text, e.category, e.page, i, True, _score(text))
            continue
        for n, piece in enumerate(_split(text, budget)):
            yield _Unit(piece, e.category, e.page, i, n == 0, _score(piece))


def _sections(units: Iterable[_Unit]) -> Iterator[tuple[str | None, list[_Unit]]]:
    """(first title, units) per section; titles with no body in between stack into one."""
    title: str | None = None
    current: list[_Unit] = []
    has_body = False
    for u in units:
        if u.category == "Title" and has_body:
            yield title, current
            title, current, has_body = None, [], False
        if u.category == "Title":
            title = title or u.text
        else:
            has_body = True
        current.append(u)
    if current:
        yield title, current


def _runs(sections: Iterable[tuple[str | None, list[_Unit]]], budget: int,
          combine: int) -> Iterator[tuple[str | None, list[_Unit], bool]]:
    """(title, units, merged): a section under `combine` characters takes the next ones in
    while all of them fit in one chunk (as chunk_by_title's combine_text_under_n_chars),
    so a run of one-line sections is one chunk, named after its first title."""
    title, run, size, merged = None, [], 0, False
    for section_title, units in sections:
        n = sum(len(u.text) + 2 for u in units)
        if run and size < combine and size + n <= budget and not any(u.is_table for u in run + units):
            run, size, merged = run + units, size + n, True
            continue
        if run:
            yield title, run, merged
        title, run, size, merged = section_title, units, n, False
    if run:
        yield title, run, merged


def _backup_cut(chunk: list[_Unit], minimum: int) -> int:
    """Where to close a chunk that is full before any anchor: after its strongest
    anchor candidate (lowest score) past `minimum`, so forced cuts are content-defined too."""
    best, best_score, size = len(chunk), float("inf"), -2
    for k, u in enumerate(chunk, start=1):
        size += len(u.text) + 2
        if u.category != "Title" and size >= minimum and u.score < best_score:
            best, best_score = k, u.score
    return best


def _pack(units: list[_Unit], budget: int, target: int, minimum: int) -> Iterator[list[_Unit]]:
    chunk: list[_Unit] = []
    size, i = 0, 0
    last_body: _Unit | None = None  # the chunk's last non-title unit
    while i < len(units):
        u = units[i]
        if chunk and last_body is not None and last_body.is_table != u.is_table:
            yield chunk
            chunk, size, last_body = [], 0, None
        elif chunk and size + 2 + len(u.text) > budget:
            keep = _backup_cut(chunk, minimum)
            yield chunk[:keep]
            i -= len(chunk) - keep  # the rest starts the next chunk, anchors re-judged there
            chunk, size, last_body = [], 0, None
            continue
        chunk.append(u)
        size += len(u.text) + (2 if len(chunk) > 1 else 0)
        i += 1
        if u.category != "Title":
            last_body = u
            if size >= minimum and u.score * target < 1:
                yield chunk
                chunk, size, last_body = [], 0, None
    if chunk:
        yield chunk


def _join(units: list[_Unit]) -> str:
    parts: list[str] = []
    for prev, u in zip([None, *units], units):
        if prev is not None:
            parts.append(" " if prev.element == u.element else "\n\n")
        parts.append(u.text)
    return "".join(parts)


def _tail(text: str, size: int) -> str:
    """At most the last `size` characters, from a word start when the cut falls inside a word."""
    tail = text[-size:] if size > 0 else ""
    if len(tail) < len(text) and not text[-len(tail) - 1].isspace() and " " in tail:
        tail = tail[tail.index(" ") + 1 :]
    return tail


def chunk_elements(elements: Iterable[ParsedElement], max_characters: int, overlap: int) -> list[ChunkDraft]:
    overlap = max(0, min(overlap, max_characters // 2))
    budget = max_characters - overlap
    target = max(int(budget * _TARGET_FRACTION), 1)
    minimum = int(budget * _MIN_FRACTION)
    drafts: list[ChunkDraft] = []
    previous = ""
    for title, units, merged in _runs(_sections(_units(elements, budget)), budget, min(budget // 2, 500)):
        for group in [units] if merged else _pack(units, budget, target, minimum):
            text = _join(group)
            if overlap > 1 and not group[0].first_piece and previous:
                text = f"{_tail(previous, overlap - 1)} {text}"  # -1: the joining space
            previous = text
            body = [u for u in group if u.category != "Title"]
            drafts.append(ChunkDraft(
                ordinal=len(drafts),
                text=text,
                content_hash=content_hash(text),
                page=group[0].page,
                element_type="Table" if body and all(u.is_table for u in body) else "CompositeElement",
                section=title[:200] if title else None,
            ))
    return drafts
