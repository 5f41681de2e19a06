"""Indexes: one Qdrant collection each, reached through the alias idx_<id>."""

from __future__ import annotations

import unicodedata
from typing import Any

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import delete, select

from pipelines.chunk import chunking_problem
from rag_service.context import ServiceContext
from rag_service.errors import Conflict, ValidationFailed
from rag_service.models import Document, Index, IndexSearchDefaults, new_id, utcnow
from rag_service.search_params import SearchDefaults
from rag_service.services import search_defaults
from rag_service.services.access import AccessService
from rag_service.services.common import (
    PRIVACY_TIERS,
    Principal,
    audit,
    fetch_page,
    page_of,
    purge_documents,
)
from rag_service.services.events import emit_document, reported_version
from rag_service.services.ingestion import IngestionService
from rag_service.stores.embedder import identity_of

MUTABLE_FIELDS = {"name", "description", "privacy_tier", "bm25_k1", "bm25_b", "document_bm25_k1", "document_bm25_b",
                  "search_defaults"}


def index_view(index: Index, document_count: int, search: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "id": index.id,
        "name": index.name,
        "description": index.description,
        "privacy_tier": index.privacy_tier,
        "embedding_model": index.embedding_model,
        "embedding_dim": index.embedding_dim,
        # The encoder its vectors came from; changed only by the eval-gated reindex job.
        "encoder": identity_of(index).as_dict(),
        "chunking": {"max_characters": index.chunk_max_characters, "overlap": index.chunk_overlap},
        "bm25": {"k1": index.bm25_k1, "b": index.bm25_b, "avg_len": index.bm25_avg_len},
        # How the collection was built (changed by a reindex): titled chunk vectors, and whole-document
        # BM25 points (the lexical arm of document search; without them it is chunk BM25).
        "title_vectors": index.title_vectors,
        "document_bm25": {"enabled": index.document_bm25, "k1": index.document_bm25_k1,
                          "b": index.document_bm25_b, "avg_len": index.document_bm25_avg_len},
        "collection_alias": index.collection,
        "document_count": document_count,
        # What a search of this index alone uses where a request leaves mode / rrf_k /
        # fusion_weights out, and where each value comes from (service or index: a tune job, PATCH).
        "search_defaults": search,
        "created_at": index.created_at,
        "updated_at": index.updated_at,
    }


