"""Chunk stage: unstructured's title-aware chunker over parsed elements."""

from __future__ import annotations

import hashlib

from pipelines.types import ChunkDraft


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def chunk_elements(raw_elements: list, max_characters: int, overlap: int) -> list[ChunkDraft]:
    from unstructured.chunking.title import chunk_by_title

    if not raw_elements:
        return []
    chunks = chunk_by_title(
        raw_elements,
        max_characters=max_characters,
        new_after_n_chars=max_characters,
        overlap=overlap,
        combine_text_under_n_chars=min(max_characters // 2, 500),
    )
    drafts: list[ChunkDraft] = []
    for chunk in chunks:
        text = (chunk.text or "").strip()
        if not text:
            continue
        originals = getattr(chunk.metadata, "orig_elements", None) or []
        title = next((e.text for e in originals if e.category == "Title"), None)
        drafts.append(
            ChunkDraft(
                ordinal=len(drafts),
                text=text,
                content_hash=content_hash(text),
                page=getattr(chunk.metadata, "page_number", None),
                element_type=chunk.category,
                section=title[:200] if title else None,
            )
        )
    return drafts
