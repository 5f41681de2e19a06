"""`python -m benchmarks stale`: does search ever serve a superseded or deleted version?

Method
------
1. Upload a BEIR corpus (version 1 of every document) through the service's own
   multipart upload path, into a throwaway data directory.
2. Pick a sample of documents. In each, the *key sentence* is the body sentence
   with the most distinctive terms (highest summed IDF over the corpus). Before
   anything changes, ask every mode for each key sentence: the hit rate shows the
   queries really pull the old text up, so "0 stale hits" later means something.
3. Revise: upload version 2 of each sampled document under the same name (with
   `if_version=1`) with the key sentence replaced by a new synthetic fact (an
   invented compound name and a protocol code, in otherwise natural words).
   Soft-delete a few revised documents and restore half of those.
4. Quiet phase: in every mode ask (i) the removed sentences (chunk results),
   (ii) a paraphrase of each new fact (document results) and (iii) a *continuity*
   query: the document's unchanged title, filtered to the document's name (chunk
   results), which must find the document whenever it is live. Every returned hit
   is judged (below); nDCG@10 of the new-fact queries (qrels: the revised document,
   live ones only) is scored with ranx on document names, exactly as `quality` does.
5. Concurrent phase: writer threads keep revising the sampled documents (v3, v4, …,
   each replacing the fact again, with `if_version`), soft-deleting and restoring
   them, while searcher threads ask the same three kinds of queries in every mode
   for `--concurrent-s` seconds, half of them about a document whose write is in
   flight at that moment (that is where a race would show).

Judging
-------
Every write and every search takes numbers from one global counter: a write when
it is sent (`start`) and when its answer came back (`ack`); a search when it is
sent and when its answer came back. A hit on document D at version v is stale when
 - an upload of D at a version above v was acknowledged before the search was sent
   (`old_version`);
 - a soft delete of D was acknowledged before the search was sent and no later
   restore or upload of D (an upload revives a deleted name) had even started
   before the answer came back (`deleted`);
 - its text contains a sentence that an acknowledged upload had removed from D
   (`removed_text`: the same fact checked on the text itself, not on the version
   number the service reports);
 - v is no version any upload of D had started (`unknown_version`), or D was never
   uploaded (`unknown_document`): not stale as such, but nothing a correct service
   may answer, so counted with them.
A continuity query that comes back without its document although the document was
live from before it was sent until its answer (no delete in between) is a *gap*:
the design promises that version N keeps being served while N+1 is indexed. Gaps
are reported beside stale hits; they do not change the exit status.
Operations on one document are issued by one writer, one at a time, so "the last
acknowledged operation" describes the document's state exactly. The judge runs
after each run, on the recorded ledger, so it never slows the searches down.

The service is driven through `ServiceHarness` (the real app via fastapi's
TestClient), as `quality` does: the same routers, auth, SQL and embedded Qdrant,
with no network stack in the way. Requests may come from several threads: each is
handed to the client's one event-loop thread, and the (synchronous) endpoints then
run in anyio's worker thread pool, concurrently, as they would under uvicorn.

Exit status: 0 when no stale hit and no failed request was seen, 1 otherwise, so
the command can gate CI.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import random
import re
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.common import BeirDataset, Progress, ServiceHarness, load_beir, log, parse_modes
from benchmarks.report import write_results

MODES = ("dense", "lexical", "hybrid")
# Extra fields for every search body. Empty in real runs; the tests put
# {"include_history": True} here to make the service serve old versions on purpose
# and prove the judge catches them end to end.
SEARCH_OVERRIDES: dict[str, Any] = {}

# -- the ledger: what was written, and when it was acknowledged ----------------------
_clock = itertools.count(1)  # next() on itertools.count is atomic under the GIL


def tick() -> int:
    return next(_clock)


@dataclass(eq=False)  # identity, not value: an op is found in its document's list by `is`
class WriteOp:
    """One write on one document. `ack` stays None unless the service answered 2xx."""

    kind: str  # "upload" | "delete" | "restore"
    start: int
    version: int | None = None  # uploads: the version the service created
    fact: str | None = None  # uploads: the key sentence this version carries
    ack: int | None = None


@dataclass
class Hit:
    name: str
    version: int
    text: str


@dataclass
class SearchRecord:
    mode: str
    phase: str  # "before" | "quiet" | "concurrent"
    kind: str  # "removed" (a replaced sentence) | "new" (the current fact) | "continuity"
    target: str  # the document the query was built from
    fact: str | None  # the sentence the query was built from
    sent: int
    received: int
    hits: list[Hit] = field(default_factory=list)
    names: list[str] = field(default_factory=list)  # distinct document names, best first


def _norm(text: str) -> str:
    return " ".join(text.split()).lower()


def _position(ops: list[WriteOp], op: WriteOp) -> int:
    return next(i for i, o in enumerate(ops) if o is op)


def _acked_before(ops: list[WriteOp], tick_: int) -> list[WriteOp]:
    return [op for op in ops if op.ack is not None and op.ack < tick_]


def judge_hit(ops: list[WriteOp] | None, hit: Hit, sent: int, received: int) -> str | None:
    """Why this hit must not have been served to a search sent at `sent` and answered
    at `received`, or None when it may be. `ops` are the document's writes in order."""
    if not ops:
        return "unknown_document"
    acked = _acked_before(ops, sent)
    acked_versions = [op.version for op in acked if op.kind == "upload"]
    current = max(acked_versions) if acked_versions else None
    if current is not None and hit.version < current:
        return "old_version"
    if hit.version not in {op.version for op in ops if op.kind == "upload" and op.start < received}:
        return "unknown_version"
    if acked and acked[-1].kind == "delete":
        if not any(op.start < received for op in ops[_position(ops, acked[-1]) + 1:]):
            return "deleted"
    if current is not None:
        text = _norm(hit.text)
        removed = [op.fact for op in acked if op.kind == "upload" and op.fact and op.version < current]
        if any(_norm(fact) in text for fact in removed):
            return "removed_text"
    return None


