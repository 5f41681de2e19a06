"""Offline replica of the service's hybrid document search, with the knobs the study turns.

Inputs come from prepare.py (cache/). Everything is exact (brute-force dense, exact BM25):
the service's Qdrant HNSW may differ in a few far-down neighbours.

Service pipeline reproduced by `Config()` defaults (rag_service/services/search.py retrieve,
rag_service/stores/edge.py search):
  result_type=document, top_k=100 -> need = 5*100, limit = need + 10 = 510 fused chunks;
  prefetch = max(limit * prefetch_multiplier(4), 100) = 2040 chunks per arm;
  dense arm: cosine top 2040; lexical arm: chunks sharing >= 1 query term, BM25 top 2040
  (idf = ln(1 + (N - df + 0.5)/(df + 0.5)) over chunks, k1 1.2, b 0.75, avg_len = mean chunk tokens);
  Qdrant weighted RRF: w / ((pos+1)/w... ) - with weights 1:1 it is 1/(k + pos), pos 0-based, k = 60;
  top 510 fused chunks (ties by chunk id) -> documents by their best chunk -> top 100.
"""

from __future__ import annotations

import pickle
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import scipy.sparse as sp

CACHE = Path(__file__).resolve().parent / "cache"


# -- data ---------------------------------------------------------------------------
class Collection:
    def __init__(self, name: str, titled_dense: bool = True) -> None:
        self.name = name
        d = pickle.loads((CACHE / f"{name}.pkl").read_bytes())
        self.doc_ids: list[str] = d["doc_ids"]
        self.titles = d["titles"]
        self.chunk_doc: np.ndarray = d["chunk_doc"]
        self.chunk_tokens: list[list[str]] = d["chunk_tokens"]
        self.chunk_text: list[str] = d["chunk_text"]
        self.doc_tokens: list[list[str]] = d["doc_tokens"]
        self.title_tokens: list[list[str]] = d["title_tokens"]
        self.queries = d["queries"]
        if (CACHE / f"{name}_vec.npz").exists():
            vec = np.load(CACHE / f"{name}_vec.npz")
            self.chunk_vec = vec["chunks"]
            self.qvec = {s: vec[f"q_{s}"] for s in self.queries}
        else:  # lexical-only checks before the vectors exist
            self.chunk_vec = np.zeros((len(self.chunk_tokens), 384), np.float32)
            self.qvec = {s: np.zeros((len(v["ids"]), 384), np.float32) for s, v in self.queries.items()}
        self.titled_vec = None
        p = CACHE / f"{name}_titled.npz"
        if titled_dense and p.exists():
            t = np.load(p)
            self.titled_vec = self.chunk_vec.copy()
            self.titled_vec[t["idx"]] = t["vec"]
        self.vocab: dict[str, int] = {}
        for toks in self.chunk_tokens + self.doc_tokens:
            for tok in toks:
                self.vocab.setdefault(tok, len(self.vocab))
        self.n_chunks, self.n_docs = len(self.chunk_tokens), len(self.doc_ids)
        # first chunk of each doc already starts with the title (checked in prepare)
        self.first_chunk = np.zeros(self.n_chunks, bool)
        seen = set()
        for i, di in enumerate(self.chunk_doc):
            if di not in seen:
                self.first_chunk[i] = True
                seen.add(di)
        self._cache: dict = {}

    def counts(self, token_lists: list[list[str]]) -> sp.csr_matrix:
        rows, cols, vals = [], [], []
        for r, toks in enumerate(token_lists):
            for tok, c in Counter(toks).items():
                j = self.vocab.get(tok)
                if j is not None:
                    rows.append(r)
                    cols.append(j)
                    vals.append(c)
        return sp.csr_matrix((np.asarray(vals, np.float64), (rows, cols)), shape=(len(token_lists), len(self.vocab)))

    def lexical_units(self, unit: str, title_repeat: int) -> list[list[str]]:
        if unit == "doc":
            return self.doc_tokens
        if title_repeat == 0:
            return self.chunk_tokens
        out = []
        for i, toks in enumerate(self.chunk_tokens):
            t = self.title_tokens[self.chunk_doc[i]]
            extra = t * (title_repeat - 1 if self.first_chunk[i] else title_repeat)
            out.append(extra + toks)
        return out

    def bm25_matrix(self, unit: str, k1: float, b: float, title_repeat: int = 0):
        """(W, idf): W[u, t] = tf*(k1+1)/(tf + k1*(1-b+b*dl/avgdl)); idf over the units."""
        key = ("bm25", unit, k1, b, title_repeat)
        if key not in self._cache:
            ckey = ("counts", unit, title_repeat)
            if ckey not in self._cache:
                self._cache[ckey] = self.counts(self.lexical_units(unit, title_repeat))
            tf = self._cache[ckey]
            dl = np.asarray(tf.sum(axis=1)).ravel()
            norm = k1 * (1 - b + b * dl / max(dl.mean(), 1e-9))
            w = tf.tocoo()
            data = w.data * (k1 + 1) / (w.data + norm[w.row])
            W = sp.csr_matrix((data, (w.row, w.col)), shape=tf.shape)
            df = np.asarray((tf > 0).sum(axis=0)).ravel()
            n = tf.shape[0]
            idf = np.log(1 + (n - df + 0.5) / (df + 0.5))
            self._cache[key] = (W, idf)
        return self._cache[key]

    def qrels(self, split: str) -> dict[str, dict[str, int]]:
        return self.queries[split]["qrels"]


