"""Load on the server under test, over loopback HTTP from a bounded number of httpx
clients (threads): uploads pulled from one queue, and search cells driven back to back
for a duration or a request count."""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

import httpx

from benchmarks.common import Progress, percentile, rounded, run_threads
from benchmarks.server import ServerProcess


@dataclass
class UploadStats:
    documents: int = 0
    chunks: int = 0
    failed: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def upload(server: ServerProcess, index_id: str, documents: list[tuple[str, list[str]]], concurrency: int,
           bar: Progress | None = None) -> UploadStats:
    """Each document as a multipart .txt upload, from `concurrency` clients pulling from one queue."""
    stats = UploadStats()
    queue: Iterator[tuple[str, list[str]]] = iter(documents)
    headers = {"X-API-Key": server.api_key}

    def client(_: int) -> None:
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=300) as http:
            while True:
                with stats.lock:
                    item = next(queue, None)
                if item is None:
                    return
                name, paragraphs = item
                try:
                    body = "\n\n".join(paragraphs).encode()  # blank lines: one paragraph element each
                    response = http.post(f"/v1/indexes/{index_id}/documents",
                                         files={"file": (f"{name}.txt", body, "text/plain")}, data={"name": name})
                    ok = response.status_code in (200, 201)
                    error = None if ok else f"{response.status_code}: {response.text[:300]}"
                except httpx.HTTPError as exc:
                    response, error = None, f"{type(exc).__name__}: {exc}"
                with stats.lock:
                    if error is None:
                        stats.documents += 1
                        stats.chunks += int(response.json().get("chunk_count") or 0)
                    else:
                        stats.failed += 1
                        if len(stats.errors) < 10:
                            stats.errors.append({"document": name, "error": error})
                    if bar:
                        bar.advance()

    run_threads(max(1, concurrency), client)
    return stats


def search_cell(server: ServerProcess, index_id: str, mode: str, queries: list[str], concurrency: int,
                duration_s: float, max_requests: int | None, top_k: int, result_type: str) -> dict[str, Any]:
    """`concurrency` clients searching back to back until the time (or request count) runs out."""
    headers = {"X-API-Key": server.api_key}
    lock = threading.Lock()
    issued = 0
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors: list[str] = []  # the first few messages
    failed = empty = 0
    started = time.perf_counter()
    deadline = started + duration_s

    def client(slot: int) -> None:
        nonlocal issued, empty, failed
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=60) as http:
            while True:
                with lock:
                    if time.perf_counter() >= deadline or (max_requests is not None and issued >= max_requests):
                        return
                    query = queries[issued % len(queries)]
                    issued += 1
                body = {"query": query, "mode": mode, "top_k": top_k, "result_type": result_type, "explain": False}
                t0 = time.perf_counter()
                try:
                    response = http.post(f"/v1/indexes/{index_id}/search", json=body)
                    ms = (time.perf_counter() - t0) * 1000
                    if response.status_code != 200:
                        raise RuntimeError(f"{response.status_code}: {response.text[:200]}")
                    no_results = not response.json().get("results")
                except Exception as exc:  # recorded, not raised: one bad answer must not hide the others
                    with lock:
                        failed += 1
                        if len(errors) < 3:
                            errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                latencies[slot].append(ms)
                if no_results:
                    with lock:
                        empty += 1

    run_threads(concurrency, client)
    seconds = time.perf_counter() - started
    flat = [ms for per in latencies for ms in per]
    return {
        "requests": len(flat), "errors": failed, "empty_answers": empty, "seconds": round(seconds, 2),
        "p50_ms": rounded(percentile(flat, 50)), "p95_ms": rounded(percentile(flat, 95)),
        "p99_ms": rounded(percentile(flat, 99)), "mean_ms": rounded(statistics.fmean(flat)) if flat else None,
        "qps": rounded(len(flat) / seconds if seconds else None),
        **({"first_errors": errors} if errors else {}),
    }