def surely_live(ops: list[WriteOp], sent: int, received: int) -> bool:
    """The document was live from before `sent` until `received`: its last write
    acknowledged before the search was sent did not delete it, and no delete started
    before the answer came back."""
    acked = _acked_before(ops, sent)
    if not any(op.kind == "upload" for op in acked) or acked[-1].kind == "delete":
        return False
    later = ops[_position(ops, acked[-1]) + 1:]
    return not any(op.kind == "delete" and op.start < received for op in later)


def is_gap(ops: list[WriteOp], rec: SearchRecord) -> bool:
    """A continuity query (filtered to its document) came back without the document
    although the document was live all the while."""
    return rec.target not in rec.names and surely_live(ops, rec.sent, rec.received)


def unchanged_during(ops: list[WriteOp], rec: SearchRecord) -> bool:
    """A current-fact query counts for nDCG only if its document did not change (and
    was live) from before it was sent until its answer, and the fact it asked about
    was the current one: then a miss is a retrieval miss, not a race."""
    acked = _acked_before(ops, rec.sent)
    if not acked or acked[-1].kind == "delete":
        return False
    if any(op.start < rec.received for op in ops[_position(ops, acked[-1]) + 1:]):
        return False
    latest = max((op for op in acked if op.kind == "upload"), key=lambda op: op.version)
    return latest.fact == rec.fact


