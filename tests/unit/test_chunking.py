"""Content-defined, title-aware chunking (pipelines/chunk.py)."""

from __future__ import annotations

import random

import pytest

from benchmarks.parse_speed import heading, paragraph, sentence
from pipelines.chunk import chunk_elements
from pipelines.parse import parse_text
from pipelines.types import ParsedElement


def _chunks(paragraphs: list[str], max_characters: int = 1000, overlap: int = 0):
    return chunk_elements(parse_text("\n\n".join(paragraphs)), max_characters, overlap)


def _new(before, after) -> int:
    old = {c.content_hash for c in before}
    return sum(c.content_hash not in old for c in after)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("where", ["start", "middle"])
def test_one_inserted_paragraph_changes_few_chunks(seed, where):
    rng = random.Random(seed)
    paragraphs = [paragraph(rng) for _ in range(30)]
    before = _chunks(paragraphs)
    at = 1 if where == "start" else 15
    after = _chunks(paragraphs[:at] + [paragraph(rng)] + paragraphs[at:])
    assert 1 <= _new(before, after) <= len(after) / 4


def test_an_appended_paragraph_leaves_every_earlier_chunk_but_the_last_alone():
    rng = random.Random(3)
    paragraphs = [paragraph(rng) for _ in range(60)]
    before = _chunks(paragraphs)
    after = _chunks(paragraphs + [paragraph(rng)])
    assert [c.content_hash for c in after[: len(before) - 1]] == [c.content_hash for c in before[:-1]]
    assert _new(before, after) <= 2


def test_an_edit_inside_one_long_paragraph_stays_local():
    """An element longer than the budget is cut at sentences by the same content rule."""
    rng = random.Random(8)
    sentences = [sentence(rng) for _ in range(400)]
    before = _chunks([" ".join(sentences)])
    sentences[5] = "An entirely different sentence about penguins."
    after = _chunks([" ".join(sentences)])
    assert len(before) > 40 and _new(before, after) <= 3


@pytest.mark.parametrize("max_characters,overlap", [(1000, 0), (300, 60), (120, 119), (50, 10)])
def test_chunks_respect_the_size_limit_with_their_overlap(max_characters, overlap):
    rng = random.Random(1)
    text = [paragraph(rng, (1, 30)) for _ in range(40)] + ["x" * 5000, " ".join(["supercalifragilistic"] * 300)]
    chunks = _chunks(text, max_characters, overlap)
    assert chunks and all(0 < len(c.text) <= max_characters for c in chunks)
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))


def test_pieces_of_a_split_paragraph_overlap_and_whole_paragraphs_do_not():
    rng = random.Random(2)
    long_paragraph = " ".join(sentence(rng) for _ in range(30))
    short = [sentence(rng) for _ in range(8)]
    chunks = _chunks(short + [long_paragraph], 400, 80)
    first_piece = next(i for i, c in enumerate(chunks) if long_paragraph[:40] in c.text)
    for c in chunks[: first_piece + 1]:
        assert any(c.text.startswith(p[:30]) for p in short + [long_paragraph])  # no overlap prefix
    pieces = chunks[first_piece:]
    assert len(pieces) >= 3
    for prev, nxt in zip(pieces, pieces[1:]):
        assert nxt.text[:20] in prev.text[-80:]  # opens with the previous piece's last words


def test_sections_start_at_titles_and_every_chunk_of_a_section_names_it():
    rng = random.Random(4)
    elements = []
    titles = [heading(rng) for _ in range(3)]
    for t in titles:
        elements.append(ParsedElement(t, "Title"))
        elements += [ParsedElement(paragraph(rng), "NarrativeText") for _ in range(6)]
    chunks = chunk_elements(elements, 500, 0)
    assert len(chunks) > 6
    assert {c.section for c in chunks} == set(titles)
    assert all(not (a.section != b.section and b.text.split("\n\n")[0] != b.section)
               for a, b in zip(chunks, chunks[1:]))  # a new section's first chunk opens with its title


def test_stacked_titles_open_one_section_named_after_the_first():
    elements = [ParsedElement("Book", "Title"), ParsedElement("Chapter One", "Title"),
                ParsedElement("It began on a Tuesday.", "NarrativeText")]
    (chunk,) = chunk_elements(elements, 1000, 0)
    assert chunk.section == "Book" and chunk.text == "Book\n\nChapter One\n\nIt began on a Tuesday."


def test_table_rows_are_never_mixed_with_prose():
    rows = [ParsedElement(f"row {i} | value {i}", "Table") for i in range(30)]
    elements = [ParsedElement("Results", "Title"), ParsedElement("Intro text.", "NarrativeText"), *rows,
                ParsedElement("Closing remarks.", "NarrativeText")]
    chunks = chunk_elements(elements, 200, 0)
    for c in chunks:
        has_rows = "| value" in c.text
        assert has_rows == (c.element_type == "Table")
        assert not has_rows or ("Intro text." not in c.text and "Closing remarks." not in c.text)
    assert all(c.section == "Results" for c in chunks)


def test_no_elements_no_chunks():
    assert chunk_elements([], 1000, 0) == []
    assert chunk_elements([ParsedElement("   ", "NarrativeText")], 1000, 0) == []


def test_small_sections_combine_into_one_chunk_named_after_the_first():
    elements = [ParsedElement("Oceans", "Title"), ParsedElement("The Pacific is the deepest.", "NarrativeText"),
                ParsedElement("Tides", "Title"), ParsedElement("The moon drives tides.", "NarrativeText"),
                ParsedElement("Long Part", "Title")]
    elements += [ParsedElement(f"Sentence {i} of a long part, repeated to fill it.", "NarrativeText") for i in range(40)]
    chunks = chunk_elements(elements, 400, 0)
    assert chunks[0].text == "Oceans\n\nThe Pacific is the deepest.\n\nTides\n\nThe moon drives tides."
    assert chunks[0].section == "Oceans"
    assert len(chunks) > 3 and all(c.section == "Long Part" for c in chunks[1:])
