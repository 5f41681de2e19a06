"""What a stale run revises and asks, fixed before the service starts: each document's
key sentence (the one version 2 replaces), the new synthetic facts that replace it,
and the sample of documents revised, deleted and restored."""

from __future__ import annotations

import argparse
import math
import random
import re
import threading
from collections import Counter
from dataclasses import dataclass

from benchmarks.common import BeirDataset
from pipelines.lexical import tokenize

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(])")


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text) if s.strip()]


def corpus_idf(ds: BeirDataset) -> dict[str, float]:
    df: Counter[str] = Counter()
    for doc_id in ds.corpus:
        df.update(set(tokenize(ds.document_text(doc_id))))
    n = len(ds.corpus)
    return {t: math.log((n - c + 0.5) / (c + 0.5) + 1.0) for t, c in df.items()}


def pick_key_sentence(body: str, idf: dict[str, float]) -> str | None:
    """The body sentence with the most distinctive terms: the one a query is most
    likely to pull its document up with, so the removed-sentence queries bite."""
    best, best_score = None, 0.0
    for s in sentences(body):
        words = len(s.split())
        # Unique in the body, so replacing it removes it; a sentence, not a fragment or a whole abstract.
        if words < 6 or words > 80 or body.count(s) != 1:
            continue
        score = sum(idf.get(t, 0.0) for t in set(tokenize(s)))
        if score > best_score:
            best, best_score = s, score
    return best


_PREFIX = ["vel", "quor", "zan", "tib", "mor", "lux", "dra", "pex", "sol", "kir", "ban", "fen", "ral", "tor", "cal"]
_MIDDLE = ["a", "o", "i", "e", "u", "ar", "en", "is", "om", "ul"]
_SUFFIX = ["mide", "xetine", "parin", "zumab", "tinib", "lol", "vir", "mycin", "statin", "prazole", "dronate"]
_AGENTS = ["daily supplementation", "a single infusion", "low-dose treatment", "weekly injections",
           "an oral regimen", "topical application", "combined therapy"]
_EFFECTS = ["lowered", "raised", "stabilised", "did not alter", "halved", "doubled", "delayed"]
_OUTCOMES = ["serum ferritin", "retinal thickness", "platelet aggregation", "cartilage loss", "renal clearance",
             "airway resistance", "skin elasticity", "bone turnover", "hearing thresholds", "lymphocyte counts",
             "enamel erosion", "tendon stiffness"]
_PEOPLE = ["elderly volunteers", "adolescent athletes", "dialysis patients", "pregnant women", "night-shift nurses",
           "marathon runners", "smokers", "children with asthma"]


class FactMaker:
    """New key sentences: natural words around an invented compound name and a
    protocol code, both unique, so a query about the fact has one right answer.
    Thread-safe (writers share one)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng, self.used = rng, set()
        self.lock = threading.Lock()

    def make(self) -> tuple[str, str]:
        """(sentence, a query that paraphrases it)."""
        with self.lock:
            r = self.rng
            while True:
                compound = (r.choice(_PREFIX) + r.choice(_MIDDLE) + r.choice(_SUFFIX)).capitalize()
                code = f"{r.choice('BCDFGHKLMNPRSTVZ')}{r.choice('BCDFGHKLMNPRSTVZ')}-{r.randint(100, 999)}"
                if compound not in self.used and code not in self.used:
                    self.used.update((compound, code))
                    break
            agent, effect, outcome, people = (r.choice(_AGENTS), r.choice(_EFFECTS), r.choice(_OUTCOMES),
                                              r.choice(_PEOPLE))
            n = r.randint(40, 900)
        sentence = (f"In the {compound} trial (protocol {code}), {agent} of {compound.lower()} {effect} "
                    f"{outcome} in {n} {people}.")
        query = f"what did the {compound} trial {code} find about {outcome} in {people}"
        return sentence, query


def split_title(ds: BeirDataset, doc_id: str) -> tuple[str, str]:
    doc = ds.corpus[doc_id]
    return (doc.get("title") or "").strip(), (doc.get("text") or "").strip()


def compose(title: str, body: str) -> str:
    # The layout of BeirDataset.document_text, so version 1 and its revisions differ only in the fact.
    return f"{title}\n\n{body}" if title else body


@dataclass
class Plan:
    """What the run revises and asks: fixed before the service starts."""

    keys: dict[str, str]  # doc -> its key sentence (the one version 2 replaces)
    continuity: dict[str, str]  # doc -> a query made of text no revision touches (its title)
    sample: list[str]
    deleted: list[str]
    restored: list[str]


def plan_run(ds: BeirDataset, args: argparse.Namespace) -> Plan:
    rng = random.Random(args.seed)
    idf = corpus_idf(ds)
    keys, continuity = {}, {}
    for d in ds.corpus:
        title, body = split_title(ds, d)
        key = pick_key_sentence(body, idf)
        if not key:
            continue
        keys[d] = key
        # The title, or failing that the first body sentence that is not the key one.
        continuity[d] = title or next((s for s in sentences(body) if s != key), "")
    candidates = sorted(d for d in keys if continuity[d])
    sample = rng.sample(candidates, min(args.sample, len(candidates)))
    n_del = min(len(sample), args.deletes if args.deletes is not None else max(1, len(sample) // 10))
    deleted = sample[:n_del]  # the sample is in random order already
    return Plan(keys=keys, continuity=continuity, sample=sample, deleted=deleted, restored=deleted[: n_del // 2])
