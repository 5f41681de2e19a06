"""Jobs: the contract, submission under the boundary rules, and the runner.

Jobs live in SQL. A runner claims one with a compare-and-swap on its status and
lease (and FOR UPDATE SKIP LOCKED on PostgreSQL), keeps the lease alive with a
heartbeat while the job runs, and a job whose process died is claimed again
once its lease expires. Handlers are idempotent, so running one twice is safe.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import Any, Callable

from sqlalchemy import and_, func, or_, update
from sqlmodel import select

from rag_service.context import ServiceContext
from rag_service.errors import PermanentJobError, ServiceError, ValidationFailed
from rag_service.models import Job, utcnow
from rag_service.services.access import AccessService, Boundary
from rag_service.services.boundaries import BOUNDARIES, POLICY
from rag_service.services.common import (
    PRIVACY_TIERS,
    Principal,
    audit,
    fetch_page,
    get_owned,
    page_of,
)
from rag_service.services.events import emit, job_summary
from rag_service.services.job_handle import JobCancelled, JobHandle
from rag_service.services.job_params import validate_params
from rag_service.services.loops import ClaimLoops

log = logging.getLogger(__name__)

ALL_BOUNDARIES = list(BOUNDARIES)
JOB_CLASSES: dict[str, dict[str, Any]] = {
    "ingest": {"status": "live", "needs_index": True, "boundaries": ALL_BOUNDARIES,
               "description": "Parse, chunk, embed and index an uploaded version (POST …/documents?async=true)."},
    "eval": {"status": "live", "needs_index": True, "boundaries": ALL_BOUNDARIES,
             "description": "Run labelled queries (inline queries + qrels, BEIR style) against an index; store "
                            "nDCG@10, Recall@100, MRR@10 and latency percentiles per mode."},
    "reconcile": {"status": "live", "needs_index": False, "boundaries": ALL_BOUNDARIES,
                  "description": "Compare SQL with the vector store per document version (points present, count, "
                                 "live flags), finish interrupted ingestions, and repair drift."},
    "purge": {"status": "live", "needs_index": False, "boundaries": ALL_BOUNDARIES,
              "description": "Hard-delete documents soft-deleted longer than params.older_than_seconds, and drop "
                             "the vectors of versions beyond params.retain_versions."},
    "reindex": {"status": "live", "needs_index": True, "boundaries": ALL_BOUNDARIES,
                "description": "Re-embed an index with a new embedding_model and/or chunk_max_characters / "
                               "chunk_overlap into a shadow collection while the old one serves, evaluate both on "
                               "params.eval (or the index's last eval set), and swap only if nDCG@10 drops by no more "
                               "than params.max_ndcg_drop; params.rollback=true swaps back."},
    "tune": {"status": "live", "needs_index": True, "boundaries": ALL_BOUNDARIES,
             "description": "Grid-search the index's search settings (mode; for hybrid rrf_k x fusion_weights, "
                            "params.grid) on a labelled set (as eval takes), and store the winner as the index's "
                            "search defaults only if it beats the current ones with ranx's paired t-test at "
                            "p < params.alpha; the result lists every setting tried."},
    "graph_summary": {"status": "planned", "needs_index": True, "boundaries": ALL_BOUNDARIES,
                      "description": "Graph-based corpus summaries. Planned."},
    "visual_rag": {"status": "planned", "needs_index": True, "boundaries": ALL_BOUNDARIES,
                   "description": "Retrieval over page images. Planned."},
}
JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled")
RULES = [
    "Every job runs under a data_boundary (body field or X-Data-Boundary header; default computer).",
    "A job naming an index whose privacy_tier its boundary may not read is refused with 403 "
    "data_boundary_violation before anything runs.",
    "account_supercomputer_sync may read personal only when account_id matches the project's account.",
    "Planned job classes answer 501 rag_job_runner_not_live.",
]


class JobNotLive(ServiceError):
    code = "rag_job_runner_not_live"


def contract() -> dict[str, Any]:
    return {
        "job_classes": [{"job_class": name, **{k: v for k, v in spec.items() if k != "needs_index"}}
                        for name, spec in JOB_CLASSES.items()],
        "data_boundaries": list(BOUNDARIES),
        "privacy_tiers": list(PRIVACY_TIERS),
        "policy": POLICY,
        "states": list(JOB_STATES),
        "rules": RULES,
    }


def job_view(job: Job) -> dict[str, Any]:
    return {
        "id": job.id, "job_class": job.job_class, "status": job.status, "progress": job.progress,
        "data_boundary": job.data_boundary, "privacy_tier": job.privacy_tier, "account_id": job.account_id,
        "index_id": job.index_id, "params": job.params, "result": job.result, "error": job.error,
        "attempts": job.attempts, "max_attempts": job.max_attempts, "cancel_requested": bool(job.cancel_requested),
        "evidence": job.evidence, "created_at": job.created_at, "started_at": job.started_at,
        "finished_at": job.finished_at, "updated_at": job.updated_at,
    }


class JobService:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def submit(self, principal: Principal, body: dict[str, Any]) -> dict[str, Any]:
        job_class = body.get("job_class")
        spec = JOB_CLASSES.get(job_class)
        if spec is None:
            raise ValidationFailed(f"unknown job_class {job_class!r}; one of {', '.join(JOB_CLASSES)}", field="job_class")
        under = Boundary.of(body.get("data_boundary"), account_id=body.get("account_id"))
        boundary = under.name
        if spec["status"] != "live":
            raise JobNotLive(f"job class {job_class!r} is planned, not live", job_class=job_class)
        params = body.get("params") or {}
        if not isinstance(params, dict):
            raise ValidationFailed("params must be a JSON object", field="params")
        validate_params(job_class, params)
        index_id, tier = body.get("index_id"), body.get("privacy_tier")
        if tier is not None and tier not in PRIVACY_TIERS:
            raise ValidationFailed(f"privacy_tier must be one of {', '.join(PRIVACY_TIERS)}", field="privacy_tier")
        if spec["needs_index"] and not index_id:
            raise ValidationFailed(f"job class {job_class!r} needs index_id", field="index_id")
        # The access gate: the index (id or name) and any declared tier, before the job row exists.
        gate = AccessService(self.ctx)
        tiers: set[str] = {tier} if tier else set()
        if index_id:
            index = gate.authorize(principal, index_id, "job", under).index
            index_id = index.id
            tiers.add(index.privacy_tier)
        gate.authorize_tiers(principal, "job", under, tiers, "job", None, job_class=job_class, index_id=index_id)
        with self.ctx.db.session() as s:
            job = Job(
                project_id=principal.project_id, job_class=job_class, data_boundary=boundary,
                privacy_tier=tier or (next(iter(tiers)) if tiers else None), account_id=body.get("account_id"),
                index_id=index_id, params=params, created_by_key_id=principal.key_id,
                evidence={"data_boundary": boundary, "privacy_tiers_read": sorted(tiers), "indexes": [index_id] if index_id else []},
            )
            s.add(job)
            audit(s, principal, "job.submit", "job", job.id, job_class=job_class, data_boundary=boundary)
            s.commit()
        runner = getattr(self.ctx, "runner", None)
        if runner is not None:
            runner.wake()
        return job_view(job)

    def owned(self, principal: Principal, job_id: str) -> Job:
        return get_owned(self.ctx.db, Job, job_id, principal.project_id, "job", job_id=job_id)

    def get(self, principal: Principal, job_id: str) -> dict[str, Any]:
        return job_view(self.owned(principal, job_id))

    def list(self, principal: Principal, page: int, per_page: int, status: str | None = None) -> dict[str, Any]:
        with self.ctx.db.session() as s:
            mine = select(Job).where(Job.project_id == principal.project_id, *([Job.status == status] if status else []))
            rows, total = fetch_page(s, mine, (Job.created_at.desc(), Job.id), page, per_page)
        return page_of([job_view(j) for j in rows], total, page, per_page)

    def cancel(self, principal: Principal, job_id: str) -> dict[str, Any]:
        self.owned(principal, job_id)
        now = utcnow()
        with self.ctx.db.session() as s:
            s.exec(update(Job).where(Job.id == job_id, Job.status == "queued")
                   .values(status="cancelled", finished_at=now, updated_at=now, cancel_requested=1))
            s.exec(update(Job).where(Job.id == job_id, Job.status == "running").values(cancel_requested=1, updated_at=now))
            audit(s, principal, "job.cancel", "job", job_id)
            s.commit()
        return self.get(principal, job_id)

    def counts_by_class_and_state(self) -> dict[tuple[str, str], int]:
        with self.ctx.db.session() as s:
            rows = s.exec(select(Job.job_class, Job.status, func.count(Job.id)).group_by(Job.job_class, Job.status)).all()
        return {(c, st): n for c, st, n in rows}

    def counts_by_state(self, project_id: str) -> dict[str, int]:
        with self.ctx.db.session() as s:
            rows = s.exec(select(Job.status, func.count(Job.id)).where(Job.project_id == project_id).group_by(Job.status)).all()
        return {state: dict(rows).get(state, 0) for state in JOB_STATES}


class JobRunner(ClaimLoops):
    """Claims and runs jobs: threads in the API process, or the `rag-service worker` loop."""

    thread_name = "job-runner"

    def __init__(self, ctx: ServiceContext, lease_seconds: float = 60.0, poll_seconds: float = 0.5,
                 handlers: dict[str, Callable[[JobHandle], dict]] | None = None, concurrency: int = 1,
                 leftovers: dict[str, Callable[[Any, Job], None]] | None = None) -> None:
        # The handlers come from the composition root (rag_service.services.job_handlers.build_job_runner).
        # Several loops at once: ingest jobs of many async uploads then overlap (one parses
        # while another embeds) and share model batches, as a batch upload's files do.
        super().__init__(concurrency, poll_seconds)
        self.ctx = ctx
        self.lease_seconds = lease_seconds
        self.handlers = handlers or {}
        # Per job class: what an attempt leaves for the next one to reuse or drop (a shadow
        # collection), cleared when no attempt will come (given up, or cancelled between attempts).
        self.leftovers = leftovers or {}
        self.running: set[str] = set()

    @property
    def current_job(self) -> str | None:
        return next(iter(sorted(self.running)), None)

    # -- claiming --------------------------------------------------------------
    def _claimable(self, now):
        return or_(Job.status == "queued", and_(Job.status == "running", Job.lease_expires_at < now))

    def claim(self) -> Job | None:
        now = utcnow()
        with self.ctx.db.session() as s:
            q = select(Job.id).where(self._claimable(now)).order_by(Job.created_at).limit(5)
            if s.bind.dialect.name == "postgresql":
                q = q.with_for_update(skip_locked=True)
            candidates = list(s.exec(q).all())
            for job_id in candidates:
                claimed = s.exec(
                    update(Job).where(Job.id == job_id, self._claimable(now)).values(
                        status="running", lease_owner=self.owner,
                        lease_expires_at=now + timedelta(seconds=self.lease_seconds),
                        attempts=Job.attempts + 1, started_at=func.coalesce(Job.started_at, now), updated_at=now)
                )
                if claimed.rowcount == 1:
                    s.commit()
                    return s.get(Job, job_id)
            s.rollback()
        return None

    def run_once(self) -> bool:
        job = self.claim()
        if job is None:
            return False
        self.running.add(job.id)
        try:
            self._execute(job)
        finally:
            self.running.discard(job.id)
        return True

    def _heartbeat(self, job_id: str, done: threading.Event) -> None:
        while not done.wait(self.lease_seconds / 3):
            with self.ctx.db.session() as s:
                s.exec(update(Job).where(Job.id == job_id, Job.lease_owner == self.owner).values(
                    lease_expires_at=utcnow() + timedelta(seconds=self.lease_seconds)))
                s.commit()

    def _finish(self, job_id: str, **values: Any) -> None:
        now = utcnow()
        with self.ctx.db.session() as s:
            # Only the lease holder may finish the job (a revived duplicate loses quietly).
            finished = None if values.get("status") == "queued" else now
            done = s.exec(update(Job).where(Job.id == job_id, Job.lease_owner == self.owner)
                          .values(finished_at=finished, updated_at=now, lease_expires_at=None, **values))
            if done.rowcount == 1 and values.get("status") in ("succeeded", "failed"):
                job = s.get(Job, job_id)  # the outbox: the job's outcome commits with its event
                emit(s, job.project_id, f"job.{job.status}",
                     {"job_id": job.id, "job_class": job.job_class, "status": job.status, "index_id": job.index_id,
                      "result": job_summary(job.result), "error": job.error}, index_id=job.index_id)
            s.commit()

    def _clear_leftovers(self, job: Job) -> None:
        clear = self.leftovers.get(job.job_class)
        if clear is None:
            return
        try:
            clear(self.ctx, job)
        except Exception:  # the job still ends; what is left is logged, not fatal
            log.warning("job %s (%s): could not clear what its last attempt left", job.id, job.job_class,
                        exc_info=True)

    def _execute(self, job: Job) -> None:
        if job.cancel_requested:
            self._clear_leftovers(job)
            self._finish(job.id, status="cancelled")
            return
        if job.attempts > job.max_attempts:
            self._clear_leftovers(job)
            self._finish(job.id, status="failed", error=f"gave up after {job.max_attempts} attempts")
            return
        handler = self.handlers.get(job.job_class)
        done = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(job.id, done), daemon=True)
        beat.start()
        try:
            if handler is None:
                raise PermanentJobError(f"no handler for job class {job.job_class}")
            result = handler(JobHandle(self, job))
            self._finish(job.id, status="succeeded", progress=100, result=result, error=None)
        except JobCancelled:
            self._finish(job.id, status="cancelled")
        except PermanentJobError as exc:
            self._finish(job.id, status="failed", error=str(exc))
        except Exception as exc:
            log.exception("job %s (%s) failed", job.id, job.job_class)
            status = "queued" if job.attempts < job.max_attempts else "failed"
            self._finish(job.id, status=status, error=f"{type(exc).__name__}: {exc}")
        finally:
            done.set()
