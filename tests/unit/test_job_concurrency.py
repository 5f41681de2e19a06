"""A runner with concurrency N runs N jobs at once (async uploads overlap like a batch's files)."""

import threading
import time

from rag_service.config import Settings
from rag_service.db import Database
from rag_service.models import Job
from rag_service.services.jobs import JobRunner


class _Ctx:
    def __init__(self, db):
        self.db = db
        self.settings = Settings()


def test_runner_runs_jobs_side_by_side_and_stops_cleanly(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'jobs.db'}")
    db.create_schema()
    with db.session() as s:
        s.add_all([Job(project_id="p", job_class="ingest") for _ in range(3)])
        s.commit()
    together = threading.Barrier(3, timeout=20)
    seen: list[str] = []

    def handler(handle):
        together.wait()  # only passes when all three jobs run at the same time
        seen.append(handle.job.id)
        return {"ok": True}

    runner = JobRunner(_Ctx(db), poll_seconds=0.05, handlers={"ingest": handler}, concurrency=3)
    runner.start()
    try:
        deadline = time.time() + 30
        while time.time() < deadline and len(seen) < 3:
            time.sleep(0.05)
    finally:
        runner.stop()
    assert len(set(seen)) == 3 and not runner.alive()
    with db.session() as s:
        assert {j.status for j in s.query(Job).all()} == {"succeeded"}
    db.dispose()
