"""Fast, linear parsers for the text-like formats (text, Markdown, HTML, CSV, JSON).

(Each parser imports its library - markdown-it, lxml, unstructured's text helpers - inside
itself, so loading this module for one format does not load the others'.)

Why not unstructured's partitioners for these (profiled with cProfile on 0.1 MB
of each, unstructured 0.27): 85-95 % of partition_text / partition_md /
partition_html time is spaCy (tok2vec, tagger, parser) run once per element by
`is_possible_narrative_text` -> `exceeds_cap_ratio` / `sentence_count` ->
`sent_tokenize`, i.e. ~0.01-0.04 MB/s; partition_csv builds one HTML table
that `chunk_by_title` then re-measures row by row (1.1 s per 0.1 MB of a
60-column CSV, and worse than linear); and libxml2 without `huge_tree` drops a
text node over 10 MB, so a 10 MB one-paragraph HTML page came back empty.

Here each format is read by a plain structural parser (markdown-it-py, lxml
with huge_tree, the csv module, json) straight into the element categories the
chunker keys on: Title (headings; title-like lines in plain text), ListItem,
Table (one element per row), NarrativeText. Plain text keeps unstructured's
own cheap pieces (its paragraph grouper, bullet and numbered-list patterns);
only the per-element NLP is replaced by regex rules. Measured with
`python -m benchmarks.parse_speed` (numbers in docs/operations.md).
"""

from __future__ import annotations

import csv
import io
import re
from typing import Iterator

from pipelines.types import ParsedElement

_NARRATIVE = "NarrativeText"
_TITLE_MAX_WORDS = 12  # unstructured's title_max_word_length
_TWO_SENTENCES = re.compile(r"\w{2,}[.!?]\s+\w")
_ENDS_LIKE_PROSE = re.compile(r"[.!?,;]['\")\]]*$")


# -- plain text ---------------------------------------------------------------
def _looks_like_title(line: str) -> bool:
    """unstructured's is_possible_title without the spaCy sentence split: short, no
    sentence punctuation at the end, not two sentences, mostly letters."""
    from unstructured.partition.text_type import under_non_alpha_ratio

    return (len(line) <= 200 and len(line.split(" ")) <= _TITLE_MAX_WORDS and not line.isnumeric()
            and _ENDS_LIKE_PROSE.search(line) is None and _TWO_SENTENCES.search(line) is None
            and not under_non_alpha_ratio(line, threshold=0.5))


def text_elements(text: str) -> list[ParsedElement]:
    from unstructured.cleaners.core import auto_paragraph_grouper, clean_bullets
    from unstructured.partition.text_type import is_bulleted_text, is_possible_numbered_list

    elements = []
    # The same paragraph rules as partition_text: wrapped lines are re-joined, then one
    # paragraph per line.
    for paragraph in re.split(r"\s*\n\s*", auto_paragraph_grouper(text).strip()):
        paragraph = paragraph.strip()
        if not paragraph:
            continue
        if is_bulleted_text(paragraph):  # (a lone bullet character cleans to nothing: skipped)
            if item := clean_bullets(paragraph):
                elements.append(ParsedElement(item, "ListItem"))
        elif is_possible_numbered_list(paragraph):
            elements.append(ParsedElement(paragraph, "ListItem"))
        else:
            elements.append(ParsedElement(paragraph, "Title" if _looks_like_title(paragraph) else _NARRATIVE))
    return elements


# -- Markdown ------------------------------------------------------------------
def _inline_text(token) -> str:
    parts = []
    for child in token.children or []:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif child.type == "image":
            parts.append(child.content)  # the alt text
    return "".join(parts).strip()


def markdown_elements(text: str) -> list[ParsedElement]:
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    elements: list[ParsedElement] = []
    in_heading = list_depth = 0
    row: list[str] | None = None
    for tok in tokens:
        kind = tok.type
        if kind == "heading_open":
            in_heading += 1
        elif kind == "heading_close":
            in_heading -= 1
        elif kind in ("bullet_list_open", "ordered_list_open"):
            list_depth += 1
        elif kind in ("bullet_list_close", "ordered_list_close"):
            list_depth -= 1
        elif kind == "tr_open":
            row = []
        elif kind == "tr_close":
            cells = [c for c in row or [] if c]
            if cells:
                elements.append(ParsedElement(" | ".join(cells), "Table"))
            row = None
        elif kind == "inline":
            content = _inline_text(tok)
            if row is not None:
                row.append(content)
            elif content:
                category = "Title" if in_heading else "ListItem" if list_depth else _NARRATIVE
                elements.append(ParsedElement(content, category))
        elif kind in ("fence", "code_block") and tok.content.strip():
            elements.append(ParsedElement(tok.content.strip(), "CodeSnippet"))
        elif kind == "html_block":
            elements.extend(html_elements(tok.content.encode("utf-8")))
    return elements


