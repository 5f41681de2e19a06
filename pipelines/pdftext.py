"""A PDF's text layer -> elements, read the way unstructured's "fast" strategy reads it.

Why not `unstructured.partition.pdf.partition_pdf(strategy="fast")`: in unstructured
0.27 that module imports unstructured_inference at import time, even for its pdfminer
path, and unstructured-inference requires timm -> torchvision, whose PyPI build breaks
beside the CPU torch this service pins (transformers, hence sentence-transformers,
then fails to import). So no `pip install` of the pdf extra gives a working service.

The fast path is assembled here from the parts of unstructured it is made of, none of
which import unstructured_inference: its hardened pdfminer page reader (capped CMaps,
pikepdf repair of broken pages), its fake-bold de-duplication, its whitespace cleaner,
its text classifier (Title / NarrativeText / ListItem / Header / Footer ...) and its
reading-order sort. What it leaves out is what only a layout model or OCR gives.
"""

from __future__ import annotations

import io
import re

from unstructured.cleaners.core import clean_extra_whitespace
from unstructured.documents.coordinates import PixelSpace
from unstructured.documents.elements import Element, ListItem
from unstructured.nlp.patterns import PARAGRAPH_PATTERN
from unstructured.partition.pdf_image.pdfminer_utils import (
    PDFMinerConfig,
    get_text_with_deduplication,
    open_pdfminer_pages_generator,
    rect_to_bbox,
)
from unstructured.partition.text import element_from_text
from unstructured.partition.utils.config import env_config
from unstructured.partition.utils.constants import SORT_MODE_BASIC, SORT_MODE_XY_CUT
from unstructured.partition.utils.sorting import sort_page_elements
from unstructured.patches.pdfminer import patch_psparser

from pipelines.types import ParsedElement

# unstructured.partition.pdf applies this on import: without it pdfminer "repairs"
# PDFs that are not broken.
patch_psparser()

# partition_pdf's default; pdfminer's own (0.1) glues words of tightly set text together.
_LAYOUT = PDFMinerConfig(word_margin=0.185)


def pdf_elements(data: bytes) -> list[ParsedElement]:
    """Elements of every page, in reading order, with their 1-based page number."""
    elements: list[ParsedElement] = []
    pages = open_pdfminer_pages_generator(io.BytesIO(data), pdfminer_config=_LAYOUT)
    for page_number, (_page, layout) in enumerate(pages, start=1):
        elements += [ParsedElement(text=e.text, category=e.category, page=page_number)
                     for e in _page_elements(layout) if e.text.strip()]  # a bare bullet has none
    return elements


def _page_elements(layout) -> list[Element]:
    system = PixelSpace(width=layout.width, height=layout.height)
    found: list[Element] = []
    for item in layout:
        x1, y1, x2, y2 = rect_to_bbox(item.bbox, layout.height)
        text = get_text_with_deduplication(item, env_config.PDF_CHAR_DUPLICATE_THRESHOLD)
        # a text box is one paragraph; loose characters (in a figure) may hold several
        snippets = [text] if hasattr(item, "get_text") else re.split(PARAGRAPH_PATTERN, text)
        for snippet in snippets:
            snippet = clean_extra_whitespace(snippet)
            if snippet.strip():
                points = ((x1, y1), (x1, y2), (x2, y2), (x2, y1))
                found.append(element_from_text(snippet, coordinates=points, coordinate_system=system))
    # the basic sort first makes the xy-cut deterministic (as in partition_pdf)
    return sort_page_elements(sort_page_elements(_join_list_items(found), SORT_MODE_BASIC), SORT_MODE_XY_CUT)


def _join_list_items(elements: list[Element]) -> list[Element]:
    """pdfminer often boxes the wrapped lines of a list item apart from its first line; a
    box that starts within the item's box (20% wider, 30% taller, as partition_pdf allows)
    is the rest of the item, so one ListItem holds the item's whole text."""
    joined: list[Element] = []
    item_box = None
    for element in elements:
        (x1, y1), _, (x2, y2), _ = element.metadata.coordinates.points
        if isinstance(element, ListItem):
            joined.append(element)
            item_box = (x1, y1, x2, y2)
            continue
        if item_box is not None:
            ix1, iy1, ix2, iy2 = item_box
            width, height = ix2 - ix1, iy2 - iy1
            if ix1 <= x1 and x2 < ix2 + 0.2 * width and iy1 - 0.3 * height < y1 < iy2 + 0.3 * height:
                item = joined[-1]
                item.text = f"{item.text} {element.text}".strip()
                continue
        item_box = None
        joined.append(element)
    return joined
