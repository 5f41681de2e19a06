"""The ledger of a stale run: every write and every search takes numbers from one global
counter, and the judge decides, from those numbers alone, which hits must not have been
served (see the command's description for the rules)."""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from typing import Any

# What was written, and when it was acknowledged.
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


def normalised(text: str) -> str:
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
        text = normalised(hit.text)
        removed = [op.fact for op in acked if op.kind == "upload" and op.fact and op.version < current]
        if any(normalised(fact) in text for fact in removed):
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


class Phase:
    """The search records of one phase (appended from several threads in the concurrent one)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.records: list[SearchRecord] = []
        self.lock = threading.Lock()

    def ask(self, searcher, mode: str, kind: str, target: str, fact: str | None, query: str, result_type: str,
            filters: dict[str, Any] | None = None) -> None:
        """One query through `searcher` (a benchmarks.stale.service.Searcher), recorded in this phase."""
        rec = SearchRecord(mode=mode, phase=self.name, kind=kind, target=target, fact=fact, sent=0, received=0)
        searcher.search(rec, query, result_type, filters)
        with self.lock:
            self.records.append(rec)