class Ledger:
    """Writes per document name: appended by the document's one writer, read by searchers."""

    def __init__(self) -> None:
        self.ops: dict[str, list[WriteOp]] = {}
        self.in_flight: set[str] = set()  # documents with a write sent and not yet answered
        self.lock = threading.Lock()

    def begin(self, name: str, kind: str, fact: str | None = None) -> WriteOp:
        with self.lock:
            op = WriteOp(kind=kind, start=tick(), fact=fact)
            self.ops.setdefault(name, []).append(op)
            self.in_flight.add(name)
        return op

    def finish(self, name: str, op: WriteOp, version: int | None = None) -> None:
        """The service acknowledged `op` (call only on success)."""
        with self.lock:
            op.version = version if version is not None else op.version
            op.ack = tick()
            self.in_flight.discard(name)

    def failed(self, name: str) -> None:
        with self.lock:
            self.in_flight.discard(name)

    def busy(self) -> list[str]:
        with self.lock:
            return list(self.in_flight)

    def state(self, name: str) -> tuple[int, str | None, list[str], bool]:
        """(latest acknowledged version, its fact, the facts it replaced, deleted) as of now."""
        with self.lock:
            ops = [op for op in self.ops.get(name, []) if op.ack is not None]
        uploads = [op for op in ops if op.kind == "upload"]
        if not uploads:
            return 0, None, [], False
        latest = max(uploads, key=lambda op: op.version)
        removed = [op.fact for op in uploads if op.fact and op.version < latest.version]
        return latest.version, latest.fact, removed, ops[-1].kind == "delete"

    def judge(self, rec: SearchRecord) -> list[dict[str, Any]]:
        """Every stale hit in one answer, as report rows."""
        stale = []
        for rank, hit in enumerate(rec.hits, 1):
            why = judge_hit(self.ops.get(hit.name), hit, rec.sent, rec.received)
            if why:
                stale.append({"reason": why, "mode": rec.mode, "phase": rec.phase, "query_kind": rec.kind,
                              "query_target": rec.target, "document": hit.name, "version": hit.version,
                              "rank": rank, "text": hit.text[:200]})
        return stale


# -- key sentences and new facts ----------------------------------------------------
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(])")


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text) if s.strip()]


def corpus_idf(ds: BeirDataset) -> dict[str, float]:
    from pipelines.lexical import tokenize

    df: Counter[str] = Counter()
    for doc_id in ds.corpus:
        df.update(set(tokenize(ds.document_text(doc_id))))
    n = len(ds.corpus)
    return {t: math.log((n - c + 0.5) / (c + 0.5) + 1.0) for t, c in df.items()}


def pick_key_sentence(body: str, idf: dict[str, float]) -> str | None:
    """The body sentence with the most distinctive terms: the one a query is most
    likely to pull its document up with, so the removed-sentence queries bite."""
    from pipelines.lexical import tokenize

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


# -- talking to the service -------------------------------------------------------
class Writer:
    """Uploads, deletes and restores, each entered in the ledger before it is sent."""

    def __init__(self, h: ServiceHarness, index_id: str, ledger: Ledger) -> None:
        self.h, self.index_id, self.ledger = h, index_id, ledger
        self.doc_ids: dict[str, str] = {}
        self.counts: Counter[str] = Counter()
        self.errors: list[dict[str, Any]] = []
        self._lock = threading.Lock()  # counts and errors are shared by writer threads

    def _count(self, key: str) -> None:
        with self._lock:
            self.counts[key] += 1

    def _fail(self, op: WriteOp, name: str, response) -> bool:
        self.ledger.failed(name)
        with self._lock:
            self.counts["errors"] += 1
            if len(self.errors) < 20:
                self.errors.append({"op": op.kind, "document": name, "status": response.status_code,
                                    "body": response.text[:300]})
        return False

    def upload(self, name: str, text: str, fact: str | None, if_version: int | None) -> bool:
        op = self.ledger.begin(name, "upload", fact)
        data = {"name": name}
        if if_version is not None:
            # The writer knows the latest version: a 409 here would mean the compare-and-swap is wrong.
            data["if_version"] = str(if_version)
        response = self.h.client.post(
            f"/v1/indexes/{self.index_id}/documents", data=data, headers=self.h.headers,
            files={"file": (f"{name}.txt", text.encode("utf-8"), "text/plain")})
        if response.status_code not in (200, 201):
            return self._fail(op, name, response)
        view = response.json()
        self.doc_ids[name] = view["id"]
        self.ledger.finish(name, op, int(view["version"]))
        self._count("uploads")
        return True

    def delete(self, name: str) -> bool:
        return self._simple(name, "delete", "DELETE", "")

    def restore(self, name: str) -> bool:
        return self._simple(name, "restore", "POST", "/restore")

    def _simple(self, name: str, kind: str, method: str, suffix: str) -> bool:
        op = self.ledger.begin(name, kind)
        url = f"/v1/indexes/{self.index_id}/documents/{self.doc_ids[name]}{suffix}"
        response = self.h.client.request(method, url, headers=self.h.headers)
        if response.status_code != 200:
            return self._fail(op, name, response)
        self.ledger.finish(name, op)
        self._count(kind + "s")
        return True


