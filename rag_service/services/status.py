"""/v1/rag/status: what is live, measured now, never claimed."""

from __future__ import annotations

import time
from typing import Any, Callable

from sqlalchemy import func
from sqlmodel import select

from rag_service.context import ServiceContext
from rag_service.models import Chunk, Document, DocumentVersion, EvalRun, Index
from rag_service.services.boundaries import BOUNDARIES, POLICY
from rag_service.services.common import PRIVACY_TIERS, Principal
from rag_service.services.delivery import owed
from rag_service.services.events import EVENT_TYPES
from rag_service.services.jobs import JOB_CLASSES, JobService


def _probe(fn: Callable[[], Any]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        detail = fn()
        out: dict[str, Any] = {"reachable": True}
        if isinstance(detail, dict):
            out.update(detail)
    except Exception as exc:
        out = {"reachable": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    out["probe_ms"] = round((time.perf_counter() - started) * 1000, 3)
    return out


class StatusService:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def _embedder_probe(self) -> dict[str, Any]:
        settings = self.ctx.settings
        model = settings.default_embedding_model
        encoder = self.ctx.embedders.resolve(model, settings.embedding_backend, settings.embedding_precision)
        vec = self.ctx.embedders.get(encoder).encode(["status probe"])
        if vec.shape[0] != 1:
            raise RuntimeError("embedder returned no vector")
        return {"model": model, "dimension": int(vec.shape[1]), "backend": encoder.backend,
                "precision": encoder.precision}

    def _encoders(self) -> dict[str, Any]:
        """What new indexes get, how `auto` decided it (probe numbers, skipped variants), what is loaded."""
        settings, registry = self.ctx.settings, self.ctx.embedders
        decisions = [{k: v for k, v in d.items() if k != "requested"} | {"requested": {"backend": b, "precision": p}}
                     for (m, b, p), d in registry.decisions.items()]
        return {"requested": {"backend": settings.embedding_backend, "precision": settings.embedding_precision},
                "decisions": decisions, "loaded": registry.loaded_identities()}

    def _runner_probe(self) -> dict[str, Any]:
        runner = getattr(self.ctx, "runner", None)
        if runner is None or not runner.alive():
            raise RuntimeError("no job runner in this process (rag-service worker processes may still run jobs)")
        return {"owner": runner.owner, "current_job": runner.current_job,
                "last_loop_s_ago": round(time.time() - (runner.last_heartbeat or time.time()), 3)}

    def _deliverer_probe(self) -> dict[str, Any]:
        deliverer = getattr(self.ctx, "deliverer", None)
        if deliverer is None or not deliverer.alive():
            raise RuntimeError("no webhook deliverer in this process (rag-service worker processes may still deliver)")
        pending, oldest = owed(self.ctx)
        return {"owner": deliverer.owner, "deliveries_pending": pending, "oldest_pending_s": round(oldest, 3)}

    def _reranker_probe(self) -> dict[str, Any]:
        self.ctx.reranker.load()  # the context's reranker: the one searches use
        return {"model": self.ctx.settings.rerank_model}

    def _optional(self, configured: bool, probe: Callable[[], Any]) -> dict[str, Any]:
        """An optional component is probed only when configured; one configured and broken
        degrades the status like any other (a mode is never `live` on a component that fails)."""
        return _probe(probe) | {"configured": True} if configured else {"configured": False, "reachable": False}

    def status(self, principal: Principal | None) -> dict[str, Any]:
        ctx = self.ctx
        components = {
            "metadata_db": _probe(ctx.db.ping) | {"kind": ctx.db.engine.dialect.name},
            "vector_store": _probe(ctx.vectors.ping) | {"kind": ctx.vectors.kind},
            "embedder": _probe(self._embedder_probe),
            # RAG_JOB_RUNNER=off: `rag-service worker` processes run the jobs, not this one.
            "job_runner": self._optional(ctx.settings.job_runner == "inprocess", self._runner_probe),
            "reranker": self._optional(bool(ctx.settings.rerank_model), self._reranker_probe),
            # RAG_WEBHOOK_DELIVERY=off: `rag-service worker` processes deliver, not this one.
            "webhook_deliverer": self._optional(ctx.settings.webhook_delivery == "inprocess", self._deliverer_probe),
        }
        ok = all(c["reachable"] for c in components.values() if c.get("configured", True))
        if not ctx.settings.rerank_model:
            rerank = "available_when_configured"
        else:
            rerank = "live" if components["reranker"]["reachable"] else "unavailable"
        retrieval_ok = components["vector_store"]["reachable"] and components["metadata_db"]["reachable"]
        modes = {
            "dense": "live" if retrieval_ok and components["embedder"]["reachable"] else "unavailable",
            "lexical": "live" if retrieval_ok else "unavailable",
            "hybrid": "live" if retrieval_ok and components["embedder"]["reachable"] else "unavailable",
            "rerank": rerank,
            "graph": "planned",
            "visual": "planned",
        }
        models = {ctx.settings.default_embedding_model}
        try:
            with ctx.db.session() as s:
                models |= set(s.exec(select(Index.embedding_model).distinct()).all())
        except Exception:
            pass
        out: dict[str, Any] = {
            "status": "ok" if ok else "degraded",
            "components": components,
            "retrieval_modes": modes,
            "embedding_models": sorted(models),
            "embedding_models_loaded": ctx.embedders.loaded(),
            "encoders": self._encoders(),
            "rerank_model": ctx.settings.rerank_model,
            "data_boundaries": list(BOUNDARIES),
            "privacy_tiers": list(PRIVACY_TIERS),
            "boundary_policy": POLICY,
            "job_classes": {name: spec["status"] for name, spec in JOB_CLASSES.items()},
            # Lifecycle events (docs/operations.md): the stream reads SQL; webhooks need a deliverer.
            "events": {
                "event_stream": "live" if components["metadata_db"]["reachable"] else "unavailable",
                "webhooks": ("available_when_configured" if ctx.settings.webhook_delivery != "inprocess"
                             else "live" if components["webhook_deliverer"]["reachable"] else "unavailable"),
                "event_types": list(EVENT_TYPES),
                "retention_hours": ctx.settings.event_retention_hours,
            },
        }
        if principal is not None and components["metadata_db"]["reachable"]:
            out["project"] = self._project(principal)
        return out

    def _project(self, principal: Principal) -> dict[str, Any]:
        pid = principal.project_id
        with self.ctx.db.session() as s:
            index_ids = list(s.exec(select(Index.id).where(Index.project_id == pid)).all())
            docs = s.exec(select(func.count(Document.id)).where(Document.project_id == pid, Document.deleted_at.is_(None))).one()
            versions = s.exec(select(func.count(DocumentVersion.id)).join(Document).where(Document.project_id == pid)).one()
            chunks = s.exec(select(func.count(Chunk.id)).join(Index, Index.collection == Chunk.collection)
                            .where(Index.project_id == pid)).one()
            evals = {}
            for index_id in index_ids:
                run = s.exec(select(EvalRun).where(EvalRun.index_id == index_id).order_by(EvalRun.created_at.desc())).first()
                if run:
                    evals[index_id] = {"job_id": run.job_id, "created_at": run.created_at, "metrics": run.metrics}
        return {"indexes": len(index_ids), "documents": docs, "versions": versions, "chunks": chunks,
                "jobs": JobService(self.ctx).counts_by_state(pid), "latest_eval": evals}
