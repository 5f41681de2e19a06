"""Typed values passed between the pure pipeline stages."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ParsedElement:
    text: str
    category: str
    page: int | None = None


@dataclass(frozen=True)
class ParsedDocument:
    media_type: str
    elements: list[ParsedElement] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n\n".join(e.text for e in self.elements)


@dataclass(frozen=True)
class ChunkDraft:
    ordinal: int
    text: str
    content_hash: str
    page: int | None = None
    element_type: str | None = None
    section: str | None = None


@dataclass(frozen=True)
class SparseVec:
    indices: list[int]
    values: list[float]
