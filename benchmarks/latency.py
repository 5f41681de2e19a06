"""`python -m benchmarks latency`: search latency and ingestion throughput of the
real service, each next to its ceiling measured in the same run.

Method
------
* The service runs as it is deployed: `python -m rag_service.cli serve` (uvicorn,
  embedded SQLite + qdrant-edge) in a subprocess on 127.0.0.1, in a throwaway
  RAG_DATA_DIR, rate limiting off. This process is the client: plain HTTP over
  loopback from a bounded number of httpx clients (threads), each request
  bounded by a timeout and each phase by a count and a duration.
* Chunks are synthesized from the dataset's corpus: its sentences are recombined
  into unique paragraphs of about half to all of the index's chunk size, so every
  paragraph becomes exactly one chunk (the index is created with that
  chunk_max_characters) and no two chunks share a content hash (the service
  caches embeddings by content hash: repeated text would be free and falsify
  throughput). Documents hold --chunks-per-doc paragraphs; the chunk counts are
  the service's own (`chunk_count` of each upload answer).
* Levels (--chunks, e.g. 10000,100000) are loaded incrementally into one index.
  For each level the server is (re)started on the same data directory, topped up
  to the level through `POST /v1/indexes/{id}/documents` from --upload-concurrency
  clients (one untimed warm-up upload first: model load, parser pool start), then
  every (mode, concurrency) cell is driven for --duration-s with the dataset's
  queries, and the server's peak RSS is read; then the server is stopped.
* Ceilings are measured while the server is stopped (an embedded qdrant-edge
  shard has a single opener, and nothing else competes for the CPU):
  - ingestion ceiling: SentenceTransformer.encode, loaded exactly as the service
    loads it (pipelines.embed.SentenceEmbedder, same precision and batch size),
    on a sample of the chunk texts uploaded at this level; chunks per second.
  - search floor: the median time to embed one query the way SearchService does,
    plus the median time of the raw vector-store query the SearchService would
    send (the service's own EdgeVectorStore adapter and SearchRequest, same
    limit, prefetch, RRF constant and live filter) on the same data directory.
    Lexical needs no embedding, so its floor is the raw store query alone.
  The headline numbers are the ratios: ingest chunks/s / encode chunks/s (target
  >= 0.8) and search p50 / floor (target <= 2 at 10k chunks, hybrid,
  concurrency 1).
* Peak RSS is VmHWM from /proc: the server process, and separately the sum over
  its child processes (the forkserver parser pool), sampled while it runs so
  children that exit are counted too. The sum counts pages shared between
  processes once per process, so the total is an upper bound.
* Every level also accounts for the machine's CPU time (/proc/stat): this
  process, the server tree (sampled) and everything else. A run where other work
  or the hypervisor took a visible share is flagged in results.md: its figures
  are not the service's alone.

Client and server share the machine's cores, as they would on a one-box
deployment; the client's own CPU use is small next to a search, but on a 2-core
machine the concurrency-8 cells measure queueing as much as anything else.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from benchmarks.common import BeirDataset, Progress, cpu_info, load_beir, log, parse_modes, percentile

MODES = ("dense", "lexical", "hybrid")
# BEIR corpora split into sentences at a terminal mark followed by a capital/digit/bracket.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\[])")


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v.strip().replace("_", "")) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("latency", help="search p50/p95/p99 and ingestion throughput against their ceilings",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True, type=Path,
                   help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/): corpus text to synthesize chunks "
                        "from, queries to search with")
    p.add_argument("--chunks", type=_int_list, default=[10_000, 100_000],
                   help="index sizes in chunks, loaded incrementally into one index (default 10000,100000)")
    p.add_argument("--modes", default=",".join(MODES), help="comma-separated subset of dense,lexical,hybrid")
    p.add_argument("--concurrency", type=_int_list, default=[1, 8], help="concurrent search clients (default 1,8)")
    p.add_argument("--duration-s", type=float, default=20.0, help="seconds per (mode, concurrency) cell")
    p.add_argument("--queries", type=int, default=None, help="also stop a cell after this many requests")
    p.add_argument("--top-k", type=int, default=10)
    p.add_argument("--result-type", default="chunk", choices=("chunk", "document"))
    p.add_argument("--upload-concurrency", type=int, default=8, help="concurrent upload clients")
    p.add_argument("--chunks-per-doc", type=int, default=20, help="synthesized paragraphs (= chunks) per document")
    p.add_argument("--chunk-chars", type=int, default=300,
                   help="index chunk_max_characters; paragraphs are sized to between half of it and all of it")
    p.add_argument("--ceiling-sample", type=int, default=2000,
                   help="chunk texts per level encoded for the ingestion ceiling")
    p.add_argument("--floor-queries", type=int, default=300, help="queries timed for the search floor")
    p.add_argument("--port", type=int, default=0, help="server port on 127.0.0.1 (0: pick a free one)")
    p.add_argument("--out", type=Path, default=None, help="write results.json and results.md here")
    p.add_argument("--keep-data", action="store_true", help="keep the temporary data directory (and server logs)")
    p.add_argument("--seed", type=int, default=13)
    return p


# -- synthetic chunks -----------------------------------------------------------
class ChunkSynthesizer:
    """Unique paragraphs of min_chars..max_chars built from the corpus's sentences.

    Every paragraph joins at least two sentences of at most half the chunk size, so
    the length distribution stays the same from the first chunk to the last (a
    drifting mean chunk length would make the service re-encode the whole index's
    BM25 vectors, which is a real cost but not the one measured here), and the
    number of distinct combinations dwarfs any level.
    """

    def __init__(self, ds: BeirDataset, chunk_chars: int, seed: int) -> None:
        self.max_chars = chunk_chars
        # Two paragraphs of more than half the limit never fit in one chunk together.
        self.min_chars = chunk_chars // 2 + 2
        pool: dict[str, None] = {}
        for doc in ds.corpus.values():
            for sentence in _SENTENCE_END.split(doc.get("text") or ""):
                sentence = " ".join(sentence.split())
                if sentence and not sentence.endswith((".", "!", "?")):
                    sentence += "."  # a line without a stop may be classed a Title, which starts a new section
                if 30 <= len(sentence) <= (chunk_chars - 1) // 2:
                    pool[sentence] = None
        if len(pool) < 20:
            raise SystemExit(f"{ds.name}: only {len(pool)} usable sentences; need a bigger corpus to synthesize chunks")
        self.sentences = list(pool)
        self.rng = random.Random(seed)
        self.seen: set[str] = set()
        self.documents_made = 0

    def paragraph(self) -> str:
        for _ in range(10_000):
            parts, length = [], -1
            while length < self.min_chars:
                sentence = self.rng.choice(self.sentences)
                parts.append(sentence)
                length += len(sentence) + 1
            text = " ".join(parts)
            if length <= self.max_chars and text not in self.seen:
                self.seen.add(text)
                return text
        raise RuntimeError("cannot synthesize more unique chunks from this corpus")

    def documents(self, count: int, per_doc: int) -> list[tuple[str, list[str]]]:
        out = []
        for _ in range(count):
            self.documents_made += 1
            out.append((f"syn-{self.documents_made:06d}", [self.paragraph() for _ in range(per_doc)]))
        return out


# -- the server under test --------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name (which may hold spaces): [state, ppid, ...]."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _start_time(pid: int) -> str | None:
    """Tells a process apart from a later one with the same pid."""
    fields = _stat_fields(pid)
    return fields[19] if fields else None


def _running(pid: int, started: str) -> bool:
    """The process we saw is still there and not a zombie waiting to be reaped."""
    fields = _stat_fields(pid)
    return bool(fields) and fields[19] == started and fields[0] != "Z"


def _cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of one process (its own, not its reaped children's)."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / _TICK if fields else None


def machine_busy_s() -> tuple[float, float]:
    """(CPU-seconds the whole machine was busy, including time stolen by the hypervisor; of which stolen)."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (values + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / _TICK, steal / _TICK