class IndexService:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def _validate(self, fields: dict[str, Any]) -> None:
        tier = fields.get("privacy_tier")
        if tier is not None and tier not in PRIVACY_TIERS:
            raise ValidationFailed(f"privacy_tier must be one of {', '.join(PRIVACY_TIERS)}", field="privacy_tier")
        name = fields.get("name")
        if name is not None and (not str(name).strip() or len(name) > 200):
            raise ValidationFailed("name must be 1-200 characters", field="name")
        for key, lo, hi in (("bm25_k1", 0.0, 10.0), ("bm25_b", 0.0, 1.0),
                            ("document_bm25_k1", 0.0, 10.0), ("document_bm25_b", 0.0, 1.0)):
            if key in fields and fields[key] is not None and not lo <= float(fields[key]) <= hi:
                raise ValidationFailed(f"{key} must be between {lo} and {hi}", field=key)

    def get_owned(self, principal: Principal, index_id: str) -> Index:
        """By id or name, inside the caller's project (the access gate's lookup)."""
        return AccessService(self.ctx).resolve(principal, index_id)

    def _document_counts(self, index_ids: list[str]) -> dict[str, int]:
        if not index_ids:
            return {}
        with self.ctx.db.session() as s:
            rows = s.exec(
                select(Document.index_id, func.count(Document.id))
                .where(Document.index_id.in_(index_ids), Document.deleted_at.is_(None))
                .group_by(Document.index_id)
            ).all()
        return {i: n for i, n in rows}

    def view(self, index: Index) -> dict[str, Any]:
        own = search_defaults.stored_defaults(self.ctx.db, [index.id]).get(index.id)
        return index_view(index, self._document_counts([index.id]).get(index.id, 0),
                          search_defaults.effective(self.ctx.settings, own))

    def create(self, principal: Principal, body: dict[str, Any]) -> dict[str, Any]:
        self._validate(body)
        settings = self.ctx.settings
        model = body.get("embedding_model") or settings.default_embedding_model
        max_chars = int(body.get("chunk_max_characters") or settings.default_chunk_max_characters)
        overlap = int(body.get("chunk_overlap") if body.get("chunk_overlap") is not None else settings.default_chunk_overlap)
        problem = chunking_problem(max_chars, overlap)
        if problem:
            raise ValidationFailed(problem[1], field=problem[0])
        try:
            # What `auto` (or the configured variant) resolves to now; the index keeps it from here on.
            encoder = self.ctx.embedders.resolve(model, settings.embedding_backend, settings.embedding_precision)
            dim = self.ctx.embedders.get(encoder).dimension
        except Exception as exc:
            raise ValidationFailed(
                f"embedding model {model!r} could not be loaded (no downloads at run time): {exc}",
                field="embedding_model",
            ) from None
        index_id = new_id()
        index = Index(
            id=index_id,
            project_id=principal.project_id,
            name=unicodedata.normalize("NFC", body["name"].strip()),  # looked up in NFC (services/access.py)
            description=body.get("description") or "",
            privacy_tier=body.get("privacy_tier") or "private",
            embedding_model=model,
            embedding_backend=encoder.backend,
            embedding_precision=encoder.precision,
            embedding_dim=dim,
            chunk_max_characters=max_chars,
            chunk_overlap=overlap,
            bm25_k1=float(body.get("bm25_k1") or 1.2),
            bm25_b=float(body.get("bm25_b") if body.get("bm25_b") is not None else 0.75),
            **{f: body[f] if body.get(f) is not None else getattr(settings, f)
               for f in ("title_vectors", "document_bm25", "document_bm25_k1", "document_bm25_b")},
            collection=f"idx_{index_id}",
        )
        with self.ctx.db.session() as s:
            if s.exec(select(Index.id).where(Index.project_id == principal.project_id, Index.name == index.name)).first():
                raise Conflict(f"an index named {index.name!r} already exists", field="name")
        self.ctx.vectors.ensure_collection(index.collection, dim)
        try:
            with self.ctx.db.session() as s:
                s.add(index)
                audit(s, principal, "index.create", "index", index.id, name=index.name)
                s.commit()
        except IntegrityError:
            self.ctx.vectors.drop_collection(index.collection)
            raise Conflict(f"an index named {index.name!r} already exists", field="name") from None
        return index_view(index, 0, search_defaults.effective(self.ctx.settings, None))

    def list(self, principal: Principal, page: int, per_page: int) -> dict[str, Any]:
        with self.ctx.db.session() as s:
            base = select(Index).where(Index.project_id == principal.project_id)
            rows, total = fetch_page(s, base, (Index.created_at, Index.id), page, per_page)
        counts = self._document_counts([r.id for r in rows])
        own = search_defaults.stored_defaults(self.ctx.db, [r.id for r in rows])
        views = [index_view(r, counts.get(r.id, 0), search_defaults.effective(self.ctx.settings, own.get(r.id)))
                 for r in rows]
        return page_of(views, total, page, per_page)

    def get(self, principal: Principal, index_id: str) -> dict[str, Any]:
        return self.view(self.get_owned(principal, index_id))

    def update(self, principal: Principal, index_id: str, body: dict[str, Any]) -> dict[str, Any]:
        unknown = set(body) - MUTABLE_FIELDS
        if unknown:
            raise ValidationFailed(
                f"cannot change {', '.join(sorted(unknown))}; changeable: {', '.join(sorted(MUTABLE_FIELDS))}",
                fields=sorted(unknown),
            )
        defaults = body.pop("search_defaults", None)
        self._validate(body)
        index_id = self.get_owned(principal, index_id).id
        with self.ctx.db.session() as s:
            index = s.get(Index, index_id)
            document_fields = sorted(k for k in ("document_bm25_k1", "document_bm25_b") if body.get(k) is not None)
            if document_fields and not index.document_bm25:
                raise ValidationFailed("this index has no document points (document_bm25 is off at creation): "
                                       "its document BM25 cannot be set", fields=document_fields)
            if defaults is not None:  # {} (all null) hands every field back to the service's default
                search_defaults.store(s, index_id, SearchDefaults.model_validate(defaults), "patch")
                body["search_defaults"] = defaults
            for key, value in body.items():
                if key != "search_defaults" and value is not None:
                    setattr(index, key, unicodedata.normalize("NFC", value.strip()) if key == "name" else value)
            index.updated_at = utcnow()
            s.add(index)
            audit(s, principal, "index.update", "index", index_id, changes=body)
            try:
                s.commit()
            except IntegrityError:
                raise Conflict(f"an index named {body.get('name')!r} already exists", field="name") from None
        given = {k for k, v in body.items() if v is not None}  # a null changes nothing: nothing to re-encode
        if {"bm25_k1", "bm25_b"} & given:
            IngestionService(self.ctx).reencode_lexical(index_id)
        if {"document_bm25_k1", "document_bm25_b"} & given:
            IngestionService(self.ctx).reencode_documents(index_id)
        return self.view(self.get_owned(principal, index_id))

    def delete(self, principal: Principal, index_id: str) -> None:
        index = self.get_owned(principal, index_id)
        index_id = index.id
        with self.ctx.db.session() as s:
            # Every document goes with the index: each is reported purged, in the same transaction.
            purged = [(doc, reported_version(s, doc)) for doc in s.exec(select(Document).where(Document.index_id == index_id))]
            purge_documents(s, Document.index_id == index_id)
            s.exec(delete(IndexSearchDefaults).where(IndexSearchDefaults.index_id == index_id))
            s.exec(delete(Index).where(Index.id == index_id))
            audit(s, principal, "index.delete", "index", index_id, name=index.name)
            for doc, version in purged:  # the outbox: last, then commit
                emit_document(s, "document.purged", doc, version, reason="index_deleted")
            s.commit()
        # SQL first: once the rows are gone nothing can be served from the collection.
        self.ctx.vectors.drop_collection(index.collection)
