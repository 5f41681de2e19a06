"""The shared runner of every benchmark command: BEIR datasets, the service driven
over its real HTTP app in a throwaway data directory (`ServiceHarness`; the
subprocess server is benchmarks/server.py), the machine's description, timing
and threading helpers, and progress output that works in a terminal and in a log
file alike."""

from __future__ import annotations

import csv
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

# Before anything imports unstructured or a hub library (the service does this too).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")

from pipelines.embed import cpu_info as read_cpu  # noqa: E402 - numpy only; after the environment


def cpu_info() -> dict[str, Any]:
    """CPU model and the instruction-set flags that decide encoder speed, for every figure."""
    info: dict[str, Any] = {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    model, flags = read_cpu()
    if model or flags:  # /proc/cpuinfo was readable
        info["model"] = model or None
        info["flags_of_note"] = sorted(f for f in flags if f.startswith(("avx", "amx", "fma", "f16c", "sse4")))
    return info


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


JOB_ENDED = ("succeeded", "failed", "cancelled")


def wait_for_job(get: Callable[[str], Any], job_id: str, poll_s: float, timeout_s: float | None = None,
                 every_s: float | None = None) -> dict[str, Any]:
    """GET /v1/rag/jobs/{id} through `get` (a client's get) until the job has ended, logging its
    progress every `every_s` seconds; SystemExit once it has run past `timeout_s`."""
    started = said = time.perf_counter()
    while True:
        job = expect(get(f"/v1/rag/jobs/{job_id}"), 200)
        if job["status"] in JOB_ENDED:
            return job
        now = time.perf_counter()
        if timeout_s is not None and now - started > timeout_s:
            raise SystemExit(f"job {job_id} did not finish in {timeout_s:.0f} s: {job['status']}")
        if every_s is not None and now - said > every_s:
            said = now
            log(f"job {job_id}: {job['status']}, {job.get('progress')} %")
        time.sleep(poll_s)


def rounded(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(float(value), digits)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    import numpy as np

    return float(np.percentile(np.asarray(values, dtype=float), q))


def run_threads(count: int, target: Callable[[int], None]) -> None:
    """`count` client threads running target(slot), started together and all joined."""
    threads = [threading.Thread(target=target, args=(i,), name=f"client-{i}", daemon=True) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def expect(response, *ok: int) -> dict[str, Any]:
    """The JSON body of an answer whose status is one of `ok`; anything else stops the benchmark."""
    if response.status_code not in ok:
        raise RuntimeError(f"{response.request.method} {response.request.url.path} -> "
                           f"{response.status_code}: {response.text[:500]}")
    return response.json()


# -- datasets -------------------------------------------------------------------
@dataclass
class BeirDataset:
    name: str
    path: Path
    split: str
    corpus: dict[str, dict[str, str]]  # _id -> {"title", "text"}
    queries: dict[str, str]  # query id -> text, only queries with judgements in this split
    qrels: dict[str, dict[str, int]]  # query id -> {doc id: relevance}
    subset: bool = False
    notes: list[str] = field(default_factory=list)

    def document_text(self, doc_id: str) -> str:
        doc = self.corpus[doc_id]
        title, text = (doc.get("title") or "").strip(), (doc.get("text") or "").strip()
        return f"{title}\n\n{text}" if title else text


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t")
        header = next(reader)
        if header[:2] != ["query-id", "corpus-id"]:
            raise ValueError(f"{path}: expected the BEIR header 'query-id corpus-id score', got {header}")
        for row in reader:
            if len(row) < 3:
                continue
            qid, did, score = row[0], row[1], int(float(row[2]))
            qrels.setdefault(qid, {})[did] = score
    return qrels


def load_beir(path: str | Path, split: str = "test", limit_docs: int | None = None,
              limit_queries: int | None = None) -> BeirDataset:
    """Read a BEIR folder in place (nothing is copied).

    With limits, the subset keeps evaluation meaningful: the first `limit_queries`
    judged queries, every document judged relevant to them, then corpus order up
    to `limit_docs`; judgements on documents left out are dropped.
    """
    root = Path(path)
    queries_file = root / ("queries.jsonl" if split == "test" else f"queries_{split}.jsonl")
    if split != "test" and not queries_file.exists():
        queries_file = root / "queries.jsonl"  # BEIR sets that keep all splits' queries in one file
    qrels = _read_qrels(root / "qrels" / f"{split}.tsv")
    all_queries = {str(q["_id"]): q["text"] for q in _read_jsonl(queries_file)}
    queries = {qid: text for qid, text in all_queries.items() if qrels.get(qid)}
    corpus_rows = _read_jsonl(root / "corpus.jsonl")
    corpus = {str(d["_id"]): {"title": d.get("title") or "", "text": d.get("text") or ""} for d in corpus_rows}
    notes = []
    missing = len([q for q in qrels if q not in all_queries])
    if missing:
        notes.append(f"{missing} judged queries have no text in {queries_file.name}")

    subset = False
    if limit_queries is not None and limit_queries < len(queries):
        queries = dict(list(queries.items())[:limit_queries])
        subset = True
    if limit_docs is not None and limit_docs < len(corpus):
        keep: dict[str, None] = {}
        for qid in queries:
            for did, rel in qrels[qid].items():
                if rel > 0 and did in corpus and len(keep) < limit_docs:
                    keep[did] = None
        for did in corpus:
            if len(keep) >= limit_docs:
                break
            keep.setdefault(did, None)
        corpus = {did: corpus[did] for did in keep}
        subset = True
    qrels = {qid: {d: r for d, r in qrels[qid].items() if d in corpus} for qid in queries}
    dropped = [qid for qid, judged in qrels.items() if not any(r > 0 for r in judged.values())]
    for qid in dropped:
        queries.pop(qid)
        qrels.pop(qid)
    if dropped:
        notes.append(f"{len(dropped)} queries dropped: none of their relevant documents is in the subset")
    return BeirDataset(name=root.name, path=root, split=split, corpus=corpus, queries=queries, qrels=qrels,
                       subset=subset, notes=notes)


def parse_modes(text: str, allowed: tuple[str, ...]) -> list[str]:
    """`--modes dense,lexical` -> ["dense", "lexical"]; an unknown mode stops the command."""
    modes = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in modes if m not in allowed]
    if bad:
        raise SystemExit(f"unknown mode(s) {bad}; choose from {', '.join(allowed)}")
    return modes


# -- progress -------------------------------------------------------------------
class Progress:
    """A rich bar on a terminal; on a pipe or log file, a line every `every_s` seconds."""

    def __init__(self, label: str, total: int, every_s: float = 30.0) -> None:
        self.label, self.total, self.every_s = label, total, every_s
        self.done = 0
        self.started = self._last = time.perf_counter()
        self._rich = None
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn,
                                       TimeElapsedColumn, TimeRemainingColumn)

            self._rich = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True))
            self._task = self._rich.add_task(label, total=total)

    def __enter__(self) -> "Progress":
        if self._rich:
            self._rich.start()
        else:
            log(f"{self.label}: 0/{self.total}")
        return self

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self._rich:
            self._rich.update(self._task, advance=n)
            return
        now = time.perf_counter()
        if now - self._last >= self.every_s:
            self._last = now
            elapsed = now - self.started
            rate = self.done / elapsed if elapsed else 0.0
            eta = (self.total - self.done) / rate if rate else float("nan")
            log(f"{self.label}: {self.done}/{self.total} ({rate:.2f}/s, eta {eta / 60:.1f} min)")

    def __exit__(self, *exc) -> None:
        if self._rich:
            self._rich.stop()
        elapsed = time.perf_counter() - self.started
        log(f"{self.label}: {self.done}/{self.total} in {elapsed:.1f}s")