# -- HTML ------------------------------------------------------------------------
_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
_BLOCKS = _HEADINGS | {
    "address", "article", "aside", "blockquote", "body", "caption", "dd", "details", "dialog", "div", "dl", "dt",
    "fieldset", "figcaption", "figure", "footer", "form", "header", "hgroup", "hr", "html", "li", "main", "menu",
    "nav", "ol", "p", "pre", "section", "summary", "table", "tbody", "tfoot", "thead", "ul", "tr",
}
_CELL = "\x1f"  # cell separator inside a row's buffer (a control character page text does not use)
_SKIPPED = {"head", "script", "style", "noscript", "template", "svg", "math", "iframe", "object", "select", "button"}


def _category(tag: str | None) -> str:
    if tag in _HEADINGS:
        return "Title"
    return {"li": "ListItem", "tr": "Table", "pre": "CodeSnippet"}.get(tag or "", _NARRATIVE)


def html_elements(data: bytes) -> list[ParsedElement]:
    """One element per block (heading, paragraph, list item, table row, ...), in order."""
    import lxml.html
    from lxml import etree

    parser = lxml.html.HTMLParser(encoding="utf-8", huge_tree=True, remove_comments=True, remove_pis=True)
    try:
        root = lxml.html.document_fromstring(data, parser=parser)
    except etree.ParserError:  # nothing but whitespace or comments
        return []
    elements: list[ParsedElement] = []
    buf: list[str] = []
    blocks: list[str] = []  # open block tags, innermost last
    row_depth = 0  # inside a <tr>, nested blocks are part of the row's text

    def flush() -> None:
        tag = blocks[-1] if blocks else None
        raw = "".join(buf)
        buf.clear()
        if tag == "tr":
            text = " | ".join(c for c in (" ".join(cell.split()) for cell in raw.split(_CELL)) if c)
        else:
            text = raw.strip("\n") if tag == "pre" else " ".join(raw.split())
        if text.strip():
            elements.append(ParsedElement(text, _category(tag)))

    walker = etree.iterwalk(root, events=("start", "end"))
    for event, el in walker:
        tag = el.tag.lower() if isinstance(el.tag, str) else ""
        if event == "start":
            if tag in _SKIPPED:
                walker.skip_subtree()
                continue
            if tag in ("td", "th") and row_depth:
                buf.append(_CELL)
            elif tag in _BLOCKS and not row_depth:
                flush()
                blocks.append(tag)
            elif tag in _BLOCKS or tag == "br":
                buf.append(" ")
            if tag == "tr":
                row_depth += 1
            if el.text:
                buf.append(el.text)
        else:
            if tag == "tr":
                row_depth -= 1
            if tag not in _SKIPPED and tag in _BLOCKS and not row_depth:
                flush()
                blocks.pop()
            if el.tail:
                buf.append(el.tail)
    flush()
    return elements


# -- CSV -----------------------------------------------------------------------------
def csv_elements(text: str) -> list[ParsedElement]:
    """Header row as the Title (so every chunk of rows names its columns), one Table element per row."""
    try:
        dialect = csv.Sniffer().sniff(text[:65536], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    # A cell may be as long as the file (the default limit, 128 KiB, would refuse valid files).
    csv.field_size_limit(max(csv.field_size_limit(), len(text) + 1))
    elements = []
    for n, cells in enumerate(csv.reader(io.StringIO(text, newline=""), dialect)):
        values = [c.strip() for c in cells if c.strip()]
        if values:
            elements.append(ParsedElement(" | ".join(values), "Title" if n == 0 else "Table"))
    return elements


# -- JSON --------------------------------------------------------------------------------
def _flatten_json(value: object, path: str = "") -> Iterator[str]:
    """JSON is not an unstructured element format: one 'path: value' line per leaf."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _flatten_json(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _flatten_json(v, f"{path}[{i}]")
    else:
        yield f"{path}: {value}" if path else str(value)


def json_elements(value: object) -> list[ParsedElement]:
    return [ParsedElement(line, _NARRATIVE) for line in _flatten_json(value) if line.strip()]
