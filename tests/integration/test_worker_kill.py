"""A worker killed (SIGKILL) in the middle of an ingest job: the job is claimed
again after its lease expires and finishes correctly, with no duplicate points
and the document never half-indexed in search."""

import os
import signal
import subprocess
import sys
import time

from sqlmodel import select

from rag_service.config import Settings
from rag_service.context import build_context
from rag_service.models import DocumentVersion, Job
from rag_service.search_params import SearchParams
from rag_service.services.auth import AuthService
from rag_service.services.common import Principal
from rag_service.services.uploads import UploadService
from rag_service.services.indexes import IndexService
from rag_service.services.search import SearchService
from rag_service.stores.vector import DOCUMENT_POINT, Filter, Match
from tests.processes import stop


def _worker(settings: Settings) -> subprocess.Popen:
    env = {**os.environ, "RAG_DATA_DIR": str(settings.data_dir), "RAG_DATABASE_URL": settings.database_url,
           "HF_HUB_OFFLINE": "1", "DO_NOT_TRACK": "1"}
    return subprocess.Popen([sys.executable, "-m", "rag_service.cli", "worker", "--lease", "3"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _job(ctx, job_id) -> Job:
    with ctx.db.session() as s:
        return s.get(Job, job_id)


def test_killed_worker_job_is_finished_by_another(settings_factory, embedders):
    settings = settings_factory(job_runner="off")
    ctx = build_context(settings, embedders=embedders)
    _, key = AuthService(ctx.db).create_key("acme", "editor")
    principal = Principal(project_id=key.project_id, key_id=key.id, role="editor")
    index = IndexService(ctx).create(principal, {"name": "kb", "chunk_max_characters": 200})
    docs = UploadService(ctx)
    docs.upload(principal, index["id"], b"Version one says the meeting is on Tuesday.", "plan.txt", None, {}, None)
    body = "\n\n".join(f"Section {n}. The relocated meeting happens on Thursday in room {n}, bring notes." for n in range(400))
    job, view = docs.upload_async(principal, index["id"], body.encode(), "plan.txt", None, {}, None)
    ctx.vectors.close()  # the embedded shard has one opener: hand it to the worker

    first = _worker(settings)
    try:
        deadline = time.time() + 180
        while time.time() < deadline:
            current = _job(ctx, job["id"])
            if current.status == "running" and current.progress >= 30:
                break
            time.sleep(0.05)
        else:
            raise AssertionError(f"worker never got into the job: {_job(ctx, job['id'])}")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    killed = _job(ctx, job["id"])
    assert killed.status == "running" and killed.attempts == 1
    with ctx.db.session() as s:
        v2 = s.exec(select(DocumentVersion).where(DocumentVersion.document_id == view["id"], DocumentVersion.version == 2)).one()
    assert v2.status == "indexing"

    second = _worker(settings)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and _job(ctx, job["id"]).status not in ("succeeded", "failed"):
            time.sleep(0.2)
    finally:
        stop(second, timeout_s=20)
    done = _job(ctx, job["id"])
    assert done.status == "succeeded", done
    assert done.attempts == 2

    ctx2 = build_context(settings, embedders=embedders)
    try:
        with ctx2.db.session() as s:
            v2 = s.exec(select(DocumentVersion).where(DocumentVersion.document_id == view["id"], DocumentVersion.version == 2)).one()
        assert v2.status == "ready" and v2.chunk_count >= 100
        alias = index["collection_alias"]
        by_v2 = Filter(must=(Match("document_id", view["id"]), Match("version", 2)), must_not=(DOCUMENT_POINT,))
        assert ctx2.vectors.count(alias, by_v2) == v2.chunk_count  # deterministic ids: no duplicates
        for mode in ("dense", "lexical", "hybrid"):
            out = SearchService(ctx2).search(principal, SearchParams(query="meeting Tuesday Thursday", mode=mode, top_k=20))
            assert out["results"] and {r["version"] for r in out["results"]} == {2}
    finally:
        ctx2.vectors.close()
        ctx2.db.dispose()