# -- configuration ------------------------------------------------------------------------
@dataclass(frozen=True)
class Config:
    # lexical arm
    k1: float = 1.2
    b: float = 0.75
    lex_unit: str = "chunk"  # "chunk" | "doc" (whole-document BM25; fusion then at document level)
    title_repeat: int = 0  # title tokens added to each chunk's BM25 text (first chunk has it once already)
    # dense arm
    titled_dense: bool = False  # vectors of "title\n\nchunk"
    # fusion
    fusion: str = "rrf"  # "rrf" | "minmax" | "zscore"
    rrf_k: float = 60.0
    w_dense: float = 1.0
    w_lex: float = 1.0
    alpha: float = 0.5  # convex: alpha*dense + (1-alpha)*lexical
    level: str = "chunk"  # fuse chunk rankings ("chunk", the service) or per-arm document rankings ("doc")
    # pools (service: prefetch 2040, fused 510)
    prefetch: int = 2040
    fused_pool: int = 510
    # document score from its chunks: "max" | "max2" (max + lam*second) | "summ" (sum of top m)
    agg: str = "max"
    lam: float = 0.0
    m: int = 1
    # pseudo-relevance feedback
    rm3_docs: int = 0  # RM3 feedback units from the first lexical round (0: off)
    rm3_terms: int = 10
    rm3_orig: float = 0.5
    rocchio_k: int = 0  # dense Rocchio: mean of top-k first-round chunk vectors (0: off)
    rocchio_beta: float = 0.0
    rocchio_src: str = "dense"  # "dense" | "hybrid" first-round ranking to take feedback chunks from
    top_k: int = 100


# -- retrieval ---------------------------------------------------------------------------
def _topn(scores: np.ndarray, n: int, positive_only: bool = False) -> np.ndarray:
    """Indices of the n best (stable order by score desc, then index)."""
    if positive_only:
        cand = np.flatnonzero(scores > 0)
    else:
        cand = np.arange(scores.shape[0])
    if cand.size > n:
        part = np.argpartition(-scores[cand], n - 1)[:n]
        cand = cand[part]
    order = np.lexsort((cand, -scores[cand]))
    return cand[order]


def query_matrix(col: Collection, split: str) -> sp.csr_matrix:
    return col.counts(col.queries[split]["tokens"])


def lexical_scores(col: Collection, cfg: Config, q: sp.csr_matrix, unit: str) -> np.ndarray:
    W, idf = col.bm25_matrix(unit, cfg.k1, cfg.b, cfg.title_repeat if unit == "chunk" else 0)
    return np.asarray((q.multiply(idf[None, :]).tocsr() @ W.T).todense())