def do_search(h: ServiceHarness, index_id: str, rec: SearchRecord, query: str, top_k: int, result_type: str,
              filters: dict[str, Any] | None = None) -> SearchRecord:
    """Ask one query; fill `rec` (sent/received ticks, hits). Raises on a non-200 answer."""
    body: dict[str, Any] = {"query": query, "mode": rec.mode, "top_k": top_k, "result_type": result_type,
                            "explain": False, **SEARCH_OVERRIDES}
    if filters:
        body["filters"] = filters
    rec.sent = tick()
    response = h.client.post(f"/v1/indexes/{index_id}/search", json=body, headers=h.headers)
    rec.received = tick()
    if response.status_code != 200:
        raise RuntimeError(f"search -> {response.status_code}: {response.text[:300]}")
    for r in response.json()["results"]:
        text = r["best_chunk"]["text"] if result_type == "document" else r["text"]
        rec.hits.append(Hit(name=r["document_name"], version=int(r["version"]), text=text))
        if r["document_name"] not in rec.names:
            rec.names.append(r["document_name"])
    return rec


def ndcg_at_10(records: list[SearchRecord]) -> float | None:
    """nDCG@10 with ranx (through quality.score): one query per record, its target relevant."""
    if not records:
        return None
    from benchmarks.quality import _as_run_scores, score

    ids = [f"q{i}" for i in range(len(records))]
    ds = BeirDataset(name="stale", path=Path("."), split="test", corpus={},
                     queries={q: r.fact or "" for q, r in zip(ids, records)},
                     qrels={q: {r.target: 1} for q, r in zip(ids, records)})
    return score(ds, {q: _as_run_scores(r.names) for q, r in zip(ids, records)})["ndcg@10"]


