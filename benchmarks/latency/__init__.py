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
  - ingestion ceiling: the index's encoder, loaded and run exactly as the service
    runs it (same variant, precision and batch size, through the service's group
    encoder with its lanes: benchmarks/encoders.py as_served), on a sample of the
    chunk texts uploaded at this level; chunks per second.
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
import resource
import time
from pathlib import Path

from benchmarks.common import load_beir, log, parse_modes
from benchmarks.latency.levels import LatencyRun
from benchmarks.latency.report import markdown
from benchmarks.report import emit, write_results
from benchmarks.synthetic import ChunkSynthesizer
from pipelines.chunk import chunking_problem

MODES = ("dense", "lexical", "hybrid")


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


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    modes = parse_modes(args.modes, MODES)
    levels = sorted(set(args.chunks))
    args.concurrency = sorted(set(args.concurrency))  # the headline ratio is the lowest concurrency's
    problem = chunking_problem(args.chunk_chars, 0)
    if problem:
        raise SystemExit(f"--chunk-chars: {problem[1]} (the service's limits)")

    ds = load_beir(args.dataset)
    queries = list(ds.queries.values())
    if not queries:
        raise SystemExit(f"{args.dataset}: no judged queries to search with")
    synth = ChunkSynthesizer(ds, args.chunk_chars, args.seed)
    log(f"{ds.name}: {len(synth.sentences)} usable sentences, {len(queries)} queries; levels {levels}")

    bench = LatencyRun(args, ds.name, modes, queries, synth)
    try:
        for level in levels:
            bench.measure_level(level)
            if args.out:  # after every level: a long run that fails later still leaves the levels it finished
                write_results(args.out, bench.results, markdown(bench.results))
    finally:
        bench.close()

    results = bench.results
    results["client_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    results["wall_time_s"] = round(time.perf_counter() - started, 1)
    log(f"wall time {results['wall_time_s']:.0f}s")
    emit(args.out, results, markdown(results))
    return 0
