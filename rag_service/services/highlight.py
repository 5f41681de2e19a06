"""Highlights: the words of a hit whose stem is a query term, marked with <em> in a short
snippet. The snippet is the chunk's own text; a client that renders it as HTML must escape
everything but the <em> marks."""

from __future__ import annotations

import re
from functools import lru_cache

from pipelines.lexical import tokenize


@lru_cache(maxsize=100_000)
def stem_of(word: str) -> str | None:
    tokens = tokenize(word)
    return tokens[0] if tokens else None


_WORD = re.compile(r"\w+")


def highlight(text: str, query_stems: set[str], width: int = 240) -> list[str]:
    """Mark the words whose stem is a query term, in a short snippet around the first match."""
    # One pass over the words, each stem looked up in a cache: compiling a pattern of the matching
    # words for each hit was a tenth of a lexical search's Python time.
    spans = [m.span() for m in _WORD.finditer(text) if stem_of(m.group().lower()) in query_stems]
    if not spans:
        return []
    start = max(0, spans[0][0] - width // 3)
    end = min(len(text), start + width)
    pieces, cursor = [], start
    for a, b in spans:
        if a < start or b > end:
            continue
        pieces.append(text[cursor:a] + "<em>" + text[a:b] + "</em>")
        cursor = b
    pieces.append(text[cursor:end])
    snippet = "".join(pieces).replace("\n", " ")
    return [("…" if start > 0 else "") + snippet + ("…" if end < len(text) else "")]
