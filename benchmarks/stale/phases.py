"""The phases of a stale run against one index: version 1 of the corpus, the key
sentences asked before any revision, the revision (with deletes and restores), the
quiet phase, and the concurrent phase where writers and searchers race."""

from __future__ import annotations

import argparse
import itertools
import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from benchmarks.common import BeirDataset, Progress, ServiceHarness, log
from benchmarks.stale.facts import FactMaker, Plan, compose, split_title
from benchmarks.stale.ledger import Ledger, Phase
from benchmarks.stale.service import Searcher, Writer


def create_index(h: ServiceHarness, ds: BeirDataset, args: argparse.Namespace) -> dict[str, Any]:
    fields: dict[str, Any] = {"privacy_tier": "public", "description": f"stale benchmark {ds.name}"}
    if args.chunk_chars:
        fields["chunk_max_characters"] = args.chunk_chars
    if args.model:
        fields["embedding_model"] = args.model
    return h.create_index(f"stale-{ds.name}", **fields)


@dataclass
class Session:
    """What every phase of one run needs; `current` is each revised document's
    (body, fact, fact query) as last uploaded."""

    ds: BeirDataset
    plan: Plan
    modes: list[str]
    args: argparse.Namespace
    searcher: Searcher
    writer: Writer
    ledger: Ledger
    facts: FactMaker
    sample: list[str] = field(default_factory=list)
    current: dict[str, tuple[str, str, str]] = field(default_factory=dict)

    def upload_originals(self) -> None:
        """1. Version 1 of everything (create-only: the index is new)."""
        ds, plan, writer = self.ds, self.plan, self.writer
        with Progress("upload v1", len(ds.corpus)) as bar, ThreadPoolExecutor(max(1, self.args.workers)) as pool:
            for _ in pool.map(lambda d: writer.upload(d, ds.document_text(d), plan.keys.get(d), if_version=0),
                              list(ds.corpus)):
                bar.advance()
        if writer.counts["errors"]:
            log(f"{writer.counts['errors']} uploads failed, e.g. {writer.errors[:1]}")
        self.sample = [d for d in plan.sample if d in writer.doc_ids]

    def ask_before(self, phase: Phase) -> None:
        """2. Before any revision: do the key sentences find their documents?"""
        keys = self.plan.keys
        with Progress("search key sentences (before)", len(self.sample) * len(self.modes)) as bar:
            for mode in self.modes:
                for d in self.sample:
                    phase.ask(self.searcher, mode, "removed", d, keys[d], keys[d], "chunk")
                    bar.advance()

    def revise(self) -> None:
        """3. Revise, delete, restore."""
        with Progress("upload v2", len(self.sample)) as bar:
            for d in self.sample:
                title, body = split_title(self.ds, d)
                fact, query = self.facts.make()
                new_body = body.replace(self.plan.keys[d], fact)
                self.writer.upload(d, compose(title, new_body), fact, if_version=1)
                self.current[d] = (new_body, fact, query)
                bar.advance()
        for d in self.plan.deleted:
            self.writer.delete(d)
        for d in self.plan.restored:
            self.writer.restore(d)

    def ask_quiet(self, phase: Phase) -> None:
        """4. Quiet phase: nothing is written while these run."""
        plan, searcher = self.plan, self.searcher
        with Progress("search (quiet)", 3 * len(self.sample) * len(self.modes)) as bar:
            for mode in self.modes:
                for d in self.sample:
                    _, fact, query = self.current[d]
                    phase.ask(searcher, mode, "removed", d, plan.keys[d], plan.keys[d], "chunk")
                    phase.ask(searcher, mode, "new", d, fact, query, "document")
                    phase.ask(searcher, mode, "continuity", d, None, plan.continuity[d], "chunk", {"name": d})
                    bar.advance(3)

    def race(self, phase: Phase, search_errors: list[str]) -> dict[str, Any]:
        """5. Concurrent phase; returns what it did (seconds, threads, writes, searches)."""
        args = self.args
        info: dict[str, Any] = {"seconds": args.concurrent_s, "writers": args.writers, "searchers": args.searchers}
        if args.concurrent_s <= 0 or not self.sample:
            return info
        counts_before = Counter(self.writer.counts)
        Race(self, phase, search_errors).run()
        done = Counter(self.writer.counts)
        done.subtract(counts_before)
        info.update(uploads=done["uploads"], deletes=done["deletes"], restores=done["restores"],
                    searches=len(phase.records))
        log(f"concurrent: {len(phase.records)} searches beside {done['uploads']} uploads, "
            f"{done['deletes']} deletes, {done['restores']} restores")
        return info