def rm3_expand(col: Collection, cfg: Config, q: sp.csr_matrix, scores: np.ndarray, unit: str) -> sp.csr_matrix:
    """RM3 (Anserini style): feedback units' L1-normalised term counts weighted by their BM25
    score, top rm3_terms terms, L1-normalised, interpolated with the L1-normalised query."""
    tf = col._cache[("counts", unit, cfg.title_repeat if unit == "chunk" else 0)]
    rows = []
    for i in range(q.shape[0]):
        top = _topn(scores[i], cfg.rm3_docs, positive_only=True)
        qi = q.getrow(i).toarray().ravel()
        if top.size == 0 or qi.sum() == 0:
            rows.append(qi / max(qi.sum(), 1))
            continue
        fb = tf[top]
        fb = sp.diags(1 / np.maximum(np.asarray(fb.sum(axis=1)).ravel(), 1)) @ fb
        weights = np.asarray((sp.diags(scores[i][top]) @ fb).sum(axis=0)).ravel()
        if np.count_nonzero(weights) > cfg.rm3_terms:
            cut = np.argpartition(-weights, cfg.rm3_terms - 1)[: cfg.rm3_terms]
            keep = np.zeros_like(weights)
            keep[cut] = weights[cut]
            weights = keep
        weights = weights / max(weights.sum(), 1e-12)
        rows.append(cfg.rm3_orig * qi / qi.sum() + (1 - cfg.rm3_orig) * weights)
    return sp.csr_matrix(np.vstack(rows))


def _fuse(cfg: Config, dense_list, dense_s, lex_list, lex_s, n_items: int) -> np.ndarray:
    """Fused score per item (0 / -inf for items in no list)."""
    fused = np.full(n_items, -np.inf)
    if cfg.fusion == "rrf":
        fused[:] = 0.0
        pos = np.arange(len(dense_list))
        fused[dense_list] += 1.0 / ((pos + 1) / cfg.w_dense + cfg.rrf_k - 1)
        if len(lex_list) and cfg.w_lex > 0:
            pos = np.arange(len(lex_list))
            fused[lex_list] += 1.0 / ((pos + 1) / cfg.w_lex + cfg.rrf_k - 1)
        fused[fused == 0] = -np.inf
        return fused

    def norm(s):
        if cfg.fusion == "minmax":
            lo, hi = s.min(), s.max()
            return (s - lo) / (hi - lo) if hi > lo else np.ones_like(s), 0.0
        mu, sd = s.mean(), s.std()
        z = (s - mu) / sd if sd > 0 else np.zeros_like(s)
        return z, z.min()

    dn, d_floor = norm(dense_s)
    dense_part = np.full(n_items, np.nan)
    dense_part[dense_list] = dn
    lex_part = np.full(n_items, np.nan)
    if len(lex_list):
        ln, l_floor = norm(lex_s)
        lex_part[lex_list] = ln
    else:
        l_floor = 0.0
    in_any = ~np.isnan(dense_part) | ~np.isnan(lex_part)
    dense_part = np.where(np.isnan(dense_part), d_floor, dense_part)
    lex_part = np.where(np.isnan(lex_part), l_floor, lex_part)
    fused[in_any] = cfg.alpha * dense_part[in_any] + (1 - cfg.alpha) * lex_part[in_any]
    return fused


def _doc_max(col: Collection, chunks: np.ndarray, scores: np.ndarray):
    """Per-arm document ranking: each document scored by its best listed chunk."""
    docs = col.chunk_doc[chunks]
    best = {}
    for d, s in zip(docs, scores):  # lists arrive best first
        if d not in best:
            best[d] = s
    ids = np.fromiter(best.keys(), int, len(best))
    return ids, np.fromiter(best.values(), float, len(best))


def _aggregate(col: Collection, cfg: Config, chunks: np.ndarray, scores: np.ndarray) -> list[tuple[int, float]]:
    per: dict[int, list[float]] = {}
    for c, s in zip(chunks, scores):
        per.setdefault(int(col.chunk_doc[c]), []).append(float(s))
    out = []
    for d, ss in per.items():  # ss is descending (chunks arrive best first)
        if cfg.agg == "max":
            v = ss[0]
        elif cfg.agg == "max2":
            v = ss[0] + cfg.lam * (ss[1] if len(ss) > 1 else 0.0)
        else:
            v = sum(ss[: cfg.m])
        out.append((d, v))
    return out


