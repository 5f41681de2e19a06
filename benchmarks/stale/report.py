"""The verdict of a stale run, from the recorded ledger and search records once the
service is gone: stale hits and gaps per phase and mode, nDCG@10 of the new facts
(ranx, exactly as `quality` scores), and results.md."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.common import BeirDataset, log
from benchmarks.stale.ledger import Ledger, Phase, SearchRecord, is_gap, normalised, surely_live, unchanged_during


def ndcg_at_10(records: list[SearchRecord]) -> float | None:
    """nDCG@10 with ranx (through quality.score): one query per record, its target relevant."""
    if not records:
        return None
    from benchmarks.quality import as_run_scores, score

    ids = [f"q{i}" for i in range(len(records))]
    ds = BeirDataset(name="stale", path=Path("."), split="test", corpus={},
                     queries={q: r.fact or "" for q, r in zip(ids, records)},
                     qrels={q: {r.target: 1} for q, r in zip(ids, records)})
    return score(ds, {q: as_run_scores(r.names) for q, r in zip(ids, records)})["ndcg@10"]


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


def _rate(part: int, whole: int) -> float | None:
    return _round(part / whole) if whole else None


def summarise(results: dict[str, Any], ledger: Ledger, modes: list[str], before: Phase, quiet: Phase,
              concurrent: Phase, conc_info: dict[str, Any], concurrent_ran: bool) -> None:
    stale = [row for phase in (before, quiet, concurrent) for rec in phase.records for row in ledger.judge(rec)]
    stale_by = Counter((s["phase"], s["mode"]) for s in stale)
    gaps = [rec for phase in (quiet, concurrent) for rec in phase.records
            if rec.kind == "continuity" and is_gap(ledger.ops.get(rec.target, []), rec)]
    gaps_by = Counter((rec.phase, rec.mode) for rec in gaps)
    for mode in modes:
        m = _quiet_summary(ledger, mode, before, quiet, stale_by, gaps_by)
        if concurrent_ran:
            m["concurrent"] = _concurrent_summary(ledger, mode, concurrent, conc_info, stale_by, gaps_by)
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


def _quiet_summary(ledger: Ledger, mode: str, before: Phase, quiet: Phase, stale_by: Counter,
                   gaps_by: Counter) -> dict[str, Any]:
    def live_at(rec: SearchRecord) -> bool:
        return surely_live(ledger.ops.get(rec.target, []), rec.sent, rec.received)

    b = [r for r in before.records if r.mode == mode]
    found = [r for r in b if r.target in r.names]
    seen = [r for r in found if any(hit.name == r.target and normalised(r.fact or "") in normalised(hit.text)
                                    for hit in r.hits)]
    q = [r for r in quiet.records if r.mode == mode]
    removed_live = [r for r in q if r.kind == "removed" and live_at(r)]
    return {
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


def _concurrent_summary(ledger: Ledger, mode: str, concurrent: Phase, conc_info: dict[str, Any],
                        stale_by: Counter, gaps_by: Counter) -> dict[str, Any]:
    c = [r for r in concurrent.records if r.mode == mode]
    scored = [r for r in c if r.kind == "new" and unchanged_during(ledger.ops.get(r.target, []), r)]
    overlapping = [r for r in c if any(op.start < r.received and (op.ack is None or op.ack > r.sent)
                                       for op in ledger.ops.get(r.target, []))]
    return {
        "stale_hits": stale_by[("concurrent", mode)],
        "queries": len(c),
        "queries_during_a_write_on_their_document": len(overlapping),
        "uploads_during": conc_info.get("uploads", 0),
        "gaps": gaps_by[("concurrent", mode)],
        "continuity_queries": sum(r.kind == "continuity" for r in c),
        "ndcg@10_current_facts": _round(ndcg_at_10(scored)),
        "current_fact_queries_scored": len(scored),
    }


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
