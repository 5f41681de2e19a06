"""Chunk boundaries survive an insertion (measured by the upload's `chunks_embedded`),
and headings stay the `section` of every chunk under them."""

from __future__ import annotations

import random

from benchmarks.parse_speed import heading, paragraph


def _paragraphs(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [paragraph(rng) for _ in range(n)]


def test_inserting_a_paragraph_near_the_start_re_embeds_at_most_a_quarter(api):
    index_id = api.create_index("stable")["id"]
    paragraphs = _paragraphs(30, seed=11)
    v1 = api.upload(index_id, "notes.txt", "\n\n".join(paragraphs).encode()).json()
    assert v1["chunks_embedded"] == v1["chunk_count"] >= 8

    inserted = paragraphs[:1] + _paragraphs(1, seed=99) + paragraphs[1:]
    r = api.upload(index_id, "notes.txt", "\n\n".join(inserted).encode())
    assert r.status_code == 201, r.text
    v2 = r.json()
    assert v2["version"] == 2
    assert 1 <= v2["chunks_embedded"] <= v2["chunk_count"] / 4
    assert v2["chunks_reused"] == v2["chunk_count"] - v2["chunks_embedded"]


def test_every_chunk_of_a_section_carries_its_heading(api):
    rng = random.Random(5)
    titles = [heading(rng) for _ in range(4)]
    markdown = "\n\n".join(f"## {t}\n\n" + "\n\n".join(paragraph(rng) for _ in range(8)) for t in titles)
    index_id = api.create_index("sections", chunk_max_characters=400)["id"]
    v1 = api.upload(index_id, "guide.md", markdown.encode()).json()
    chunks = api.get(f"/v1/indexes/{index_id}/documents/{v1['id']}/versions/1").json()["chunks"]
    assert len(chunks) > 2 * len(titles)  # long sections span several chunks
    assert [c["section"] for c in chunks] == sorted((c["section"] for c in chunks), key=titles.index)
    for c in chunks:
        assert c["section"] in titles and len(c["text"]) <= 400
    firsts = {c["section"]: c["text"] for c in reversed(chunks)}
    assert all(firsts[t].startswith(t) for t in titles)  # the heading text itself opens its section