def _proc_status(pid: int) -> dict[str, int]:
    """VmHWM / VmRSS of a process in kB (empty when it is gone)."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmHWM:", "VmRSS:")):
                    key, value = line.split(":", 1)
                    out[key] = int(value.split()[0])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return out


def _descendants(root: int) -> list[int]:
    """Every live descendant of `root`, from the ppid field of /proc/*/stat."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name is in parentheses and may contain spaces: ppid follows the last ')'.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class RssMonitor:
    """Samples the peak RSS (VmHWM) and the CPU time of a process and of each of its
    descendants (so that processes which exit before the end are counted too)."""

    def __init__(self, pid: int, every_s: float = 0.5) -> None:
        self.pid, self.every_s = pid, every_s
        self.server_kb = 0
        self.children_kb: dict[int, int] = {}
        self.child_start: dict[int, str | None] = {}  # pid -> start time, so a reused pid is never mistaken
        self.peak_tree_rss_kb = 0  # the largest simultaneous sum of current RSS seen
        self.cpu: dict[int, float] = {}  # pid -> CPU seconds when last seen
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-monitor", daemon=True)

    def start(self) -> "RssMonitor":
        self._thread.start()
        return self

    def sample(self) -> None:
        status = _proc_status(self.pid)
        if not status:
            return
        self.server_kb = max(self.server_kb, status.get("VmHWM", 0))
        tree_rss = status.get("VmRSS", 0)
        for pid in [self.pid, *_descendants(self.pid)]:
            cpu = _cpu_s(pid)
            if cpu is not None:
                self.cpu[pid] = max(self.cpu.get(pid, 0.0), cpu)
            if pid == self.pid:
                continue
            s = _proc_status(pid)
            if s:
                self.children_kb[pid] = max(self.children_kb.get(pid, 0), s.get("VmHWM", 0))
                self.child_start.setdefault(pid, _start_time(pid))
                tree_rss += s.get("VmRSS", 0)
        self.peak_tree_rss_kb = max(self.peak_tree_rss_kb, tree_rss)

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            self.sample()

    def stop(self) -> None:
        self.sample()
        self._stop.set()
        self._thread.join(timeout=5)

    def report(self) -> dict[str, Any]:
        mb = lambda kb: round(kb / 1024, 1)  # noqa: E731
        children = sum(self.children_kb.values())
        return {"server_mb": mb(self.server_kb), "children_mb": mb(children), "children": len(self.children_kb),
                "total_mb": mb(self.server_kb + children), "peak_concurrent_rss_mb": mb(self.peak_tree_rss_kb)}


class ServerProcess:
    """`python -m rag_service.cli serve` on 127.0.0.1 with the embedded defaults."""

    def __init__(self, data_dir: Path, api_key: str, port: int) -> None:
        self.data_dir, self.api_key, self.port = data_dir, api_key, port
        self.base_url = f"http://127.0.0.1:{port}"
        self.log_path = data_dir / f"server-{time.strftime('%H%M%S')}-{port}.log"
        self.proc: subprocess.Popen | None = None
        self.monitor: RssMonitor | None = None
        self.rss: dict[str, Any] | None = None
        self.cpu_s = 0.0  # CPU seconds of the server and its children, sampled
        self._seen_children: dict[int, str | None] = {}

    def start(self, timeout_s: float = 300.0) -> "ServerProcess":
        import httpx

        env = dict(os.environ)
        env.update({
            "RAG_DATA_DIR": str(self.data_dir), "RAG_BOOTSTRAP_KEY": self.api_key,
            # Measure, do not throttle; and pin the embedded defaults whatever the environment says.
            "RAG_RATE_LIMIT_PER_MINUTE": "0", "RAG_DATABASE_URL": "", "RAG_QDRANT_URL": "",
            "HF_HUB_OFFLINE": "1", "DO_NOT_TRACK": "1",
        })
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log_file = self.log_path.open("ab")
        # Its own session: a Ctrl-C in the terminal reaches only this process, and the
        # finally block below shuts the server down once, cleanly (shards flushed).
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rag_service.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=env, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        log_file.close()
        self.monitor = RssMonitor(self.proc.pid).start()
        t0 = time.monotonic()
        try:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the server exited with {self.proc.returncode}:\n{self.log_tail()}")
                try:
                    if httpx.get(f"{self.base_url}/healthz", timeout=2).status_code == 200:
                        log(f"server pid {self.proc.pid} up in {time.monotonic() - t0:.1f}s (log {self.log_path})")
                        return self
                except httpx.HTTPError:
                    pass
                if time.monotonic() - t0 > timeout_s:
                    raise RuntimeError(f"the server did not answer /healthz within {timeout_s:.0f}s:\n"
                                       f"{self.log_tail()}")
                time.sleep(0.25)
        except BaseException:
            self.stop()  # `with` does not call __exit__ when __enter__ fails: never leave it running
            raise

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.monitor:
            self._seen_children = dict(self.monitor.child_start)
            self.monitor.stop()
            self.rss = self.monitor.report()
            self.cpu_s = sum(self.monitor.cpu.values())
        if self.proc.poll() is None:
            # SIGINT is uvicorn's graceful shutdown: the lifespan closes (flushes) the shards.
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        # The parser pool's processes notice the exit and leave within a second or two;
        # end any that is still running after that, by pid (and only if that pid is
        # still the process we saw).
        deadline = time.monotonic() + 10
        left = dict(self._seen_children)
        while left and time.monotonic() < deadline:
            left = {pid: st for pid, st in left.items() if st is not None and _running(pid, st)}
            if left:
                time.sleep(0.2)
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
                log(f"ended server child {pid}, still running 10 s after the server exited")
            except (ProcessLookupError, PermissionError):
                pass
        self.proc = None

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# -- HTTP driving ---------------------------------------------------------------------
def _check(response, *ok: int) -> dict[str, Any]:
    if response.status_code not in ok:
        raise RuntimeError(f"{response.request.method} {response.request.url.path} -> "
                           f"{response.status_code}: {response.text[:500]}")
    return response.json()


def _run_threads(count: int, target: Callable[[int], None]) -> None:
    threads = [threading.Thread(target=target, args=(i,), name=f"client-{i}", daemon=True) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


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
    import httpx

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

    _run_threads(max(1, concurrency), client)
    return stats


def search_cell(server: ServerProcess, index_id: str, mode: str, queries: list[str], concurrency: int,
                duration_s: float, max_requests: int | None, top_k: int, result_type: str) -> dict[str, Any]:
    """`concurrency` clients searching back to back until the time (or request count) runs out."""
    import httpx

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

    _run_threads(concurrency, client)
    seconds = time.perf_counter() - started
    flat = [ms for per in latencies for ms in per]
    return {
        "requests": len(flat), "errors": failed, "empty_answers": empty, "seconds": round(seconds, 2),
        "p50_ms": _r(percentile(flat, 50)), "p95_ms": _r(percentile(flat, 95)), "p99_ms": _r(percentile(flat, 99)),
        "mean_ms": _r(statistics.fmean(flat)) if flat else None, "qps": _r(len(flat) / seconds if seconds else None),
        **({"first_errors": errors} if errors else {}),
    }


class CpuAccount:
    """Who used the CPU during a level: this process, the server tree, and everything else.

    Everything else (other programs, and time the hypervisor gave to other guests)
    competed with the measurement; the report flags a run where it was not small.
    """

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.busy0, self.steal0 = machine_busy_s()
        self.self0 = _self_cpu_s()

    def report(self, server_cpu_s: float) -> dict[str, Any]:
        wall = max(time.monotonic() - self.t0, 1e-9)
        busy, steal = machine_busy_s()
        busy, steal = busy - self.busy0, steal - self.steal0
        ours = _self_cpu_s() - self.self0
        other = max(0.0, busy - ours - server_cpu_s)
        return {"wall_s": round(wall, 1), "machine_busy_cores": _r(busy / wall), "benchmark_cores": _r(ours / wall),
                "server_cores": _r(server_cpu_s / wall), "other_cores": _r(other / wall),
                "steal_cores": _r(steal / wall)}


def _self_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _r(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(float(value), digits)


# -- ceilings, measured in this process while the server is stopped -------------------
def load_embedder(index: dict[str, Any], settings):
    """The index's encoder exactly as the service loads it (same identity: model, backend and
    precision `auto` resolved to; same batch size and device; ONNX builds from the server's cache)."""
    from transformers.utils import logging as hf_logging

    from pipelines.embed import EncoderIdentity
    from pipelines.embed import load_embedder as load

    hf_logging.disable_progress_bar()  # the "Loading weights" bar: noise in a benchmark log
    encoder = index.get("encoder") or {"model": index["embedding_model"]}
    return load(EncoderIdentity(**encoder), settings.encoder_cache_dir, device=settings.embedding_device,
                batch_size=settings.embedding_batch_size)


def encode_ceiling(embedder, texts: list[str], sample: int, seed: int) -> dict[str, Any]:
    """Raw SentenceTransformer.encode throughput on chunk texts of this level, in service-sized batches."""
    picked = random.Random(seed).sample(texts, min(sample, len(texts)))
    embedder.encode(picked[:64])  # warm-up: first-call allocations and thread pools
    started = time.perf_counter()
    embedder.encode(picked)
    seconds = time.perf_counter() - started
    return {"chunks": len(picked), "seconds": round(seconds, 2), "chunks_per_s": _r(len(picked) / seconds),
            "batch_size": embedder.batch_size}


def search_floor(data_dir: Path, alias: str, embedder, queries: list[str], modes: list[str], top_k: int,
                 result_type: str, settings) -> dict[str, Any]:
    """Median query-embedding time and median raw vector-store query time per mode.

    The requests are the ones SearchService.retrieve/_query_all build for a plain
    search (no filters, explain off, live documents only), sent through the
    service's own adapter to the shard the server just closed.
    """
    from pipelines.lexical import query_vector
    from rag_service.stores.edge import EdgeVectorStore
    from rag_service.stores.vector import Filter, Match, SearchRequest

    need = top_k * (5 if result_type == "document" else 1)
    limit = need + 10
    live = Filter(must=(Match("live", 1),))

    for q in queries[:3]:
        embedder.encode([q])  # warm-up
    embed_ms, dense = [], []
    for q in queries:
        t0 = time.perf_counter()
        vector = embedder.encode([q])[0].tolist()  # the service converts it the same way
        embed_ms.append((time.perf_counter() - t0) * 1000)
        dense.append(vector)

    def request(mode: str, i: int) -> SearchRequest:
        return SearchRequest(mode=mode, limit=limit, dense=dense[i] if mode != "lexical" else None,
                             sparse=query_vector(queries[i]), filter=live,
                             prefetch_limit=max(limit * settings.prefetch_multiplier, 100),
                             rrf_k=settings.rrf_k, weights=(1.0, 1.0), with_components=False)

    store = EdgeVectorStore(data_dir / "qdrant")
    out: dict[str, Any] = {"embed_ms": _r(statistics.median(embed_ms), 3), "queries": len(queries)}
    try:
        for mode in modes:
            requests = [request(mode, i) for i in range(len(queries))]
            for req in requests[:5]:
                store.search(alias, req)  # warm-up: opening the shard, first-touch pages
            store_ms, hits = [], 0
            for req in requests:
                t0 = time.perf_counter()
                result = store.search(alias, req)
                store_ms.append((time.perf_counter() - t0) * 1000)
                hits += len(result.hits)
            raw = statistics.median(store_ms)
            embed = 0.0 if mode == "lexical" else statistics.median(embed_ms)
            out[mode] = {"store_ms": _r(raw, 3), "store_p95_ms": _r(percentile(store_ms, 95), 3),
                         "embed_ms": _r(embed, 3), "floor_ms": _r(embed + raw, 3),
                         "mean_hits": _r(hits / len(requests))}
    finally:
        store.close()
    return out


# -- the command ------------------------------------------------------------------------
def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    modes = parse_modes(args.modes, MODES)
    levels = sorted(set(args.chunks))
    args.concurrency = sorted(set(args.concurrency))  # the headline ratio is the lowest concurrency's
    if not 50 <= args.chunk_chars <= 20000:
        raise SystemExit("--chunk-chars must be between 50 and 20000 (the service's limits)")

    ds = load_beir(args.dataset)
    queries = list(ds.queries.values())
    if not queries:
        raise SystemExit(f"{args.dataset}: no judged queries to search with")
    synth = ChunkSynthesizer(ds, args.chunk_chars, args.seed)
    log(f"{ds.name}: {len(synth.sentences)} usable sentences, {len(queries)} queries; levels {levels}")

    from rag_service.config import Settings

    data_dir = Path(tempfile.mkdtemp(prefix="rag-latency-"))
    # The same settings the server reads (its environment is ours plus the pins below).
    settings = Settings(data_dir=data_dir, database_url="", qdrant_url="", rate_limit_per_minute=0)
    api_key = f"rag_bench_{secrets.token_hex(16)}"
    port = args.port or free_port()
    results: dict[str, Any] = {
        "benchmark": "latency", "dataset": ds.name, "model": None,
        "machine": cpu_info(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "settings": {
            "modes": modes, "concurrency": args.concurrency, "duration_s": args.duration_s,
            "max_requests_per_cell": args.queries, "top_k": args.top_k, "result_type": args.result_type,
            "explain": False, "upload_concurrency": args.upload_concurrency, "chunks_per_doc": args.chunks_per_doc,
            "chunk_max_characters": args.chunk_chars, "ceiling_sample": args.ceiling_sample,
            "floor_queries": min(args.floor_queries, len(queries)),
            "embedding_precision": settings.embedding_precision, "embedding_batch_size": settings.embedding_batch_size,
            "server": "python -m rag_service.cli serve (uvicorn, 1 worker, embedded SQLite + qdrant-edge, "
                      "restarted per level), clients: httpx over 127.0.0.1 from this process",
        },
        "levels": {},
    }
    log(f"data dir {data_dir}, server on 127.0.0.1:{port}")
    index: dict[str, Any] | None = None
    embedder = None
    total_chunks = 0
    try:
        for level in levels:
            level_texts: list[str] = []
            entry: dict[str, Any] = {}
            # Whether something else shared the CPU: it distorts every figure here.
            cpu = CpuAccount()
            with ServerProcess(data_dir, api_key, port) as server:
                import httpx

                headers = {"X-API-Key": api_key}
                if index is None:
                    # Creating the index loads the embedding model (for its dimension): can take a while.
                    index = _check(httpx.post(f"{server.base_url}/v1/indexes", headers=headers, timeout=300, json={
                        "name": f"latency-{ds.name}", "privacy_tier": "public",
                        "chunk_max_characters": args.chunk_chars, "chunk_overlap": 0}), 201)
                    results["model"] = index["embedding_model"]
                    results["encoder"] = index.get("encoder")

                # Untimed warm-up upload: the model and the parser pool load on first use.
                warm = synth.documents(1, args.chunks_per_doc)
                warm_stats = upload(server, index["id"], warm, 1)
                if warm_stats.failed:
                    raise RuntimeError(f"warm-up upload failed: {warm_stats.errors}")
                total_chunks += warm_stats.chunks
                level_texts += warm[0][1]

                need = max(0, level - total_chunks)
                documents = synth.documents(math.ceil(need / args.chunks_per_doc), args.chunks_per_doc)
                level_texts += [p for _, paragraphs in documents for p in paragraphs]
                t0 = time.perf_counter()
                with Progress(f"upload to {level} chunks", len(documents)) as bar:
                    stats = upload(server, index["id"], documents, args.upload_concurrency, bar)
                seconds = time.perf_counter() - t0
                total_chunks += stats.chunks
                sent = len(documents) * args.chunks_per_doc
                entry["chunks"] = total_chunks
                entry["ingest"] = {
                    "documents": stats.documents, "chunks": stats.chunks, "paragraphs_sent": sent,
                    "failed": stats.failed, "seconds": round(seconds, 2),
                    "chunks_per_s": _r(stats.chunks / seconds) if seconds and stats.chunks else None,
                    "docs_per_s": _r(stats.documents / seconds) if seconds and stats.documents else None,
                    "upload_concurrency": args.upload_concurrency,
                    "warmup_chunks_untimed": warm_stats.chunks,
                    **({"first_errors": stats.errors[:3]} if stats.errors else {}),
                }
                log(f"level {level}: +{stats.chunks} chunks ({stats.failed} failed uploads) in {seconds:.1f}s, "
                    f"{entry['ingest']['chunks_per_s']} chunks/s; index holds {total_chunks}")
                if stats.chunks != sent:
                    log(f"note: {sent} paragraphs sent became {stats.chunks} chunks (expected one each)")

                entry["search"] = {}
                for mode in modes:
                    warm_up = search_cell(server, index["id"], mode, queries[:5], 1, 60.0, min(5, len(queries)),
                                          args.top_k, args.result_type)
                    if warm_up["errors"]:
                        raise RuntimeError(f"{mode} search fails: {warm_up.get('first_errors')}")
                    cells = entry["search"].setdefault(mode, {})
                    for c in args.concurrency:
                        cell = search_cell(server, index["id"], mode, queries, c, args.duration_s, args.queries,
                                           args.top_k, args.result_type)
                        cells[f"c{c}"] = cell
                        log(f"level {level} {mode} c{c}: p50 {cell['p50_ms']} ms, p95 {cell['p95_ms']}, "
                            f"p99 {cell['p99_ms']}, {cell['qps']} q/s ({cell['requests']} requests, "
                            f"{cell['errors']} errors)")
            entry["peak_rss_mb"] = server.rss
            server_cpu_s = server.cpu_s

            # Server stopped: the ceilings, with the machine to ourselves.
            if embedder is None:
                embedder = load_embedder(index, settings)
            ceiling = encode_ceiling(embedder, level_texts, args.ceiling_sample, args.seed + level)
            ing = entry["ingest"]
            ing["encode_ceiling"] = ceiling
            ing["encode_ceiling_chunks_per_s"] = ceiling["chunks_per_s"]
            ing["ratio"] = _r(ing["chunks_per_s"] / ceiling["chunks_per_s"], 3) if ing["chunks_per_s"] else None
            log(f"level {level}: encode ceiling {ceiling['chunks_per_s']} chunks/s -> ingest ratio {ing['ratio']}")

            floor = search_floor(data_dir, index["collection_alias"], embedder, queries[: args.floor_queries],
                                 modes, args.top_k, args.result_type, settings)
            entry["floor"] = floor
            for mode in modes:
                f = floor[mode]
                entry["search"][mode]["floor_ms"] = f["floor_ms"]
                for c in args.concurrency:
                    cell = entry["search"][mode][f"c{c}"]
                    cell["ratio_p50_to_floor"] = _r(cell["p50_ms"] / f["floor_ms"], 2) if cell["p50_ms"] else None
                entry["search"][mode]["ratio_p50_to_floor"] = entry["search"][mode][f"c{args.concurrency[0]}"][
                    "ratio_p50_to_floor"]
                log(f"level {level} {mode}: floor {f['floor_ms']} ms (embed {f['embed_ms']} + store {f['store_ms']}); "
                    + ", ".join(f"c{c} p50/floor {entry['search'][mode][f'c{c}']['ratio_p50_to_floor']}"
                                for c in args.concurrency))
            entry["cpu"] = cpu.report(server_cpu_s)
            log(f"level {level}: CPU use in cores: {entry['cpu']}")
            results["levels"][str(level)] = entry
            if args.out:  # after every level: a long run that fails later still leaves the levels it finished
                _write(args.out, results)
    finally:
        if args.keep_data:
            log(f"kept data dir {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)

    results["client_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    results["wall_time_s"] = round(time.perf_counter() - started, 1)
    log(f"wall time {results['wall_time_s']:.0f}s")
    if args.out:
        _write(args.out, results)
        log(f"wrote {args.out / 'results.json'} and results.md")
    else:
        print(json.dumps(results, indent=2))
    return 0


def _write(out: Path, results: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    (out / "results.md").write_text(markdown(results), encoding="utf-8")


# -- report ---------------------------------------------------------------------------------
def _f(value: Any, digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _variant(results: dict[str, Any]) -> str:
    e = results.get("encoder") or {}
    return f"{e['backend']} {e['precision']}" if e else results["settings"]["embedding_precision"]


def _cpu(machine: dict[str, Any]) -> str:
    return f"{machine.get('model', '?')}; {', '.join(machine.get('flags_of_note', []))}"


def markdown(results: dict[str, Any]) -> str:
    s = results["settings"]
    conc = s["concurrency"]
    lines = [
        f"# Latency and ingestion throughput: {results['dataset']} (synthesized chunks)",
        "",
        f"Model `{results['model']}` ({_variant(results)}, batch {s['embedding_batch_size']}), "
        f"{results['machine']['cpus']} CPUs ({_cpu(results['machine'])}), {results['date']}. Chunks of at most {s['chunk_max_characters']} "
        f"characters, {s['chunks_per_doc']} per document, unique texts recombined from the corpus's sentences. "
        f"Search: `POST /v1/indexes/{{id}}/search`, result_type={s['result_type']}, top_k={s['top_k']}, "
        f"explain=false, {s['duration_s']:g} s per cell, client-side latency over loopback HTTP.",
        "",
        "## Headline ratios",
        "",
    ]
    cpus = results["machine"]["cpus"] or 1
    busiest = max((e["cpu"]["other_cores"] or 0.0 for e in results["levels"].values() if e.get("cpu")), default=0.0)
    if busiest > 0.1 * cpus:
        lines += [f"**The machine was busy: other work used {busiest:.2f} of {cpus} cores on average during a level "
                  "(see CPU use below), so these figures are not the service's alone.**", ""]
    lines += [
        "| chunks | ingest / encode ceiling (target ≥ 0.8) | "
        + " | ".join(f"{m} p50 / floor, c{conc[0]}" for m in s["modes"]) + " |",
        "|---|---|" + "---|" * len(s["modes"]),
    ]
    for level, e in results["levels"].items():
        ratios = " | ".join(_f(e["search"][m].get("ratio_p50_to_floor"), 2) for m in s["modes"])
        lines.append(f"| {int(level):,} | {_f(e['ingest'].get('ratio'), 3)} | {ratios} |")
    lines += ["", "Target for search: hybrid p50 ≤ 2× floor at 10k chunks, concurrency 1.", "",
              "## Ingestion (upload API vs raw encode)", "",
              "| chunks | chunks uploaded | seconds | API chunks/s | encode ceiling chunks/s | ratio | failed |",
              "|---|---|---|---|---|---|---|"]
    for level, e in results["levels"].items():
        i = e["ingest"]
        lines.append(f"| {e['chunks']:,} | {i['chunks']:,} | {_f(i['seconds'])} | {_f(i['chunks_per_s'])} | "
                     f"{_f(i['encode_ceiling_chunks_per_s'])} | {_f(i.get('ratio'), 3)} | {i['failed']} |")
    lines += ["", f"{s['upload_concurrency']} concurrent upload clients; the ceiling is SentenceTransformer.encode "
              f"on up to {s['ceiling_sample']} of the same chunk texts, loaded as the service loads it, server stopped.",
              "", "## Search latency (ms, client side)", "",
              "| chunks | mode | floor | " + " | ".join(f"c{c} p50 | c{c} p95 | c{c} p99 | c{c} q/s | c{c} p50/floor"
                                                     for c in conc) + " |",
              "|---|---|---|" + "---|---|---|---|---|" * len(conc)]
    for level, e in results["levels"].items():
        for m in s["modes"]:
            row = e["search"][m]
            cells = " | ".join(f"{_f(row[f'c{c}']['p50_ms'])} | {_f(row[f'c{c}']['p95_ms'])} | "
                               f"{_f(row[f'c{c}']['p99_ms'])} | {_f(row[f'c{c}']['qps'])} | "
                               f"{_f(row[f'c{c}'].get('ratio_p50_to_floor'), 2)}" for c in conc)
            lines.append(f"| {int(level):,} | {m} | {_f(row.get('floor_ms'), 2)} | {cells} |")
    lines += ["", "Floor = median query embedding (SentenceEmbedder.encode of one query; none for lexical) + median "
              "raw vector-store query (the service's EdgeVectorStore with the SearchRequest SearchService builds), "
              "measured in the benchmark process with the server stopped.", "",
              "| chunks | embed ms | " + " | ".join(f"{m} store ms" for m in s["modes"]) + " |",
              "|---|---|" + "---|" * len(s["modes"])]
    for level, e in results["levels"].items():
        fl = e["floor"]
        lines.append(f"| {int(level):,} | {_f(fl['embed_ms'], 2)} | "
                     + " | ".join(_f(fl[m]["store_ms"], 2) for m in s["modes"]) + " |")
    lines += ["", "## Peak RSS (MB, VmHWM)", "",
              "| chunks | server | children (parser pool) | total | peak concurrent RSS |", "|---|---|---|---|---|"]
    for level, e in results["levels"].items():
        r = e.get("peak_rss_mb") or {}
        lines.append(f"| {int(level):,} | {_f(r.get('server_mb'))} | {_f(r.get('children_mb'))} "
                     f"({r.get('children', 0)}) | {_f(r.get('total_mb'))} | {_f(r.get('peak_concurrent_rss_mb'))} |")
    lines += ["", "The server is restarted for each level, so each row is the peak of one server run (loading the "
              "index so far, topping it up, searching). Children's pages shared with each other are counted once "
              "per process.", "",
              "## CPU use (average cores over each level)", "",
              "| chunks | wall s | machine busy | server + children | benchmark process | other work | of it stolen "
              "by the hypervisor |", "|---|---|---|---|---|---|---|"]
    for level, e in results["levels"].items():
        c = e.get("cpu") or {}
        lines.append(f"| {int(level):,} | {_f(c.get('wall_s'), 0)} | {_f(c.get('machine_busy_cores'), 2)} | "
                     f"{_f(c.get('server_cores'), 2)} | {_f(c.get('benchmark_cores'), 2)} | "
                     f"{_f(c.get('other_cores'), 2)} | {_f(c.get('steal_cores'), 2)} |")
    lines += ["", "From /proc: the machine's busy time less this process's and the server tree's (sampled) CPU time. "
              "Anything but a small 'other work' means the figures above shared the CPU.",
              "", f"Wall time {_f(results.get('wall_time_s'), 0)} s.", ""]
    return "\n".join(lines)
