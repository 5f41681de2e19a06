"""A tiny BEIR-format collection written on the fly, so benchmark commands can run
end to end in CI without ../shared/eval (and without downloading anything)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

_SUBJECTS = ["insulin", "mitochondria", "vitamin D", "gut microbiota", "statins", "sleep deprivation", "melatonin",
             "omega-3 fatty acids", "tau protein", "interleukin-6", "telomerase", "caffeine", "zinc", "ketone bodies",
             "cortisol", "dopamine", "influenza vaccine", "folic acid", "macrophages", "p53"]
_EFFECTS = ["reduces", "increases", "does not change", "delays", "accelerates", "protects against"]
_OUTCOMES = ["bone density", "tumour growth", "blood pressure", "memory consolidation", "muscle repair",
             "liver fibrosis", "heart failure risk", "glucose tolerance", "neuronal survival", "wound healing"]
_FILLER = ["The cohort was followed for two years.", "Samples were analysed in triplicate.",
           "Confounders were adjusted by regression.", "The trial was randomised and double blind.",
           "Results were consistent across sites.", "Effect sizes were moderate.",
           "Participants were recruited from outpatient clinics.", "Measurements used validated assays."]


def write_tiny_beir(root: Path, docs: int = 200, every: int = 5, seed: int = 7) -> Path:
    """`docs` documents; every `every`-th one gets a test query that names its unique
    finding (qrels: that document, relevance 1). Odd-numbered queries go to dev."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / "qrels").mkdir(exist_ok=True)
    corpus, queries, test, dev = [], [], [], []
    for i in range(docs):
        subject, effect, outcome = rng.choice(_SUBJECTS), rng.choice(_EFFECTS), rng.choice(_OUTCOMES)
        marker = f"cohort{i:04d}"
        text = " ".join([f"In the {marker} study, {subject} {effect} {outcome}."] + rng.sample(_FILLER, 4))
        corpus.append({"_id": f"d{i}", "title": f"{subject.capitalize()} and {outcome}", "text": text})
        if i % every == 0:
            qid = f"q{i}"
            queries.append({"_id": qid, "text": f"does {subject} affect {outcome} in the {marker} study"})
            (dev if (i // every) % 2 else test).append((qid, f"d{i}"))
    (root / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in corpus), encoding="utf-8")
    (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries), encoding="utf-8")
    for split, rows in (("test", test), ("dev", dev)):
        lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t1" for q, d in rows]
        (root / "qrels" / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


@pytest.fixture(scope="session")
def tiny_beir(tmp_path_factory) -> Path:
    return write_tiny_beir(tmp_path_factory.mktemp("beir") / "tiny")