def run(col: Collection, cfg: Config, split: str) -> dict[str, dict[str, float]]:
    """ranx run {qid: {doc_id: rank-score}} for every query of the split."""
    qids = col.queries[split]["ids"]
    qv = col.qvec[split]
    cv = col.titled_vec if cfg.titled_dense else col.chunk_vec
    q = query_matrix(col, split)
    lex_unit = cfg.lex_unit
    lex = lexical_scores(col, cfg, q, lex_unit)
    if cfg.rm3_docs:
        q2 = rm3_expand(col, cfg, q, lex, lex_unit)
        lex = lexical_scores(col, cfg, q2, lex_unit)
    dense = qv @ cv.T
    if cfg.rocchio_k:
        fb_rows = []
        for i in range(len(qids)):
            if cfg.rocchio_src == "dense":
                top = _topn(dense[i], cfg.rocchio_k)
            else:
                dl = _topn(dense[i], cfg.prefetch)
                ll = _topn(lex[i], cfg.prefetch, positive_only=True) if lex_unit == "chunk" else np.zeros(0, int)
                f = _fuse(replace(cfg, fusion="rrf"), dl, dense[i][dl], ll, lex[i][ll], col.n_chunks)
                top = _topn(f, cfg.rocchio_k)
            fb_rows.append(cv[top].mean(axis=0))
        q_new = qv + cfg.rocchio_beta * np.vstack(fb_rows)
        q_new /= np.linalg.norm(q_new, axis=1, keepdims=True)
        dense = q_new @ cv.T
    out = {}
    for i, qid in enumerate(qids):
        dl = _topn(dense[i], cfg.prefetch)
        if cfg.level == "chunk" and lex_unit == "chunk":
            ll = _topn(lex[i], cfg.prefetch, positive_only=True)
            fused = _fuse(cfg, dl, dense[i][dl], ll, lex[i][ll], col.n_chunks)
            pool = _topn(fused, cfg.fused_pool)
            pool = pool[np.isfinite(fused[pool])]
            docs = _aggregate(col, cfg, pool, fused[pool])
        else:
            # per-arm document rankings, fused at document level
            dd, ds = _doc_max(col, dl, dense[i][dl])
            if lex_unit == "doc":
                ld = _topn(lex[i], cfg.prefetch, positive_only=True)
                ls = lex[i][ld]
            else:
                ll = _topn(lex[i], cfg.prefetch, positive_only=True)
                ld, ls = _doc_max(col, ll, lex[i][ll])
            fused = _fuse(cfg, dd, ds, ld, ls, col.n_docs)
            pool = _topn(fused, cfg.top_k)
            pool = pool[np.isfinite(fused[pool])]
            docs = [(int(d), float(fused[d])) for d in pool]
        docs.sort(key=lambda t: (-t[1], col.doc_ids[t[0]]))
        docs = docs[: cfg.top_k]
        out[qid] = {col.doc_ids[d]: float(len(docs) - r) for r, (d, _) in enumerate(docs)}
    return out


# -- scoring ---------------------------------------------------------------------------
def evaluate(col: Collection, split: str, run_: dict) -> dict[str, float]:
    import warnings

    from ranx import Qrels, Run, evaluate as ev

    warnings.filterwarnings("ignore")
    qrels = Qrels(col.qrels(split))
    r = {qid: (run_.get(qid) or {}) for qid in col.queries[split]["ids"]}
    vals = ev(qrels, Run({k: v for k, v in r.items() if v}), ["ndcg@10", "recall@100"], make_comparable=True)
    return {k: round(float(v), 4) for k, v in vals.items()}


def paired_p(col: Collection, split: str, base: dict, other: dict, metric: str = "ndcg@10") -> float:
    import warnings

    from ranx import Qrels, Run, compare

    warnings.filterwarnings("ignore")
    qrels = Qrels(col.qrels(split))
    a, b = Run(base, name="base"), Run(other, name="other")
    rep = compare(qrels, runs=[a, b], metrics=[metric], stat_test="student", make_comparable=True)
    return float(rep.to_dict()["other"]["comparisons"]["base"][metric])