class Race:
    """Writer threads keep revising, deleting and restoring the sample (one writer per
    document, so its ops stay in order) while searcher threads ask about it."""

    def __init__(self, session: Session, phase: Phase, search_errors: list[str]) -> None:
        self.s, self.phase, self.search_errors = session, phase, search_errors
        self.stop = threading.Event()
        self.paraphrase = {fact: query for _, fact, query in session.current.values()}  # fact -> its query
        self.paraphrase_lock = threading.Lock()

    def run(self) -> None:
        args, sample = self.s.args, self.s.sample
        writers = max(1, args.writers)
        shares = [sample[i::writers] for i in range(writers)]  # one writer per document: its ops stay in order
        threads = [threading.Thread(target=self.write_loop, args=(mine, args.seed + 100 + i), daemon=True)
                   for i, mine in enumerate(shares) if mine]
        threads += [threading.Thread(target=self.search_loop, args=(args.seed + 200 + i,), daemon=True)
                    for i in range(max(1, args.searchers))]
        log(f"concurrent phase: {len(threads)} threads for {args.concurrent_s:.0f}s")
        for t in threads:
            t.start()
        time.sleep(args.concurrent_s)
        self.stop.set()
        for t in threads:
            t.join()

    def write_loop(self, mine: list[str], seed: int) -> None:
        s, r = self.s, random.Random(seed)
        while not self.stop.is_set():
            d = r.choice(mine)
            version, _, _, is_deleted = s.ledger.state(d)
            roll = r.random()
            if is_deleted and roll < 0.5:
                s.writer.restore(d)
            elif not is_deleted and roll < 0.15:
                s.writer.delete(d)
            else:  # a new revision (on a deleted name it also revives the document, as the service defines)
                title, _ = split_title(s.ds, d)
                body, old_fact, _ = s.current[d]
                fact, query = s.facts.make()
                with self.paraphrase_lock:
                    self.paraphrase[fact] = query
                new_body = body.replace(old_fact, fact)
                if s.writer.upload(d, compose(title, new_body), fact, if_version=version):
                    s.current[d] = (new_body, fact, query)  # only this thread writes d's entry

    def search_loop(self, seed: int) -> None:
        s, r = self.s, random.Random(seed)
        for i in itertools.count():
            if self.stop.is_set():
                return
            mode = s.modes[i % len(s.modes)]
            busy = s.ledger.busy()
            # Half the time, a document being written right now: that is where a race would show.
            d = r.choice(busy) if busy and r.random() < 0.5 else r.choice(s.sample)
            try:
                self._ask_one(r, mode, d)
            except Exception as exc:  # noqa: BLE001 - recorded and reported; the run then fails
                self.search_errors.append(f"{type(exc).__name__}: {exc}")

    def _ask_one(self, r: random.Random, mode: str, d: str) -> None:
        _, fact, removed, _ = self.s.ledger.state(d)
        roll = r.random()
        if roll < 1 / 3 and removed:
            old = r.choice(removed)
            with self.paraphrase_lock:
                query = self.paraphrase.get(old, old) if r.random() < 0.5 else old
            self.phase.ask(self.s.searcher, mode, "removed", d, old, query, "chunk")
        elif roll < 2 / 3:
            with self.paraphrase_lock:
                query = self.paraphrase.get(fact, fact)
            self.phase.ask(self.s.searcher, mode, "new", d, fact, query, "document")
        else:
            self.phase.ask(self.s.searcher, mode, "continuity", d, None, self.s.plan.continuity[d], "chunk",
                           {"name": d})
