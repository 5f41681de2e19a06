"""An index's own search defaults (mode, rrf_k, fusion_weights, fusion, prf, lexical_unit): what a search of that one
index uses where the request leaves a field out. Set by a `tune` job that proved them on a
labelled set (job_handlers/tune.py), or by PATCH /v1/indexes/{id} `search_defaults`; a request
field always wins. A search over several indexes uses the service's defaults: their fused
scores must be comparable, so one setting serves them all."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, select

from rag_service.config import Settings
from rag_service.db import Database
from rag_service.models import IndexSearchDefaults, utcnow
from rag_service.search_params import DEFAULTABLE, SearchDefaults, SearchParams


def stored_defaults(db: Database, index_ids: list[str]) -> dict[str, SearchDefaults]:
    if not index_ids:
        return {}
    with db.session() as s:
        rows = s.exec(select(IndexSearchDefaults).where(IndexSearchDefaults.index_id.in_(index_ids))).all()
    return {r.index_id: SearchDefaults.model_validate(r.settings) for r in rows}


def service_defaults(settings: Settings, fusion: str | None = None) -> dict[str, Any]:
    """The service's settings; the default weights are those of the fusion that runs (`fusion`,
    else the service's): RRF weighs ranks, z-score fusion weighs normalised scores."""
    fusion = fusion or settings.fusion
    weights = ([settings.zscore_dense_weight, settings.zscore_lexical_weight] if fusion == "zscore"
               else [settings.fusion_dense_weight, settings.fusion_lexical_weight])
    return {"mode": "hybrid", "rrf_k": settings.rrf_k, "fusion_weights": weights, "fusion": fusion,
            "prf": settings.prf, "lexical_unit": "document"}


def effective(settings: Settings, own: SearchDefaults | None) -> dict[str, Any]:
    """The settings a search of the index gets when the request sets none, and where each comes from."""
    values = service_defaults(settings, own.fusion if own else None)
    source = dict.fromkeys(values, "service")
    for field, value in (own.model_dump(exclude_none=True) if own else {}).items():
        values[field], source[field] = value, "index"
    return values | {"source": source}


def apply(p: SearchParams, own: SearchDefaults | None) -> tuple[SearchParams, list[str]]:
    """The request with the index's defaults in the fields it left out, and which ones were filled."""
    if own is None:
        return p, []
    given = p.model_fields_set
    update = {f: getattr(own, f) for f in DEFAULTABLE if f not in given and getattr(own, f) is not None}
    return (p.model_copy(update=update), sorted(update)) if update else (p, [])


def store(session: Session, index_id: str, defaults: SearchDefaults, source: str, job_id: str | None = None) -> None:
    """In the caller's transaction. All-null defaults remove the row: the index follows the service."""
    row = session.get(IndexSearchDefaults, index_id)
    values = defaults.model_dump(exclude_none=True)
    if not values:
        if row is not None:
            session.delete(row)
        return
    if row is None:
        row = IndexSearchDefaults(index_id=index_id)
    row.settings, row.source, row.job_id, row.updated_at = values, source, job_id, utcnow()
    session.add(row)