# -- the command ------------------------------------------------------------------
def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("stale", help="versioning: stale hits (must be 0) and nDCG@10 on revised facts",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True, type=Path, help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/")
    p.add_argument("--limit-docs", type=int, default=1000, help="documents uploaded (0: the whole corpus)")
    p.add_argument("--sample", type=int, default=100, help="documents revised")
    p.add_argument("--deletes", type=int, default=None,
                   help="revised documents soft-deleted before the quiet phase (half restored again); "
                        "default: a tenth of the sample")
    p.add_argument("--modes", default=",".join(MODES), help="comma-separated subset of dense,lexical,hybrid")
    p.add_argument("--top-k", type=int, default=10)
    p.add_argument("--concurrent-s", type=float, default=30.0, help="length of the concurrent phase (0: skip it)")
    p.add_argument("--writers", type=int, default=1, help="writer threads in the concurrent phase")
    p.add_argument("--searchers", type=int, default=2, help="searcher threads in the concurrent phase")
    p.add_argument("--workers", type=int, default=2, help="upload threads for version 1 of the corpus")
    p.add_argument("--model", default=None, help="embedding model of the index (default: the service's default)")
    p.add_argument("--chunk-chars", type=int, default=None,
                   help="index chunk_max_characters (default: the service's, so longer documents have several "
                        "chunks per version)")
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--out", type=Path, default=None, help="write results.json and results.md here")
    p.add_argument("--keep-data", action="store_true", help="keep the temporary data directory")
    return p


def _split_title(ds: BeirDataset, doc_id: str) -> tuple[str, str]:
    doc = ds.corpus[doc_id]
    return (doc.get("title") or "").strip(), (doc.get("text") or "").strip()


def _compose(title: str, body: str) -> str:
    # The layout of BeirDataset.document_text, so version 1 and its revisions differ only in the fact.
    return f"{title}\n\n{body}" if title else body


class Phase:
    """The search records of one phase (appended from several threads in the concurrent one)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.records: list[SearchRecord] = []
        self.lock = threading.Lock()

    def ask(self, h: ServiceHarness, index_id: str, mode: str, kind: str, target: str, fact: str | None,
            query: str, top_k: int, result_type: str, filters: dict[str, Any] | None = None) -> None:
        rec = SearchRecord(mode=mode, phase=self.name, kind=kind, target=target, fact=fact, sent=0, received=0)
        do_search(h, index_id, rec, query, top_k, result_type, filters)
        with self.lock:
            self.records.append(rec)


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
        title, body = _split_title(ds, d)
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


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    modes = parse_modes(args.modes, MODES)
    ds = load_beir(args.dataset, "test", args.limit_docs or None)
    plan = plan_run(ds, args)
    log(f"{ds.name}: {len(ds.corpus)} documents; revising {len(plan.sample)}, deleting {len(plan.deleted)}, "
        f"restoring {len(plan.restored)}; modes {', '.join(modes)}")
    facts = FactMaker(random.Random(args.seed + 1))
    ledger = Ledger()
    before, quiet, concurrent = Phase("before"), Phase("quiet"), Phase("concurrent")
    search_errors: list[str] = []
    results: dict[str, Any] = {"dataset": ds.name, "model": None, "documents": len(ds.corpus),
                               "revised": len(plan.sample), "deleted": len(plan.deleted) - len(plan.restored),
                               "restored": len(plan.restored), "modes": {}, "stale_hits_total": 0}

    with ServiceHarness(keep=args.keep_data) as h:
        log(f"service data dir: {h.data_dir}")
        fields: dict[str, Any] = {"privacy_tier": "public", "description": f"stale benchmark {ds.name}"}
        if args.chunk_chars:
            fields["chunk_max_characters"] = args.chunk_chars
        if args.model:
            fields["embedding_model"] = args.model
        index = h.create_index(f"stale-{ds.name}", **fields)
        index_id = index["id"]
        results["model"] = index["embedding_model"]
        results["service"] = {"chunking": index["chunking"], "endpoint": "POST /v1/indexes/{id}/search",
                              "top_k": args.top_k, "explain": False, "removed_queries": "result_type=chunk",
                              "new_fact_queries": "result_type=document",
                              "continuity_queries": "result_type=chunk, filters={name: document}",
                              **({"overrides": SEARCH_OVERRIDES} if SEARCH_OVERRIDES else {})}
        writer = Writer(h, index_id, ledger)

        # 1. Version 1 of everything (create-only: the index is new).
        with Progress("upload v1", len(ds.corpus)) as bar, ThreadPoolExecutor(max(1, args.workers)) as pool:
            for _ in pool.map(lambda d: writer.upload(d, ds.document_text(d), plan.keys.get(d), if_version=0),
                              list(ds.corpus)):
                bar.advance()
        if writer.counts["errors"]:
            log(f"{writer.counts['errors']} uploads failed, e.g. {writer.errors[:1]}")
        sample = [d for d in plan.sample if d in writer.doc_ids]

        # 2. Before any revision: do the key sentences find their documents?
        with Progress("search key sentences (before)", len(sample) * len(modes)) as bar:
            for mode in modes:
                for d in sample:
                    before.ask(h, index_id, mode, "removed", d, plan.keys[d], plan.keys[d], args.top_k, "chunk")
                    bar.advance()

        # 3. Revise, delete, restore.
        current: dict[str, tuple[str, str, str]] = {}  # doc -> (body, fact, fact query)
        with Progress("upload v2", len(sample)) as bar:
            for d in sample:
                title, body = _split_title(ds, d)
                fact, query = facts.make()
                new_body = body.replace(plan.keys[d], fact)
                writer.upload(d, _compose(title, new_body), fact, if_version=1)
                current[d] = (new_body, fact, query)
                bar.advance()
        for d in plan.deleted:
            writer.delete(d)
        for d in plan.restored:
            writer.restore(d)

        # 4. Quiet phase: nothing is written while these run.
        with Progress("search (quiet)", 3 * len(sample) * len(modes)) as bar:
            for mode in modes:
                for d in sample:
                    _, fact, query = current[d]
                    quiet.ask(h, index_id, mode, "removed", d, plan.keys[d], plan.keys[d], args.top_k, "chunk")
                    quiet.ask(h, index_id, mode, "new", d, fact, query, args.top_k, "document")
                    quiet.ask(h, index_id, mode, "continuity", d, None, plan.continuity[d], args.top_k, "chunk",
                              {"name": d})
                    bar.advance(3)

        # 5. Concurrent phase.
        conc_info: dict[str, Any] = {"seconds": args.concurrent_s, "writers": args.writers,
                                     "searchers": args.searchers}
        if args.concurrent_s > 0 and sample:
            counts_before = Counter(writer.counts)
            run_concurrent(h, index_id, ds, plan, sample, current, modes, args, writer, ledger, facts, concurrent,
                           search_errors)
            done = Counter(writer.counts)
            done.subtract(counts_before)
            conc_info.update(uploads=done["uploads"], deletes=done["deletes"], restores=done["restores"],
                             searches=len(concurrent.records))
            log(f"concurrent: {len(concurrent.records)} searches beside {done['uploads']} uploads, "
                f"{done['deletes']} deletes, {done['restores']} restores")

    # The service is gone: the ledger and the records are all the judge needs.
    summarise(results, ledger, modes, before, quiet, concurrent, conc_info, args)
    results["write_errors"] = writer.errors
    results["search_errors"] = search_errors[:20]
    results["wall_time_s"] = round(time.perf_counter() - started, 1)
    log(f"stale hits: {results['stale_hits_total']}; gaps: {results['gaps_total']}; write errors: "
        f"{writer.counts['errors']}; search errors: {len(search_errors)}; wall time {results['wall_time_s']:.0f}s")
    if args.out:
        write_results(args.out, results, markdown(results))
    else:
        print(json.dumps(results, indent=2))
    return 1 if results["stale_hits_total"] or writer.counts["errors"] or search_errors else 0


def run_concurrent(h: ServiceHarness, index_id: str, ds: BeirDataset, plan: Plan, sample: list[str],
                   current: dict[str, tuple[str, str, str]], modes: list[str], args: argparse.Namespace,
                   writer: Writer, ledger: Ledger, facts: FactMaker, phase: Phase, search_errors: list[str]) -> None:
    stop = threading.Event()
    paraphrase = {fact: query for _, fact, query in current.values()}  # fact -> its query
    paraphrase_lock = threading.Lock()

    def write_loop(mine: list[str], seed: int) -> None:
        r = random.Random(seed)
        while not stop.is_set():
            d = r.choice(mine)
            version, _, _, is_deleted = ledger.state(d)
            roll = r.random()
            if is_deleted and roll < 0.5:
                writer.restore(d)
            elif not is_deleted and roll < 0.15:
                writer.delete(d)
            else:  # a new revision (on a deleted name it also revives the document, as the service defines)
                title, _ = _split_title(ds, d)
                body, old_fact, _ = current[d]
                fact, query = facts.make()
                with paraphrase_lock:
                    paraphrase[fact] = query
                new_body = body.replace(old_fact, fact)
                if writer.upload(d, _compose(title, new_body), fact, if_version=version):
                    current[d] = (new_body, fact, query)  # only this thread writes d's entry

    def search_loop(seed: int) -> None:
        r = random.Random(seed)
        for i in itertools.count():
            if stop.is_set():
                return
            mode = modes[i % len(modes)]
            busy = ledger.busy()
            # Half the time, a document being written right now: that is where a race would show.
            d = r.choice(busy) if busy and r.random() < 0.5 else r.choice(sample)
            _, fact, removed, _ = ledger.state(d)
            roll = r.random()
            try:
                if roll < 1 / 3 and removed:
                    old = r.choice(removed)
                    with paraphrase_lock:
                        query = paraphrase.get(old, old) if r.random() < 0.5 else old
                    phase.ask(h, index_id, mode, "removed", d, old, query, args.top_k, "chunk")
                elif roll < 2 / 3:
                    with paraphrase_lock:
                        query = paraphrase.get(fact, fact)
                    phase.ask(h, index_id, mode, "new", d, fact, query, args.top_k, "document")
                else:
                    phase.ask(h, index_id, mode, "continuity", d, None, plan.continuity[d], args.top_k, "chunk",
                              {"name": d})
            except Exception as exc:  # noqa: BLE001 - recorded and reported; the run then fails
                search_errors.append(f"{type(exc).__name__}: {exc}")

    writers = max(1, args.writers)
    shares = [sample[i::writers] for i in range(writers)]  # one writer per document: its ops stay in order
    threads = [threading.Thread(target=write_loop, args=(mine, args.seed + 100 + i), daemon=True)
               for i, mine in enumerate(shares) if mine]
    threads += [threading.Thread(target=search_loop, args=(args.seed + 200 + i,), daemon=True)
                for i in range(max(1, args.searchers))]
    log(f"concurrent phase: {len(threads)} threads for {args.concurrent_s:.0f}s")
    for t in threads:
        t.start()
    time.sleep(args.concurrent_s)
    stop.set()
    for t in threads:
        t.join()


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


def _rate(part: int, whole: int) -> float | None:
    return _round(part / whole) if whole else None


def summarise(results: dict[str, Any], ledger: Ledger, modes: list[str], before: Phase, quiet: Phase,
              concurrent: Phase, conc_info: dict[str, Any], args: argparse.Namespace) -> None:
    stale = [row for phase in (before, quiet, concurrent) for rec in phase.records for row in ledger.judge(rec)]
    stale_by = Counter((s["phase"], s["mode"]) for s in stale)
    gaps = [rec for phase in (quiet, concurrent) for rec in phase.records
            if rec.kind == "continuity" and is_gap(ledger.ops.get(rec.target, []), rec)]
    gaps_by = Counter((rec.phase, rec.mode) for rec in gaps)

    def live_at(rec: SearchRecord) -> bool:
        return surely_live(ledger.ops.get(rec.target, []), rec.sent, rec.received)

    for mode in modes:
        b = [r for r in before.records if r.mode == mode]
        found = [r for r in b if r.target in r.names]
        seen = [r for r in found if any(hit.name == r.target and _norm(r.fact or "") in _norm(hit.text)
                                        for hit in r.hits)]
        q = [r for r in quiet.records if r.mode == mode]
        removed_live = [r for r in q if r.kind == "removed" and live_at(r)]
        m: dict[str, Any] = {
            "stale_hits": stale_by[("quiet", mode)],
            "queries": len(q),
            "ndcg@10_new_facts": _round(ndcg_at_10([r for r in q if r.kind == "new" and live_at(r)])),
            "gaps": gaps_by[("quiet", mode)],
            # The revised document still answers its removed sentence (the rest of its text matches),
            # which is exactly when the service had to choose the new version over the old one.
            "removed_queries_served_new_version@10": _rate(sum(r.target in r.names for r in removed_live),
                                                           len(removed_live)),
            "before_revision": {
                "queries": len(b),
                "stale_hits": stale_by[("before", mode)],
                "key_sentence_hit@10": _rate(len(found), len(b)),
                # Hits of the target whose text holds the whole key sentence: how much of the
                # `removed_text` check the chunking leaves possible (a sentence split by a chunk edge is not).
                "text_check_coverage": _rate(len(seen), len(found)),
            },
        }
        if args.concurrent_s > 0:
            c = [r for r in concurrent.records if r.mode == mode]
            scored = [r for r in c if r.kind == "new" and unchanged_during(ledger.ops.get(r.target, []), r)]
            overlapping = [r for r in c if any(op.start < r.received and (op.ack is None or op.ack > r.sent)
                                               for op in ledger.ops.get(r.target, []))]
            m["concurrent"] = {
                "stale_hits": stale_by[("concurrent", mode)],
                "queries": len(c),
                "queries_during_a_write_on_their_document": len(overlapping),
                "uploads_during": conc_info.get("uploads", 0),
                "gaps": gaps_by[("concurrent", mode)],
                "continuity_queries": sum(r.kind == "continuity" for r in c),
                "ndcg@10_current_facts": _round(ndcg_at_10(scored)),
                "current_fact_queries_scored": len(scored),
            }
        results["modes"][mode] = m
        log(f"{mode}: {json.dumps(m)}")
    results["concurrent"] = conc_info
    results["stale_hits_total"] = len(stale)
    results["stale_reasons"] = dict(Counter(s["reason"] for s in stale))
    results["stale_examples"] = stale[:20]
    results["gaps_total"] = len(gaps)
    results["gap_examples"] = [{"mode": g.mode, "phase": g.phase, "document": g.target, "sent": g.sent,
                                "received": g.received,
                                # The document's last writes up to the answer, to see which one it raced.
                                "writes": [{"kind": op.kind, "version": op.version, "start": op.start, "ack": op.ack}
                                           for op in ledger.ops.get(g.target, []) if op.start < g.received][-4:]}
                               for g in gaps[:10]]


def markdown(results: dict[str, Any]) -> str:
    def f(v: Any, digits: int = 4) -> str:
        return "–" if v is None else (f"{v:.{digits}f}" if isinstance(v, float) else str(v))

    conc = results.get("concurrent") or {}
    lines = [
        f"# Versioning: stale hits on {results['dataset']}",
        "",
        f"Model `{results['model']}`, {results['documents']} documents; {results['revised']} revised "
        f"(key sentence replaced by a new fact), {results['deleted']} soft-deleted, {results['restored']} "
        "deleted and restored. Removed-sentence queries ask for chunk results, new-fact queries for document "
        "results, continuity queries (the unchanged title, filtered to the document) for chunk results; every "
        "hit is judged against the writes acknowledged before the query was sent.",
        "",
        f"**Stale hits: {results['stale_hits_total']}** (must be 0). Gaps (a live document not served): "
        f"{results['gaps_total']}.",
        "",
        "| mode | quiet queries | stale | gaps | nDCG@10 new facts | key sentence hit@10 before | "
        "removed sentence → new version@10 | concurrent queries | stale | gaps | nDCG@10 current facts |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for mode, m in results["modes"].items():
        c = m.get("concurrent") or {}
        lines.append(f"| {mode} | {m['queries']} | {m['stale_hits']} | {m['gaps']} | {f(m['ndcg@10_new_facts'])} "
                     f"| {f(m['before_revision']['key_sentence_hit@10'])} "
                     f"| {f(m['removed_queries_served_new_version@10'])} | {f(c.get('queries'))} "
                     f"| {f(c.get('stale_hits'))} | {f(c.get('gaps'))} | {f(c.get('ndcg@10_current_facts'))} |")
    if conc.get("uploads") is not None:
        lines += ["", f"Concurrent phase: {conc['seconds']:.0f} s, {conc['writers']} writer and "
                  f"{conc['searchers']} searcher thread(s); {conc['uploads']} uploads, {conc['deletes']} deletes, "
                  f"{conc['restores']} restores during it; half the queries target a document with a write in "
                  "flight. Its nDCG@10 counts only queries whose document did not change while they ran."]
    if results.get("stale_reasons"):
        lines += ["", "Stale hits by reason: " + ", ".join(f"{k} {v}" for k, v in results["stale_reasons"].items())]
    lines.append("")
    return "\n".join(lines)
