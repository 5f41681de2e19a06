"""The quality run's own writers: results.md (ours beside the published numbers, the
paired tests against the control run, the differences from the published rows) and
results.png (nDCG@10 bar chart)."""

from __future__ import annotations

import json

from pathlib import Path
from typing import Any

from benchmarks.quality_tune import markdown_lines
from benchmarks.references import COMPARABLE

METRIC_LABELS = {"ndcg@10": "nDCG@10", "recall@100": "Recall@100", "mrr@10": "MRR@10"}


def _fmt(value: float | None, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _signed(value: float | None) -> str:
    return "–" if value is None else f"{value:+.4f}"


def _p(cell: dict[str, Any]) -> str:
    if cell["p_value"] is None:
        return "– (too few queries)"
    if cell["identical"]:
        return f"{cell['p_value']:.4f} (identical per query)"
    return f"{cell['p_value']:.4f}{' **significant**' if cell['significant'] else ''}"


def index_lines(results: dict[str, Any]) -> list[str]:
    """How the index was made, so nobody reads `default` on a tuned index as what a user gets."""
    service = results.get("service") or {}
    chunking, bm25 = service.get("chunking") or {}, service.get("bm25") or {}
    made = (f"chunking max {chunking.get('max_characters')} characters, overlap {chunking.get('overlap')}; "
            f"BM25 k1={bm25.get('k1')}, b={bm25.get('b')}")
    if service.get("index_defaults", True):
        return [f"Index created with the service's default settings ({made}): `default` is what a user gets.", ""]
    sent = ", ".join(f"{k}={v}" for k, v in service.get("index_settings", {}).items())
    return [f"**Index not created with the service's default settings** ({sent}; {made}): `default` is the "
            "default request on this index, not what a user gets.", ""]


def comparison_lines(results: dict[str, Any]) -> list[str]:
    comparison = results.get("comparison")
    if not comparison or not comparison.get("modes"):  # e.g. only `default` was run: nothing to test
        return []
    control = comparison["control"]
    metrics = list(METRIC_LABELS)
    if control["source"] == "this run":
        what = f"this run's `{control['mode']}`"
    else:
        what = f"`{control['mode']}` of the previous results in `{control['source']}`"
        chunking = control.get("chunking") or {}
        made = [f"model {control['model']}" if control.get("model") else "",
                f"chunking max {chunking['max_characters']} / overlap {chunking['overlap']}" if chunking else "",
                {True: "index with default settings", False: "index not with default settings"}.get(
                    control.get("index_defaults"), ""),
                {True: "with --exclude-self", False: "without --exclude-self"}.get(control.get("exclude_self"), "")]
        if any(made):
            what += f" ({', '.join(m for m in made if m)})"
    lines = ["", f"## Paired tests against {what}", "",
             f"ranx `compare`, two-sided paired Student's t-test (`stat_test=\"{comparison['stat_test']}\"`) over "
             f"per-query scores; significant at p ≤ {comparison['max_p']}. Δ = mode − control; W/T/L are "
             "the queries where the mode's nDCG@10 is higher / equal / lower.", ""]
    if control.get("missing_queries"):
        lines += [f"{control['missing_queries']} of this run's judged queries have no hits in the control run "
                  "(another subset?): they count as zero there.", ""]
    lines += ["| mode | " + " | ".join(f"{METRIC_LABELS[m]} Δ | p" for m in metrics) + " | W/T/L nDCG@10 |",
              "|---|" + "---|---|" * len(metrics) + "---|"]
    for mode, cells in comparison["modes"].items():
        if cells is None:
            lines.append(f"| {mode} | " + "no hits | – | " * len(metrics) + "– |")
            continue
        row = " | ".join(f"{_signed(cells[m]['delta'])} | {_p(cells[m])}" for m in metrics)
        n = cells["ndcg@10"]
        lines.append(f"| {mode} | {row} | {n['wins']}/{n['ties']}/{n['losses']} |")
    control_scores = next((c for c in comparison["modes"].values() if c), None)
    if control_scores:
        lines += ["", "Control: " + ", ".join(f"{METRIC_LABELS[m]} {_fmt(control_scores[m]['control'])}"
                                               for m in metrics) + "."]
    return lines


def published_lines(results: dict[str, Any]) -> list[str]:
    refs, deltas = results.get("references") or [], results.get("versus_published") or {}
    if not refs or not deltas:
        return ["", "## Against the published rows", "", "No published rows for this collection."]
    modes = list(deltas)
    lines = ["", "## Against the published rows", "",
             "Published rows have scores only (no per-query runs), so this is a difference, not a test: "
             "Δ nDCG@10 / Δ Recall@100 (ours − published); **bold** is the mode's own counterpart.", ""]
    if results.get("subset"):
        lines += ["**Subset run: not comparable with the published full-collection numbers.**", ""]
    lines += ["| published system | nDCG@10 | " + " | ".join(modes) + " |", "|---|---|" + "---|" * len(modes)]
    for r in refs:
        cells = []
        for mode in modes:
            d = deltas[mode][r["system"]]
            text = _signed(d["ndcg@10"]) + (f" / {_signed(d['recall@100'])}" if d["recall@100"] is not None else "")
            counterpart = COMPARABLE.get(mode) or COMPARABLE.get(results["modes"][mode].get("compare_to", ""))
            cells.append(f"**{text}**" if counterpart == r["system"] else text)
        lines.append(f"| {r['system']} | {_fmt(r['ndcg@10'])} | " + " | ".join(cells) + " |")
    return lines


def write_markdown(out: Path, results: dict[str, Any]) -> Path:
    ds, modes, refs = results["dataset"], results["modes"], results.get("references", [])
    top_k = (results.get("service") or {}).get("top_k", 100)
    lines = [
        f"# Retrieval quality: {ds} ({results.get('split', 'test')} split)",
        "",
        f"Model `{results['model']}`, {results.get('documents', '?')} documents, "
        f"{results.get('queries', '?')} queries{' (subset)' if results.get('subset') else ''}. "
        f"Service modes go through `POST /v1/indexes/{{id}}/search` (result_type=document, top_k={top_k}); "
        "`default` sends no mode or fusion fields. Latency is client-side per query, p50.",
        "",
    ]
    lines += index_lines(results)
    if results.get("exclude_self"):
        removed = {m: r["self_hits_removed"] for m, r in modes.items() if "self_hits_removed" in r}
        lines += [f"`--exclude-self` (BEIR's rule for query-by-document collections): a hit whose document id is "
                  f"the query id was dropped before scoring and before the top-{top_k} cut. Self hits dropped: "
                  + ", ".join(f"{m} {n}" for m, n in removed.items()) + ".", ""]
    if results.get("subset"):
        lines += ["**Subset run: these numbers are not comparable with the published full-collection ones.**", ""]
    lat = results.get("latency_top10")
    if lat:
        lines += [f"Latency at top_k {lat['top_k']} ({lat['queries']} queries, each asked both ways back to back): "
                  f"`default` p50 {lat['default']['latency_ms_p50']} ms / p95 {lat['default']['latency_ms_p95']} ms, "
                  f"`previous` ({json.dumps(lat['previous_request'])}) p50 {lat['previous']['latency_ms_p50']} ms / "
                  f"p95 {lat['previous']['latency_ms_p95']} ms: **×{lat['ratio_p50']} at p50, ×{lat['ratio_p95']} at p95**.", ""]
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
    lines += comparison_lines(results)
    lines += published_lines(results)
    if results.get("runs"):
        lines += ["", "## Runs", "", "Each mode's ranked list per query, in ranx's JSON format "
                  "(`ranx.Run.from_file(path)`): " + ", ".join(f"`{p}`" for p in results["runs"].values()) + "."]
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
    tune_job = markdown_lines(results.get("tune_job"))
    if tune_job:
        lines += [""] + tune_job
    notes = results.get("notes") or []
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    lines += ["", "Published numbers: /work/shared/eval/REFERENCE.md (sources in the table).", ""]
    path = out / "results.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def write_chart(out: Path, results: dict[str, Any]) -> Path:
    import matplotlib  # heavy, and only the chart needs it

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
    ax.set_xlim(0, max(max(b[1] for b in bars) * 1.15, 0.05))
    subset = " - SUBSET, not comparable" if results.get("subset") else ""
    ax.set_title(f"{results['dataset']} ({results.get('split', 'test')}{subset}): "
                 "service (blue), rank_bm25 (orange), published (grey)", fontsize=10)
    fig.tight_layout()
    path = out / "results.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
