"""The study: baseline replica, one method at a time, then the combination - all chosen on
NFCorpus dev nDCG@10 only; NFCorpus test and SciFact test are scored for the chosen settings.

  cd /work/main && OMP_NUM_THREADS=1 .venv/bin/python docs/studies/quality/study.py
Writes docs/studies/quality/results.json (every dev grid point, chosen settings, test scores, p-values).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
import time
from dataclasses import asdict, replace

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402

torch.set_num_threads(1)
from core import Collection, Config, evaluate, paired_p, run  # noqa: E402

OUT = str(Path(__file__).resolve().parent / "results.json")
BASE = Config()


def diff(cfg: Config) -> dict:
    d0 = asdict(BASE)
    return {k: v for k, v in asdict(cfg).items() if d0[k] != v}


class Study:
    def __init__(self) -> None:
        self.nf = Collection("nfcorpus")
        self.sf = Collection("scifact")
        self.dev_cache: dict[Config, float] = {}
        self.base_runs = {"dev": run(self.nf, BASE, "dev"), "test": run(self.nf, BASE, "test"),
                          "scifact": run(self.sf, BASE, "test")}
        self.results: dict = {"baseline": self.report(BASE), "methods": {}}

    def dev(self, cfg: Config) -> float:
        if cfg not in self.dev_cache:
            self.dev_cache[cfg] = evaluate(self.nf, "dev", run(self.nf, cfg, "dev"))["ndcg@10"]
        return self.dev_cache[cfg]

    def grid(self, label: str, cfgs: list[Config]) -> Config:
        started = time.time()
        rows = [(self.dev(c), c) for c in cfgs]
        best = max(rows, key=lambda r: r[0])
        print(f"{label}: {len(cfgs)} configs in {time.time() - started:.0f}s; best dev {best[0]:.4f} {diff(best[1])}",
              flush=True)
        self.results["methods"][label] = {
            "grid": [{"dev_ndcg@10": s, **diff(c)} for s, c in sorted(rows, key=lambda r: -r[0])],
            "chosen": self.report(best[1]),
        }
        self.save()
        return best[1]

    def report(self, cfg: Config) -> dict:
        out = {"settings": diff(cfg)}
        for key, col, split in (("dev", self.nf, "dev"), ("test", self.nf, "test"), ("scifact", self.sf, "test")):
            if cfg.titled_dense and col.titled_vec is None:
                out[key] = {"ndcg@10": None, "recall@100": None, "note": "titled vectors not embedded yet"}
                continue
            r = run(col, cfg, split)
            out[key] = evaluate(col, split, r)
            if cfg != BASE:
                out[key]["p_ndcg@10"] = round(paired_p(col, split, self.base_runs[key], r), 4)
        return out

    def save(self) -> None:
        with open(OUT, "w") as f:
            json.dump(self.results, f, indent=1)


def ascend(s: Study, best: Config, knobs: dict[str, list[dict]], admit, rounds: int = 3) -> tuple[Config, list[dict]]:
    """Coordinate ascent on NFCorpus dev: each knob in turn takes its best option (by more than
    1e-4), until a round changes nothing. `admit` maps a candidate to the config to judge, or None."""
    trace = [{"dev": s.dev(best), **diff(best)}]
    for _round in range(rounds):
        improved = False
        for name, options in knobs.items():
            cand = [c for c in (admit(replace(best, **o)) for o in options) if c is not None]
            top = max(cand, key=s.dev)
            if s.dev(top) > s.dev(best) + 1e-4:
                best, improved = top, True
                trace.append({"knob": name, "dev": s.dev(best), **diff(best)})
                print(f"  ascent {name}: dev {s.dev(best):.4f} {diff(best)}", flush=True)
        if not improved:
            break
    return best, trace


def main() -> None:
    s = Study()
    print("baseline", s.results["baseline"], flush=True)
    B = BASE

    # 1. document score from several chunks
    agg = s.grid("aggregation", [B] + [replace(B, agg="max2", lam=x) for x in (0.1, 0.2, 0.3, 0.5, 1.0)]
                 + [replace(B, agg="summ", m=m) for m in (2, 3, 5)])

    # 2. fusion: RRF k / weights, normalised-score convex combinations, chunk- vs document-level
    fus = [replace(B, rrf_k=k, w_dense=wd, w_lex=wl) for k in (10, 20, 40, 60, 100)
           for wd, wl in ((1, 1), (1, 0.7), (1, 0.5), (0.7, 1), (0.5, 1))]
    fus += [replace(B, fusion=f, alpha=a) for f in ("minmax", "zscore") for a in (0.3, 0.4, 0.5, 0.6, 0.7)]
    fus += [replace(c, level="doc") for c in fus]
    fusion = s.grid("fusion", fus)

    # 3. BM25 k1/b on chunks; BM25 over whole documents (then fused at document level)
    bm = [replace(B, k1=k1, b=b) for k1 in (0.6, 0.9, 1.2, 1.5, 2.0) for b in (0.3, 0.4, 0.6, 0.75, 0.9)]
    bm25 = s.grid("bm25_chunk_k1_b", bm)
    doc_lex = s.grid("bm25_whole_doc", [replace(B, lex_unit="doc", level="doc", k1=k1, b=b)
                                        for k1 in (0.6, 0.9, 1.2, 1.5) for b in (0.3, 0.4, 0.6, 0.75)]
                     + [replace(B, level="doc")])

    # 4. pseudo-relevance feedback
    rm3 = s.grid("rm3", [replace(B, rm3_docs=d, rm3_terms=t, rm3_orig=o) for d in (5, 10, 20)
                         for t in (10, 20, 40) for o in (0.3, 0.5, 0.7)])
    rocchio = s.grid("rocchio", [replace(B, rocchio_k=k, rocchio_beta=beta, rocchio_src=src) for k in (3, 5, 10, 20)
                                 for beta in (0.25, 0.5, 1.0, 2.0) for src in ("dense", "hybrid")])

    # 5. title apart from the body
    title = s.grid("title", [B, replace(B, titled_dense=True)] + [replace(B, title_repeat=r) for r in (1, 2, 3)]
                   + [replace(B, titled_dense=True, title_repeat=r) for r in (1, 2)])

    # 6. combination: coordinate ascent on dev from the best single method, over every method's knobs
    start = max([agg, fusion, bm25, doc_lex, rm3, rocchio, title], key=s.dev)
    best = start
    knobs = {
        "agg": [dict(agg="max"), dict(agg="max2", lam=0.1), dict(agg="max2", lam=0.2), dict(agg="max2", lam=0.3),
                dict(agg="summ", m=2)],
        "fusion": [dict(fusion="rrf", rrf_k=k, w_dense=wd, w_lex=wl) for k in (20, 40, 60, 100)
                   for wd, wl in ((1, 1), (1, 0.7), (0.7, 1))]
        + [dict(fusion=f, alpha=a) for f in ("minmax", "zscore") for a in (0.3, 0.4, 0.5, 0.6, 0.7)],
        "level": [dict(level="chunk"), dict(level="doc"), dict(level="doc", lex_unit="doc")],
        "bm25": [dict(k1=k1, b=b) for k1 in (0.6, 0.9, 1.2, 1.5) for b in (0.3, 0.4, 0.6, 0.75)],
        "rm3": [dict(rm3_docs=0)] + [dict(rm3_docs=d, rm3_terms=t, rm3_orig=o) for d in (5, 10, 20)
                                     for t in (10, 20) for o in (0.3, 0.5, 0.7)],
        "rocchio": [dict(rocchio_k=0, rocchio_beta=0.0)] + [dict(rocchio_k=k, rocchio_beta=beta, rocchio_src=src)
                                                            for k in (3, 5, 10) for beta in (0.25, 0.5, 1.0)
                                                            for src in ("dense", "hybrid")],
        "title": [dict(titled_dense=t, title_repeat=r) for t in (False, True) for r in (0, 1, 2)],
    }
    # document-level BM25 scores only documents: it needs document-level aggregation
    best, trace = ascend(s, best, knobs, lambda c: c if not (c.lex_unit == "doc" and c.level != "doc") else None)
    s.results["combination"] = {"trace": trace, "chosen": s.report(best)}
    s.save()
    print("combination", s.results["combination"]["chosen"], flush=True)


if __name__ == "__main__":
    main()
