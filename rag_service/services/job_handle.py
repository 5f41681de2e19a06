"""What a job handler is given: its job, progress reporting and cancellation. Its own module, so
handlers depend on this and never on the runner that calls them."""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import update
from sqlmodel import select

from rag_service.context import ServiceContext
from rag_service.models import Job, utcnow


class Runner(Protocol):
    """What a handler may use of the runner that calls it (rag_service.services.jobs.JobRunner)."""

    ctx: ServiceContext


class JobCancelled(Exception):
    """Raised by `progress()` once the job's cancel was requested; the runner marks it cancelled."""


class JobHandle:
    """What a handler sees: its job, progress reporting and cancellation."""

    def __init__(self, runner: Runner, job: Job) -> None:
        self.runner = runner
        self.job = job

    def progress(self, percent: float) -> None:
        pct = max(0, min(100, int(percent)))
        with self.runner.ctx.db.session() as s:
            s.exec(update(Job).where(Job.id == self.job.id).values(progress=pct, updated_at=utcnow()))
            s.commit()
            cancel = s.exec(select(Job.cancel_requested).where(Job.id == self.job.id)).one()
        if cancel:
            raise JobCancelled()
