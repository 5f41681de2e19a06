"""Chunk, tokenize and embed SciFact and NFCorpus exactly as the service does, once.

Run from /work/main with its venv:
  cd /work/main && HF_HUB_OFFLINE=1 DO_NOT_TRACK=1 OMP_NUM_THREADS=1 \
      .venv/bin/python docs/studies/quality/prepare.py [stage ...]
Stages: chunks (parse+chunk+tokenize), embed (service chunk vectors + queries),
titled (vectors of "title\n\nchunk" for chunks that do not start with their title).

What the service sees (benchmarks/common.py): each document is uploaded as
`<id>.txt` with text `title + "\n\n" + text` (no title: text), parsed by
pipelines.parse.parse_document, chunked by chunk_elements(elements, 1000, 0),
BM25 tokens = pipelines.lexical.tokenize(chunk.text), dense = all-MiniLM-L6-v2
torch fp32, batch 32, normalised (pipelines.embed.SentenceEmbedder).
"""

from __future__ import annotations

import json
import os
import pickle
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

sys.path.insert(0, "/work/main")
from pipelines.chunk import chunk_elements  # noqa: E402
from pipelines.lexical import tokenize  # noqa: E402
from pipelines.parse import parse_document  # noqa: E402

EVAL = Path("/work/shared/eval")
CACHE = Path(__file__).resolve().parent / "cache"
SETS = {"scifact": ["test"], "nfcorpus": ["test", "dev"]}


def read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def chunks_stage(name: str) -> None:
    rows = read_jsonl(EVAL / name / "corpus.jsonl")
    doc_ids, titles, bodies, full_texts = [], [], [], []
    chunk_doc, chunk_text, chunk_tokens, chunk_ordinal = [], [], [], []
    for d in rows:
        title, text = (d.get("title") or "").strip(), (d.get("text") or "").strip()
        body = f"{title}\n\n{text}" if title else text  # BeirDataset.document_text
        _, elements = parse_document(body.encode("utf-8"), f"{d['_id']}.txt")  # upload_text: <name>.txt
        drafts = chunk_elements(elements, 1000, 0)
        if not drafts:
            continue  # the service refuses an empty document (EmptyDocument)
        di = len(doc_ids)
        doc_ids.append(str(d["_id"]))
        titles.append(title)
        bodies.append(text)
        full_texts.append(body)
        for c in drafts:
            chunk_doc.append(di)
            chunk_text.append(c.text)
            chunk_tokens.append(tokenize(c.text))
            chunk_ordinal.append(c.ordinal)
    out = {
        "doc_ids": doc_ids, "titles": titles, "bodies": bodies, "full_texts": full_texts,
        "chunk_doc": np.asarray(chunk_doc, dtype=np.int32), "chunk_text": chunk_text,
        "chunk_tokens": chunk_tokens, "chunk_ordinal": np.asarray(chunk_ordinal, dtype=np.int32),
        "doc_tokens": [tokenize(t) for t in full_texts], "title_tokens": [tokenize(t) for t in titles],
        "queries": {},
    }
    for split in SETS[name]:
        qfile = EVAL / name / ("queries.jsonl" if split == "test" else f"queries_{split}.jsonl")
        qrels: dict[str, dict[str, int]] = {}
        with (EVAL / name / "qrels" / f"{split}.tsv").open() as f:
            next(f)
            for line in f:
                parts = line.rstrip("\n").split("\t")
                if len(parts) >= 3:
                    qrels.setdefault(parts[0], {})[parts[1]] = int(float(parts[2]))
        qs = {str(q["_id"]): q["text"] for q in read_jsonl(qfile)}
        # benchmarks.common.load_beir: judged queries with at least one relevant judged doc
        qs = {q: t for q, t in qs.items() if qrels.get(q) and any(r > 0 for r in qrels[q].values())}
        out["queries"][split] = {"ids": list(qs), "texts": list(qs.values()),
                                 "tokens": [tokenize(t) for t in qs.values()], "qrels": {q: qrels[q] for q in qs}}
    with (CACHE / f"{name}.pkl").open("wb") as f:
        pickle.dump(out, f)
    print(name, len(doc_ids), "docs", len(chunk_text), "chunks",
          {s: len(v["ids"]) for s, v in out["queries"].items()}, flush=True)


def embedder():
    import torch

    torch.set_num_threads(1)
    from pipelines.embed import SentenceEmbedder

    return SentenceEmbedder("all-MiniLM-L6-v2", "fp32", device="cpu", batch_size=32)


def encode(model, texts: list[str], label: str) -> np.ndarray:
    started = time.time()
    parts = []
    for s in range(0, len(texts), 1024):
        parts.append(model.encode(texts[s:s + 1024]))
        print(f"  {label}: {min(s + 1024, len(texts))}/{len(texts)} {time.time() - started:.0f}s", flush=True)
    return np.concatenate(parts) if parts else np.zeros((0, 384), np.float32)


def embed_stage(name: str, model) -> None:
    data = pickle.loads((CACHE / f"{name}.pkl").read_bytes())
    arrays = {f"q_{s}": encode(model, v["texts"], f"{name} queries {s}") for s, v in data["queries"].items()}
    arrays["chunks"] = encode(model, data["chunk_text"], f"{name} chunks")
    np.savez(CACHE / f"{name}_vec.npz", **arrays)


def titled_stage(name: str, model) -> None:
    """Chunks after the first carry no title text: embed `title\n\nchunk` for those only."""
    data = pickle.loads((CACHE / f"{name}.pkl").read_bytes())
    idx = [i for i, (d, t) in enumerate(zip(data["chunk_doc"], data["chunk_text"]))
           if data["titles"][d] and not t.startswith(data["titles"][d])]
    texts = [f"{data['titles'][data['chunk_doc'][i]]}\n\n{data['chunk_text'][i]}" for i in idx]
    vec = encode(model, texts, f"{name} titled chunks")
    np.savez(CACHE / f"{name}_titled.npz", idx=np.asarray(idx, dtype=np.int64), vec=vec)


if __name__ == "__main__":
    CACHE.mkdir(parents=True, exist_ok=True)
    stages = sys.argv[1:] or ["chunks", "embed", "titled"]
    model = embedder() if {"embed", "titled"} & set(stages) else None
    for stage in ("chunks", "embed", "titled"):
        if stage not in stages:
            continue
        for name in os.environ.get("QUALITY_SETS", "nfcorpus,scifact").split(","):
            started = time.time()
            if stage == "chunks":
                chunks_stage(name)
            elif stage == "embed":
                embed_stage(name, model)
            else:
                titled_stage(name, model)
            print(f"{stage} {name}: {time.time() - started:.0f}s", flush=True)
