"""Preparing an upload for indexing: the cheap checks (format, emptiness, zip bombs), parsing and
chunking, and the chunk rows of a version. Pure of the service context, so the parser pool's
worker processes import it without the rest of the service."""

from __future__ import annotations

import hashlib
import io
import uuid
import zipfile
from dataclasses import dataclass, replace

from pipelines.chunk import chunk_elements
from pipelines.lexical import tokenize
from pipelines.parse import (
    ParseFailure,
    UnsupportedFormat,
    media_type_for,
    parse_document,
    parse_text,
)
from pipelines.types import ChunkDraft
from rag_service.errors import CorruptDocument, EmptyDocument, UnsupportedMediaType
from rag_service.models import Chunk, Index

POINT_NAMESPACE = uuid.UUID("6f1d8a0e-3c55-4a8e-9a57-2b1f0c9d7e41")


def point_id(collection: str, document_id: str, version: int, ordinal: int) -> str:
    return str(uuid.uuid5(POINT_NAMESPACE, f"{collection}/{document_id}/{version}/{ordinal}"))


def document_point_id(collection: str, document_id: str, version: int) -> str:
    """The id of a version's whole-document BM25 point (stores/vector.py SPARSE_DOCUMENT)."""
    return str(uuid.uuid5(POINT_NAMESPACE, f"{collection}/{document_id}/{version}/document"))


@dataclass
class PreparedUpload:
    filename: str
    media_type: str
    content_hash: str
    size: int
    text: str
    chunks: list[ChunkDraft]
    tokens: list[list[str]]


def prepare_upload(data: bytes, filename: str, max_characters: int, overlap: int) -> PreparedUpload:
    """Parse and chunk; raise a domain error for anything that must not become a version."""
    sniffed = sniff_upload(data, filename)
    try:
        parsed, raw = parse_document(data, filename, sniffed.media_type)
    except ParseFailure as exc:
        raise CorruptDocument(str(exc), filename=filename, media_type=sniffed.media_type) from None
    chunks = chunk_elements(raw, max_characters, overlap)
    if not chunks:
        raise EmptyDocument("no text could be extracted from the file", filename=filename, media_type=sniffed.media_type)
    return replace(sniffed, text=parsed.text, chunks=chunks, tokens=[tokenize(c.text) for c in chunks])


def check_unzipped_size(data: bytes, filename: str, limit_mb: int) -> None:
    """Refuse zip bombs before any parser inflates them."""
    if not data.startswith(b"PK"):
        return
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            total = sum(i.file_size for i in z.infolist())
            entries = len(z.infolist())
    except zipfile.BadZipFile:
        return  # the parse step reports a corrupt container
    if total > limit_mb * 1024 * 1024 or entries > 10_000 or (len(data) and total / len(data) > 200):
        raise CorruptDocument(
            f"the archive would inflate to {total} bytes in {entries} entries; refused as a decompression bomb",
            filename=filename, reason="decompression_bomb")


def prepare_text(text: str, max_characters: int, overlap: int) -> PreparedUpload:
    """Re-chunk a version from its stored text (a reindex with new chunking settings)."""
    chunks = chunk_elements(parse_text(text), max_characters, overlap)
    return PreparedUpload(filename="", media_type="text/plain", content_hash="", size=len(text), text=text,
                          chunks=chunks, tokens=[tokenize(c.text) for c in chunks])


def sniff_upload(data: bytes, filename: str) -> PreparedUpload:
    """The checks an asynchronous upload can answer at once; parsing happens in its job."""
    try:
        media_type = media_type_for(filename)
    except UnsupportedFormat as exc:
        raise UnsupportedMediaType(str(exc), filename=filename) from None
    if not data:
        raise EmptyDocument("the file is empty", filename=filename)
    return PreparedUpload(filename=filename, media_type=media_type, content_hash=hashlib.sha256(data).hexdigest(),
                          size=len(data), text="", chunks=[], tokens=[])


def chunk_rows(index: Index, document_id: str, version_id: str, number: int, prepared: PreparedUpload) -> list[Chunk]:
    """Chunk rows of one version in the index's collection generation (index.collection)."""
    return [
        Chunk(
            id=point_id(index.collection, document_id, number, c.ordinal),
            version_id=version_id,
            document_id=document_id,
            index_id=index.id,
            collection=index.collection,
            version=number,
            ordinal=c.ordinal,
            text=c.text,
            content_hash=c.content_hash,
            token_count=len(tokens),
            page=c.page,
            element_type=c.element_type,
            section=c.section,
        )
        for c, tokens in zip(prepared.chunks, prepared.tokens)
    ]
