"""One latency run, level by level: the index grows on one data directory; for each
level the server is (re)started, topped up and searched, then stopped while the
ceilings are measured with the machine to ourselves."""

from __future__ import annotations

import argparse
import math
import secrets
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import Progress, cpu_info, expect, log, rounded
from benchmarks.latency.ceilings import encode_ceiling, load_embedder, search_floor
from benchmarks.latency.load import search_cell, upload
from benchmarks.procstats import CpuAccount
from benchmarks.server import ServerProcess, free_port
from benchmarks.synthetic import ChunkSynthesizer, embedded_texts


class LatencyRun:
    """The state one run carries from level to level: the data directory, the index,
    the chunks it holds so far, the encoder (loaded once) and the results."""

    def __init__(self, args: argparse.Namespace, dataset: str, modes: list[str], queries: list[str],
                 synth: ChunkSynthesizer) -> None:
        from rag_service.config import Settings

        self.args, self.dataset, self.modes, self.queries, self.synth = args, dataset, modes, queries, synth
        self.data_dir = Path(tempfile.mkdtemp(prefix="rag-latency-"))
        # The same settings the server reads (its environment is ours plus the pins ServerProcess sets).
        self.settings = Settings(data_dir=self.data_dir, database_url="", qdrant_url="", rate_limit_per_minute=0)
        self.api_key = f"rag_bench_{secrets.token_hex(16)}"
        self.port = args.port or free_port()
        self.results = self._initial_results()
        self.index: dict[str, Any] | None = None
        self.embedder = None
        self.total_chunks = 0
        log(f"data dir {self.data_dir}, server on 127.0.0.1:{self.port}")

    def _initial_results(self) -> dict[str, Any]:
        args, settings = self.args, self.settings
        return {
            "benchmark": "latency", "dataset": self.dataset, "model": None,
            "machine": cpu_info(),
            "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "settings": {
                "modes": self.modes, "concurrency": args.concurrency, "duration_s": args.duration_s,
                "max_requests_per_cell": args.queries, "top_k": args.top_k, "result_type": args.result_type,
                "explain": False, "upload_concurrency": args.upload_concurrency,
                "chunks_per_doc": args.chunks_per_doc, "chunk_max_characters": args.chunk_chars,
                "ceiling_sample": args.ceiling_sample, "floor_queries": min(args.floor_queries, len(self.queries)),
                "embedding_precision": settings.embedding_precision,
                "embedding_batch_size": settings.embedding_batch_size,
                "server": "python -m rag_service.cli serve (uvicorn, 1 worker, embedded SQLite + qdrant-edge, "
                          "restarted per level), clients: httpx over 127.0.0.1 from this process",
            },
            "levels": {},
        }

    def measure_level(self, level: int) -> None:
        entry: dict[str, Any] = {}
        # Whether something else shared the CPU: it distorts every figure here.
        cpu = CpuAccount()
        with ServerProcess(self.data_dir, self.api_key, self.port) as server:
            self._ensure_index(server)
            level_texts = self._top_up(server, level, entry)
            entry["search"] = self._search(server, level)
        entry["peak_rss_mb"] = server.rss
        # Server stopped: the ceilings, with the machine to ourselves.
        self._ingest_ceiling(level, entry, level_texts)
        self._search_floor(level, entry)
        entry["cpu"] = cpu.report(server.cpu_s)
        log(f"level {level}: CPU use in cores: {entry['cpu']}")
        self.results["levels"][str(level)] = entry

    def close(self) -> None:
        if self.args.keep_data:
            log(f"kept data dir {self.data_dir}")
        else:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def _ensure_index(self, server: ServerProcess) -> None:
        if self.index is not None:
            return

        # Creating the index loads the embedding model (for its dimension): can take a while.
        self.index = expect(httpx.post(f"{server.base_url}/v1/indexes", headers={"X-API-Key": self.api_key},
                                       timeout=300, json={"name": f"latency-{self.dataset}", "privacy_tier": "public",
                                                          "chunk_max_characters": self.args.chunk_chars,
                                                          "chunk_overlap": 0}), 201)
        self.results["model"] = self.index["embedding_model"]
        self.results["encoder"] = self.index.get("encoder")

    def _top_up(self, server: ServerProcess, level: int, entry: dict[str, Any]) -> list[str]:
        """Uploads until the index holds `level` chunks; returns the chunk texts sent at this level."""
        args = self.args
        # Untimed warm-up upload: the model and the parser pool load on first use.
        warm = self.synth.documents(1, args.chunks_per_doc)
        warm_stats = upload(server, self.index["id"], warm, 1)
        if warm_stats.failed:
            raise RuntimeError(f"warm-up upload failed: {warm_stats.errors}")
        self.total_chunks += warm_stats.chunks
        level_texts = embedded_texts(warm)  # what the model embeds for them (titled), for the ceiling

        need = max(0, level - self.total_chunks)
        documents = self.synth.documents(math.ceil(need / args.chunks_per_doc), args.chunks_per_doc)
        level_texts += embedded_texts(documents)
        t0 = time.perf_counter()
        with Progress(f"upload to {level} chunks", len(documents)) as bar:
            stats = upload(server, self.index["id"], documents, args.upload_concurrency, bar)
        seconds = time.perf_counter() - t0
        self.total_chunks += stats.chunks
        sent = len(documents) * args.chunks_per_doc
        entry["chunks"] = self.total_chunks
        entry["ingest"] = {
            "documents": stats.documents, "chunks": stats.chunks, "paragraphs_sent": sent,
            "failed": stats.failed, "seconds": round(seconds, 2),
            "chunks_per_s": rounded(stats.chunks / seconds) if seconds and stats.chunks else None,
            "docs_per_s": rounded(stats.documents / seconds) if seconds and stats.documents else None,
            "upload_concurrency": args.upload_concurrency,
            "warmup_chunks_untimed": warm_stats.chunks,
            **({"first_errors": stats.errors[:3]} if stats.errors else {}),
        }
        log(f"level {level}: +{stats.chunks} chunks ({stats.failed} failed uploads) in {seconds:.1f}s, "
            f"{entry['ingest']['chunks_per_s']} chunks/s; index holds {self.total_chunks}")
        if stats.chunks != sent:
            log(f"note: {sent} paragraphs sent became {stats.chunks} chunks (expected one each)")
        return level_texts

    def _search(self, server: ServerProcess, level: int) -> dict[str, Any]:
        """Every (mode, concurrency) cell, each mode warmed up first."""
        args, queries, index_id = self.args, self.queries, self.index["id"]
        search: dict[str, Any] = {}
        for mode in self.modes:
            warm_up = search_cell(server, index_id, mode, queries[:5], 1, 60.0, min(5, len(queries)),
                                  args.top_k, args.result_type)
            if warm_up["errors"]:
                raise RuntimeError(f"{mode} search fails: {warm_up.get('first_errors')}")
            cells = search.setdefault(mode, {})
            for c in args.concurrency:
                cell = search_cell(server, index_id, mode, queries, c, args.duration_s, args.queries,
                                   args.top_k, args.result_type)
                cells[f"c{c}"] = cell
                log(f"level {level} {mode} c{c}: p50 {cell['p50_ms']} ms, p95 {cell['p95_ms']}, "
                    f"p99 {cell['p99_ms']}, {cell['qps']} q/s ({cell['requests']} requests, "
                    f"{cell['errors']} errors)")
        return search

    def _ingest_ceiling(self, level: int, entry: dict[str, Any], level_texts: list[str]) -> None:
        if self.embedder is None:
            self.embedder = load_embedder(self.index, self.settings)
        ceiling = encode_ceiling(self.embedder, level_texts, self.args.ceiling_sample, self.args.seed + level)
        ing = entry["ingest"]
        ing["encode_ceiling"] = ceiling
        ing["encode_ceiling_chunks_per_s"] = ceiling["chunks_per_s"]
        ing["ratio"] = rounded(ing["chunks_per_s"] / ceiling["chunks_per_s"], 3) if ing["chunks_per_s"] else None
        log(f"level {level}: encode ceiling {ceiling['chunks_per_s']} chunks/s -> ingest ratio {ing['ratio']}")

    def _search_floor(self, level: int, entry: dict[str, Any]) -> None:
        args, concurrency = self.args, self.args.concurrency
        floor = search_floor(self.data_dir, self.index["collection_alias"], self.embedder,
                             self.queries[: args.floor_queries], self.modes, args.top_k, args.result_type,
                             self.settings)
        entry["floor"] = floor
        for mode in self.modes:
            f, row = floor[mode], entry["search"][mode]
            row["floor_ms"] = f["floor_ms"]
            for c in concurrency:
                cell = row[f"c{c}"]
                cell["ratio_p50_to_floor"] = rounded(cell["p50_ms"] / f["floor_ms"], 2) if cell["p50_ms"] else None
            row["ratio_p50_to_floor"] = row[f"c{concurrency[0]}"]["ratio_p50_to_floor"]
            log(f"level {level} {mode}: floor {f['floor_ms']} ms (embed {f['embed_ms']} + store {f['store_ms']}); "
                + ", ".join(f"c{c} p50/floor {row[f'c{c}']['ratio_p50_to_floor']}" for c in concurrency))
