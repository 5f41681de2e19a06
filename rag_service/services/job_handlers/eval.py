"""The `eval` job: labelled queries against an index, metrics per mode, kept as an EvalRun."""

from __future__ import annotations

from typing import Any

from rag_service.errors import PermanentJobError
from rag_service.models import EvalRun, Index
from rag_service.services.job_handle import JobHandle
from rag_service.services.job_params import parse_eval_set
from rag_service.services.reindex import evaluate_indexes


def run_eval(handle: JobHandle) -> dict[str, Any]:
    ctx = handle.runner.ctx
    job = handle.job
    queries, qrels = parse_eval_set(job.params)
    modes = job.params.get("modes") or ["dense", "lexical", "hybrid"]
    with ctx.db.session() as s:
        index = s.get(Index, job.index_id)
    if index is None:
        raise PermanentJobError("index not found")
    total, done = len(modes) * len(queries), [0]

    def tick() -> None:
        done[0] += 1
        if done[0] % 10 == 0:
            handle.progress(100 * done[0] / total)

    metrics = evaluate_indexes(ctx, index, queries, qrels, modes, int(job.params.get("top_k", 100)), tick)
    with ctx.db.session() as s:
        s.add(EvalRun(project_id=job.project_id, index_id=job.index_id, job_id=job.id, metrics=metrics))
        s.commit()
    return {"index_id": job.index_id, "modes": metrics}
