"""`python -m benchmarks ingest`: ingestion through the API against the encoder's ceiling,
encoder variants, parse speed per format, time to ready and the first search after it.

Method (all figures from one run on one machine; the CPU model and flags are recorded)
-----------------------------------------------------------------------------------
1. Parse speed: `prepare_upload` (parse, chunk, BM25 tokens: what a parser worker runs)
   on one generated document of --parse-mb per text-like format, in this process.
2. Encoder ceilings: every encoder variant (torch fp32/bf16, ONNX fp32/int8) encodes the
   same sample of the texts the service embeds for these chunks (an index's chunk vectors
   are titled: the document's title, its first paragraph here, in front of each chunk;
   pipelines/chunk.py embedding_text), in service-sized batches and run as the service runs
   it (its lanes: benchmarks/encoders.py as_served), interleaved round by round
   (benchmarks/encoders.py); the variant `auto` picks on this machine is recorded with
   its speed-up over torch fp32. Nothing else runs meanwhile (the server is stopped).
3. API ingestion: `rag-service serve` (uvicorn, embedded SQLite + qdrant-edge, the
   encoder `auto` chose) in a subprocess; unique synthesized chunks (SciFact
   sentences recombined, so the embedding cache cannot help), --chunks-per-doc per
   document; once through `POST /v1/indexes/{id}/documents` from --clients clients,
   once through `POST .../documents/batch` (--batch-files files a request, --batch-clients
   requests in flight), and once with `?async=true` from --clients clients, timed until
   the last ingest job has finished. Chunks per second over the wall time of each phase,
   divided by the ceiling of the variant the server used, measured on the same chunk
   texts: `api_ingest_over_ceiling` (the better synchronous route is the headline; every
   route is reported).
4. Ready: the server is restarted on the same data directory, --restarts times; each time,
   the time from process start to `GET /v1/ready` = 200, then the first search's latency next
   to the same query's median when it is asked again five times after 20 other queries
   (`first_over_later`); the 20 others' median is reported beside it. One first search is one
   sample, and on a shared 2-core machine one sample swings by a third: the figures reported
   are the medians over the restarts, each restart's beside them.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import cpu_info, expect, load_beir, log, rounded, run_threads, wait_for_job
from benchmarks.encoders import encoder_registry, measure_variants
from benchmarks.parse_speed import parse_mb_per_s
from benchmarks.report import write_results
from benchmarks.server import ServerProcess, free_port
from benchmarks.synthetic import ChunkSynthesizer, embedded_texts


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("ingest", help="API ingestion vs the encode ceiling, encoder variants, parse MB/s, "
                       "time to ready", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True, type=Path, help="BEIR folder whose corpus sentences make the chunks")
    p.add_argument("--docs", type=int, default=150, help="documents per upload route")
    p.add_argument("--chunks-per-doc", type=int, default=20)
    p.add_argument("--chunk-chars", type=int, default=300, help="index chunk_max_characters")
    p.add_argument("--clients", type=int, default=8, help="single-upload clients")
    p.add_argument("--batch-files", type=int, default=16, help="files per batch request")
    p.add_argument("--batch-clients", type=int, default=2, help="batch requests in flight")
    p.add_argument("--ceiling-sample", type=int, default=640, help="chunk texts encoded per variant and round")
    p.add_argument("--variants", default=None, help="comma-separated encoder variants (default: all)")
    p.add_argument("--encoder", default="auto", help="the server's variant, e.g. onnx-int8 (default: auto decides)")
    p.add_argument("--parse-mb", type=float, default=10.0, help="size of each generated document for parse speed")
    p.add_argument("--skip-parse", action="store_true")
    p.add_argument("--restarts", type=int, default=3, help="server restarts timed for ready and the first search")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--seed", type=int, default=7)
    return p


class Client:
    """A small HTTP driver for one server (bounded timeouts; answers checked with `expect`)."""

    def __init__(self, server: ServerProcess) -> None:
        self.http = httpx.Client(base_url=server.base_url, headers={"X-API-Key": server.api_key}, timeout=600)

    def close(self) -> None:
        self.http.close()


def _drain(server: ServerProcess, requests: list, clients: int, send) -> dict:
    """`clients` threads, each with its own HTTP client, pull requests off one queue and call
    send(client, request) -> (documents, chunks embedded, failed); totals and chunks/s over the wall time."""
    queue, lock = iter(requests), threading.Lock()
    stats = {"documents": 0, "chunks": 0, "failed": 0, "requests": len(requests)}

    def work(_: int) -> None:
        client = Client(server)
        try:
            while True:
                with lock:
                    request = next(queue, None)
                if request is None:
                    return
                counts = send(client, request)
                with lock:
                    for key, n in zip(("documents", "chunks", "failed"), counts):
                        stats[key] += n
        finally:
            client.close()

    started = time.perf_counter()
    run_threads(clients, work)
    return _timed(stats, started)


def _timed(stats: dict, started: float) -> dict:
    """`stats` with the wall time since `started` and the chunks per second over it."""
    stats["seconds"] = round(time.perf_counter() - started, 2)
    stats["chunks_per_s"] = round(stats["chunks"] / stats["seconds"], 2)
    return stats


def _part(name: str, paragraphs: list[str]) -> tuple[str, bytes, str]:
    return f"{name}.txt", "\n\n".join(paragraphs).encode(), "text/plain"  # blank lines: one paragraph each


def ingest_single(server: ServerProcess, index_id: str, documents: list[tuple[str, list[str]]], clients: int) -> dict:
    def send(client: Client, doc: tuple[str, list[str]]) -> tuple[int, int, int]:
        r = client.http.post(f"/v1/indexes/{index_id}/documents", data={"name": doc[0]}, files={"file": _part(*doc)})
        return (1, r.json()["chunks_embedded"], 0) if r.status_code == 201 else (0, 0, 1)

    return _drain(server, documents, clients, send)


def ingest_batch(server: ServerProcess, index_id: str, documents: list[tuple[str, list[str]]], files_per_request: int,
                 clients: int) -> dict:
    def send(client: Client, batch: list[tuple[str, list[str]]]) -> tuple[int, int, int]:
        r = client.http.post(f"/v1/indexes/{index_id}/documents/batch", files=[("file", _part(*d)) for d in batch])
        ok = [i for i in r.json().get("items", []) if i["status_code"] == 201] if r.status_code in (201, 207) else []
        return len(ok), sum(i["chunks_embedded"] for i in ok), len(batch) - len(ok)

    batches = [documents[i:i + files_per_request] for i in range(0, len(documents), files_per_request)]
    return _drain(server, batches, clients, send)


def ingest_async(server: ServerProcess, index_id: str, documents: list[tuple[str, list[str]]], clients: int) -> dict:
    """Single uploads with ?async=true from `clients` threads; the clock stops when the last
    ingest job has finished (the jobs run in the server's JobRunner, RAG_JOB_CONCURRENCY)."""
    jobs: list[str] = []
    started = time.perf_counter()

    def send(client: Client, doc: tuple[str, list[str]]) -> tuple[int, int, int]:
        r = client.http.post(f"/v1/indexes/{index_id}/documents", params={"async": "true"}, data={"name": doc[0]},
                             files={"file": _part(*doc)})
        if r.status_code != 202:
            return 0, 0, 1
        jobs.append(r.json()["id"])
        return 0, 0, 0

    stats = _drain(server, documents, clients, send)
    client = Client(server)
    try:
        for job_id in jobs:
            job = wait_for_job(client.http.get, job_id, poll_s=0.05)
            if job["status"] == "succeeded":
                stats["documents"] += 1
                stats["chunks"] += job["result"]["chunks_embedded"]  # as the other routes count
            else:
                stats["failed"] += 1
    finally:
        client.close()
    return _timed(stats, started)


def ready_and_first_search(server: ServerProcess, spawned_at: float, index_id: str, queries: list[str]) -> dict:
    while True:
        try:
            if httpx.get(f"{server.base_url}/v1/ready", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() - spawned_at > 600:
            raise RuntimeError("the server was not ready within 600 s")
        time.sleep(0.05)
    ready_s = time.monotonic() - spawned_at
    client = Client(server)
    try:
        times = []
        # The first query again at the end: queries differ in cost (length, hits), so the first
        # search is judged against the same query once the service has been used.
        for q in queries[:21] + [queries[0]] * 5:
            started = time.perf_counter()
            expect(client.http.post(f"/v1/indexes/{index_id}/search", json={"query": q, "top_k": 10,
                                                                                     "mode": "hybrid"}), 200)
            times.append((time.perf_counter() - started) * 1000)
    finally:
        client.close()
    later, same = statistics.median(times[1:21]), statistics.median(times[21:])
    return {"time_to_ready_s": round(ready_s, 2), "first_search_ms": round(times[0], 1),
            "later_search_p50_ms": round(later, 1), "same_query_later_ms": round(same, 1),
            "first_over_later": round(times[0] / same, 2)}


def median_of_restarts(samples: list[dict[str, float]]) -> dict[str, Any]:
    """Each figure's median over the restarts (the ratio's too, not a ratio of medians), and the samples."""
    return {**{k: rounded(statistics.median(s[k] for s in samples), 2) for k in samples[0]},
            "restarts": len(samples), "samples": samples}


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    ds = load_beir(args.dataset)
    queries = [q for q in ds.queries.values()]
    synth = ChunkSynthesizer(ds, args.chunk_chars, args.seed)
    routes = {route: synth.documents(args.docs, args.chunks_per_doc) for route in ("single", "batch", "async")}
    # What the model embeds for each chunk under the default index settings (title vectors on):
    # the ceiling is the model's speed on the work the uploads give it, nothing else.
    texts = [t for docs in routes.values() for t in embedded_texts(docs)]
    sample = random.Random(args.seed).sample(texts, min(args.ceiling_sample, len(texts)))
    data_dir = Path(tempfile.mkdtemp(prefix="rag-ingest-"))
    results: dict[str, Any] = {"benchmark": "ingest", "dataset": ds.name, "machine": cpu_info(),
                               "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
                               "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                                            if not k.startswith("_")}}
    try:
        if not args.skip_parse:
            log(f"parse speed on {args.parse_mb:g} MB documents")
            results["parse_mb_per_s"] = parse_mb_per_s(args.parse_mb)
        _encoder_ceilings(args, sample, queries, data_dir, results)
        if args.encoder != "auto":  # the server subprocess inherits this environment
            backend, precision = args.encoder.split("-", 1)
            os.environ["RAG_EMBEDDING_BACKEND"], os.environ["RAG_EMBEDDING_PRECISION"] = backend, precision
        api_key = f"rag_bench_{secrets.token_hex(8)}"
        port = free_port()
        with ServerProcess(data_dir, api_key, port) as server:
            single_id = _api_routes(args, server, synth, routes, results)

        samples = []
        for n in range(max(1, args.restarts)):
            log(f"restart {n + 1}/{args.restarts}: time to ready, first search")
            server = ServerProcess(data_dir, api_key, port)
            spawned = time.monotonic()
            with server:  # each restart starts with other queries (SciFact's 300 are enough for 11)
                samples.append(ready_and_first_search(server, spawned, single_id, queries[26 * n:] + queries))
        results["ready"] = median_of_restarts(samples)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)  # the throwaway data directory (ONNX builds included)
    results["seconds"] = round(time.perf_counter() - started, 1)
    if args.out:
        write_results(args.out, results, markdown(results))
    print(markdown(results))
    return 0


def _encoder_ceilings(args: argparse.Namespace, sample: list[str], queries: list[str], data_dir: Path,
                      results: dict[str, Any]) -> None:
    """Every encoder variant on the same chunk texts, nothing else running; what `auto` picks."""
    log(f"encoder ceilings on {len(sample)} chunk texts")
    # The same cache directory the server uses: its ONNX builds and auto decision are reused.
    encoders = measure_variants(sample, encoder_registry(data_dir / "encoders"),
                                variants=args.variants.split(",") if args.variants else None, queries=queries[:50],
                                auto=args.encoder == "auto")
    results["encoders"] = encoders
    results["encode_ceiling_docs_per_s"] = {v: r["docs_per_s"] for v, r in encoders["variants"].items()}
    # With --encoder pinned, `auto` is not decided here: the pinned variant stands in its place.
    auto = encoders["auto"]["variant"] if "auto" in encoders else args.encoder
    results["auto_variant"] = auto
    results["speedup_over_torch_fp32"] = encoders.get("speedup_over_torch_fp32", {}).get(auto)


def _api_routes(args: argparse.Namespace, server: ServerProcess, synth: ChunkSynthesizer,
                routes: dict[str, list[tuple[str, list[str]]]], results: dict[str, Any]) -> str:
    """The documents through each upload route, one index per route, each set against the
    ceiling of the variant the server used; returns the single-upload index's id."""
    client = Client(server)
    try:
        index = {route: expect(client.http.post("/v1/indexes", json={"name": route, "chunk_max_characters":
                                                                    args.chunk_chars}), 201)["id"]
                 for route in ("single", "batch", "async")}
        warm = synth.documents(2, args.chunks_per_doc)  # untimed: first-use costs of each route
        ingest_single(server, index["single"], warm[:1], 1)
        ingest_batch(server, index["batch"], warm[1:], 1, 1)
        encoder = expect(client.http.get(f"/v1/indexes/{index['single']}"), 200)["encoder"]
    finally:
        client.close()
    variant = f"{encoder['backend']}-{encoder['precision']}"
    log(f"server encoder {variant}; {len(routes['single'])} documents through the single route, "
        f"{args.clients} clients")
    results["api_single"] = ingest_single(server, index["single"], routes["single"], args.clients)
    log(f"{len(routes['batch'])} documents through the batch route")
    results["api_batch"] = ingest_batch(server, index["batch"], routes["batch"], args.batch_files,
                                        args.batch_clients)
    log(f"{len(routes['async'])} documents through ?async=true, {args.clients} clients")
    results["api_async"] = ingest_async(server, index["async"], routes["async"], args.clients)
    ceiling = results["encode_ceiling_docs_per_s"].get(variant)
    results["server_variant"] = variant
    if ceiling:
        for route in ("api_single", "api_batch", "api_async"):
            results[route]["over_ceiling"] = round(results[route]["chunks_per_s"] / ceiling, 3)
        results["api_ingest_over_ceiling"] = max(results["api_single"]["over_ceiling"],
                                                 results["api_batch"]["over_ceiling"])
    return index["single"]


def markdown(r: dict[str, Any]) -> str:
    m = r["machine"]
    lines = [f"# Ingestion ({r['dataset']}, {r['date']})", "",
             f"CPU: {m.get('model')} ({m.get('cpus')} cores; {', '.join(m.get('flags_of_note', []))})", "",
             "| encoder variant | docs/s | x torch fp32 | one query ms |", "|---|---|---|---|"]
    speedups = r["encoders"].get("speedup_over_torch_fp32", {})
    for v, e in r["encoders"]["variants"].items():
        mark = " (auto)" if v == r["auto_variant"] else ""
        lines.append(f"| {v}{mark} | {e['docs_per_s']} | {speedups.get(v, '')} | {e.get('query_ms', '')} |")
    for v, why in r["encoders"].get("failed", {}).items():
        lines.append(f"| {v} | not run here: {why[:80]} | | |")
    chosen = "`auto` chose" if r["settings"]["encoder"] == "auto" else "pinned (--encoder):"
    lines += ["", f"{chosen} **{r['auto_variant']}**: {r['speedup_over_torch_fp32']}x torch fp32.", "",
              "| route | chunks/s | over ceiling |", "|---|---|---|"]
    for key, label in (("api_single", f"single uploads, {r['settings']['clients']} clients"),
                       ("api_batch", f"batch route, {r['settings']['batch_files']} files/request"),
                       ("api_async", f"?async=true, {r['settings']['clients']} clients, until the last job is done")):
        a = r.get(key, {})
        lines.append(f"| {label} | {a.get('chunks_per_s')} | {a.get('over_ceiling')} |")
    lines += ["", f"Ceiling: {r['server_variant']} at {r['encode_ceiling_docs_per_s'].get(r['server_variant'])} "
              f"chunks/s on the texts the service embeds for these chunks (titled: the document's first "
              f"paragraph in front of each); api_ingest_over_ceiling **{r.get('api_ingest_over_ceiling')}**."]
    if "parse_mb_per_s" in r:
        lines += ["", "| format | parse MB/s |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in r["parse_mb_per_s"].items()]
    if "ready" in r:
        rd = r["ready"]
        each = ", ".join(f"x{s['first_over_later']}" for s in rd.get("samples", []))
        lines += ["", f"Restart to ready (median of {rd.get('restarts', 1)} restarts): {rd['time_to_ready_s']} s; "
                  f"first search {rd['first_search_ms']} ms, the same query later {rd.get('same_query_later_ms')} ms "
                  f"(x{rd['first_over_later']}; each restart: {each}); other queries p50 {rd['later_search_p50_ms']} ms."]
    return "\n".join(lines) + "\n"
