"""Report writing: results.json and results.md of any command (`write_results`, `emit`),
and the quality run's own writers: results.md (ours beside the published numbers) and
results.png (nDCG@10 bar chart). Each command builds its own results.md text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.common import log
from benchmarks.references import COMPARABLE


def _fmt(value: float | None, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def write_json(out: Path, results: dict[str, Any]) -> Path:
    path = out / "results.json"
    path.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path


def write_results(out: Path, results: dict[str, Any], markdown: str) -> None:
    """results.json and results.md of any command, under `out` (created if needed)."""
    out.mkdir(parents=True, exist_ok=True)
    write_json(out, results)
    (out / "results.md").write_text(markdown, encoding="utf-8")
    log(f"wrote {out / 'results.json'} and {out / 'results.md'}")


def emit(out: Path | None, results: dict[str, Any], markdown: str) -> None:
    """results.json and results.md under `out`; without one, the JSON on stdout."""
    if out:
        write_results(out, results, markdown)
    else:
        print(json.dumps(results, indent=2))


def write_markdown(out: Path, results: dict[str, Any]) -> Path:
    ds, modes, refs = results["dataset"], results["modes"], results.get("references", [])
    lines = [
        f"# Retrieval quality: {ds} ({results.get('split', 'test')} split)",
        "",
        f"Model `{results['model']}`, {results.get('documents', '?')} documents, "
        f"{results.get('queries', '?')} queries{' (subset)' if results.get('subset') else ''}. "
        "Service modes go through `POST /v1/indexes/{id}/search` (result_type=document, top_k=100); "
        "latency is client-side per query, p50.",
        "",
    ]
    if results.get("subset"):
        lines += ["**Subset run: these numbers are not comparable with the published full-collection ones.**", ""]
    lines += [
        "| system | nDCG@10 | Recall@100 | MRR@10 | p50 ms | published counterpart |",
        "|---|---|---|---|---|---|",
    ]
    for mode, m in modes.items():
        counterpart = COMPARABLE.get(mode) or COMPARABLE.get(m.get("compare_to", ""), "")
        ref = next((r for r in refs if r["system"] == counterpart), None)
        ref_txt = f"{counterpart}: {_fmt(ref['ndcg@10'])}" if ref else ""
        lines.append(f"| ours: {mode} | {_fmt(m['ndcg@10'])} | {_fmt(m['recall@100'])} | {_fmt(m['mrr@10'])} "
                     f"| {_fmt(m.get('latency_ms_p50'), 1)}{'*' if m.get('latency_note') else ''} | {ref_txt} |")
    for r in refs:
        lines.append(f"| {r['system']} | {_fmt(r['ndcg@10'])} | {_fmt(r['recall@100'])} | – | – | {r['source']} |")
    if any(m.get("latency_note") for m in modes.values()):
        lines += ["", "\\* rank_bm25 latency is an in-process `get_scores` over the whole corpus, without HTTP, SQL "
                  "or result shaping: not comparable with the service's latencies."]
    ing = results.get("ingestion")
    if ing:
        lines += [
            "",
            "## Ingestion",
            "",
            f"{ing['documents']} documents ({ing['chunks']} chunks, {ing['failed']} failed) through "
            f"`POST /v1/indexes/{{id}}/documents` with {ing['workers']} concurrent client thread(s): "
            f"{ing['seconds']:.1f} s, {ing['docs_per_s']:.2f} docs/s.",
        ]
    tuning = results.get("tuning")
    if tuning:
        best = tuning["best"]
        lines += ["", f"## Hybrid fusion tuned on the {tuning['split']} split ({tuning['queries']} queries, top 10)", "",
                  "| rrf_k | weights [dense, lexical] | nDCG@10 |", "|---|---|---|"]
        lines += [f"| {g['rrf_k']} | {g['fusion_weights']} | {g['ndcg@10']:.4f}{' (best)' if g is best or g == best else ''} |"
                  for g in tuning["grid"]]
        lines += ["", "`hybrid_tuned` above is the test split searched with the best setting."]
    notes = results.get("notes") or []
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    lines += ["", "Published numbers: /work/shared/eval/REFERENCE.md (sources in the table).", ""]
    path = out / "results.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def write_chart(out: Path, results: dict[str, Any]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bars = [(f"ours: {mode}", m["ndcg@10"], "#ff7f0e" if mode.startswith("rank_bm25") else "#1f77b4")
            for mode, m in results["modes"].items()]
    bars += [(r["system"], r["ndcg@10"], "#aaaaaa") for r in results.get("references", []) if r["ndcg@10"] is not None]
    labels = [b[0] if len(b[0]) <= 60 else b[0][:57] + "..." for b in bars]
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(bars) + 1.5))
    y = range(len(bars))
    ax.barh(list(y), [b[1] for b in bars], color=[b[2] for b in bars])
    for i, (_, value, _) in enumerate(bars):
        ax.text(value + 0.005, i, f"{value:.3f}", va="center", fontsize=8)
    ax.set_yticks(list(y), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("nDCG@10")
    ax.set_xlim(0, max(b[1] for b in bars) * 1.15)
    subset = " - SUBSET, not comparable" if results.get("subset") else ""
    ax.set_title(f"{results['dataset']} ({results.get('split', 'test')}{subset}): "
                 "service (blue), rank_bm25 (orange), published (grey)", fontsize=10)
    fig.tight_layout()
    path = out / "results.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
