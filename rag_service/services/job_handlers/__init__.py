"""The live job classes and their handlers, registered here and nowhere else: the job runner
(rag_service.services.jobs) runs what it is given and never imports a handler. A new job class is
a module in this package, a line in HANDLERS and an entry in jobs.JOB_CLASSES (its contract).

Every handler is idempotent: a job picked up again after its process died redoes only what is
not done."""

from __future__ import annotations

from typing import Any, Callable

from rag_service.context import ServiceContext
from rag_service.services import reindex
from rag_service.services.job_handle import JobHandle
from rag_service.services.job_handlers import eval, ingest, purge, reconcile, tune
from rag_service.services.jobs import JobRunner

HANDLERS: dict[str, Callable[[JobHandle], dict[str, Any]]] = {
    "ingest": ingest.run_ingest,
    "eval": eval.run_eval,
    "reconcile": reconcile.run_reconcile,
    "purge": purge.run_purge,
    "reindex": reindex.run_reindex,
    "tune": tune.run_tune,
}


# What a killed attempt leaves for the next: both keep their shadow collection's name in params.
LEFTOVERS = {"reindex": reindex.drop_left_shadow, "tune": reindex.drop_left_shadow}


def build_job_runner(ctx: ServiceContext, **options: Any) -> JobRunner:
    """The runner of the API process and of `rag-service worker`, with every live handler."""
    return JobRunner(ctx, handlers=HANDLERS, leftovers=LEFTOVERS, **options)