# -- the service under test ------------------------------------------------------
class ServiceHarness:
    """The real FastAPI app (routers, auth, services, SQLite, embedded Qdrant) in
    a fresh temporary RAG_DATA_DIR, driven through fastapi's TestClient."""

    def __init__(self, data_dir: str | Path | None = None, keep: bool = False, embedders=None) -> None:
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="rag-bench-"))
        self.keep = keep
        self.embedders = embedders  # an EmbedderRegistry to share (its loaded models and ONNX builds)

    def __enter__(self) -> "ServiceHarness":
        from fastapi.testclient import TestClient

        from rag_service.app import create_app
        from rag_service.config import Settings
        from rag_service.context import build_context
        from rag_service.services.auth import AuthService

        # Pin the embedded defaults whatever RAG_DATABASE_URL / RAG_QDRANT_URL say; other
        # RAG_* settings (embedding precision, batch size, ...) still apply and are recorded.
        # Benchmarks drive one key far past any sensible per-key limit: measure, do not throttle.
        self.settings = Settings(data_dir=self.data_dir, database_url="", qdrant_url="", rate_limit_per_minute=0)
        self.ctx = build_context(self.settings, embedders=self.embedders)
        self.client = TestClient(create_app(self.settings, ctx=self.ctx))
        self.client.__enter__()
        key, _ = AuthService(self.ctx.db).create_key("benchmarks", "admin", name="benchmarks")
        self.headers = {"X-API-Key": key}
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.client.__exit__(None, None, None)
        finally:
            self.ctx.vectors.close()
            self.ctx.db.dispose()
            if self._own_dir and not self.keep:
                shutil.rmtree(self.data_dir, ignore_errors=True)

    def create_index(self, name: str, **fields: Any) -> dict[str, Any]:
        return expect(self.client.post("/v1/indexes", json={"name": name, **fields}, headers=self.headers), 201)

    def get_index(self, index_id: str) -> dict[str, Any]:
        return expect(self.client.get(f"/v1/indexes/{index_id}", headers=self.headers), 200)

    def upload_text(self, index_id: str, name: str, text: str):
        """Multipart upload of a .txt file; returns the raw response (the caller decides what failed)."""
        return self.client.post(
            f"/v1/indexes/{index_id}/documents",
            files={"file": (f"{name}.txt", text.encode("utf-8"), "text/plain")},
            data={"name": name},
            headers=self.headers,
        )

    def search(self, index_id: str, body: dict[str, Any]) -> tuple[dict[str, Any], float]:
        """One search; returns (answer, client-side latency in ms)."""
        started = time.perf_counter()
        response = self.client.post(f"/v1/indexes/{index_id}/search", json=body, headers=self.headers)
        elapsed_ms = (time.perf_counter() - started) * 1000
        return expect(response, 200), elapsed_ms
