"""torch on a small CPU: one model thread with an OpenMP team over every core, or one
single-threaded copy of the model per core ("lanes"), with and without a competing process
that keeps part of a core busy (the service's parsing, SQL and HTTP beside the encoder).

    .venv/bin/python docs/studies/encoder/lanes.py [--variant torch-bf16] [--dataset ../shared/eval/scifact]

Each row is one run of all three arrangements on the same 1,200 titled chunk texts, in
calls of 40 texts (about what two 20-chunk uploads give the group encoder)."""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the repository root: benchmarks, pipelines


def burn(stop, duty: float) -> None:
    """Busy for `duty` of every 10 ms."""
    while not stop.is_set():
        started = time.perf_counter()
        while time.perf_counter() - started < duty * 0.01:
            pass
        time.sleep((1 - duty) * 0.01)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variant", default="torch-bf16")
    p.add_argument("--dataset", type=Path, default=Path("../shared/eval/scifact"))
    args = p.parse_args()
    import torch

    from benchmarks.common import cpu_info, load_beir
    from benchmarks.synthetic import ChunkSynthesizer, embedded_texts
    from pipelines.embed import SentenceEmbedder

    backend, precision = args.variant.split("-")
    assert backend == "torch", "lanes are a torch arrangement"
    texts = embedded_texts(ChunkSynthesizer(load_beir(args.dataset), 300, 7).documents(60, 20))[:1200]
    calls = [texts[i:i + 40] for i in range(0, len(texts), 40)]
    cores = len(os.sched_getaffinity(0))
    one = SentenceEmbedder("all-MiniLM-L6-v2", precision)
    copies = [one] + [one.replica() for _ in range(cores - 1)]

    def one_team() -> float:
        pool = cf.ThreadPoolExecutor(1)
        pool.submit(torch.set_num_threads, cores).result()
        pool.submit(one.encode, calls[0]).result()
        started = time.perf_counter()
        for c in calls:
            pool.submit(one.encode, c).result()
        pool.shutdown()
        return len(texts) / (time.perf_counter() - started)

    def lanes() -> float:
        pools = [cf.ThreadPoolExecutor(1) for _ in copies]
        for pool, model in zip(pools, copies):
            pool.submit(torch.set_num_threads, 1).result()
            pool.submit(model.encode, calls[0]).result()
        started = time.perf_counter()
        futures = [pools[i % len(pools)].submit(copies[i % len(copies)].encode, c) for i, c in enumerate(calls)]
        for f in futures:
            f.result()
        for pool in pools:
            pool.shutdown()
        return len(texts) / (time.perf_counter() - started)

    print(f"{cpu_info()['model']}, {cores} cores, {args.variant}, chunks/s")
    print("| competing process, share of a core | one thread, OpenMP over all cores | one copy a core, single-threaded | again: one thread |")
    print("|---|---|---|---|")
    for duty in (0.0, 0.3, 0.6):
        stop = mp.Event()
        procs = [mp.Process(target=burn, args=(stop, duty))] if duty else []
        for proc in procs:
            proc.start()
        try:
            row = (one_team(), lanes(), one_team())
        finally:
            stop.set()
            for proc in procs:
                proc.join()
        print(f"| {duty:.0%} | {row[0]:.1f} | {row[1]:.1f} | {row[2]:.1f} |", flush=True)


if __name__ == "__main__":
    main()
