"""results.md of a latency run: the headline ratios, then one table per measurement."""

from __future__ import annotations

from typing import Any


def _f(value: Any, digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _variant(results: dict[str, Any]) -> str:
    e = results.get("encoder") or {}
    return f"{e['backend']} {e['precision']}" if e else results["settings"]["embedding_precision"]


def _cpu(machine: dict[str, Any]) -> str:
    return f"{machine.get('model', '?')}; {', '.join(machine.get('flags_of_note', []))}"


def markdown(results: dict[str, Any]) -> str:
    lines = _headline(results) + _ingestion(results) + _search(results) + _floor(results) + _rss(results) \
        + _cpu_use(results)
    lines += ["", f"Wall time {_f(results.get('wall_time_s'), 0)} s.", ""]
    return "\n".join(lines)


def _headline(results: dict[str, Any]) -> list[str]:
    s = results["settings"]
    conc = s["concurrency"]
    lines = [
        f"# Latency and ingestion throughput: {results['dataset']} (synthesized chunks)",
        "",
        f"Model `{results['model']}` ({_variant(results)}, batch {s['embedding_batch_size']}), "
        f"{results['machine']['cpus']} CPUs ({_cpu(results['machine'])}), {results['date']}. "
        f"Chunks of at most {s['chunk_max_characters']} "
        f"characters, {s['chunks_per_doc']} per document, unique texts recombined from the corpus's sentences. "
        f"Search: `POST /v1/indexes/{{id}}/search`, result_type={s['result_type']}, top_k={s['top_k']}, "
        f"explain=false, {s['duration_s']:g} s per cell, client-side latency over loopback HTTP.",
        "",
        "## Headline ratios",
        "",
    ]
    cpus = results["machine"]["cpus"] or 1
    busiest = max((e["cpu"]["other_cores"] or 0.0 for e in results["levels"].values() if e.get("cpu")), default=0.0)
    if busiest > 0.1 * cpus:
        lines += [f"**The machine was busy: other work used {busiest:.2f} of {cpus} cores on average during a level "
                  "(see CPU use below), so these figures are not the service's alone.**", ""]
    lines += [
        "| chunks | ingest / encode ceiling (target ≥ 0.8) | "
        + " | ".join(f"{m} p50 / floor, c{conc[0]}" for m in s["modes"]) + " |",
        "|---|---|" + "---|" * len(s["modes"]),
    ]
    for level, e in results["levels"].items():
        ratios = " | ".join(_f(e["search"][m].get("ratio_p50_to_floor"), 2) for m in s["modes"])
        lines.append(f"| {int(level):,} | {_f(e['ingest'].get('ratio'), 3)} | {ratios} |")
    lines += ["", "Target for search: hybrid p50 ≤ 2× floor at 10k chunks, concurrency 1."]
    return lines


def _ingestion(results: dict[str, Any]) -> list[str]:
    s = results["settings"]
    lines = ["", "## Ingestion (upload API vs raw encode)", "",
             "| chunks | chunks uploaded | seconds | API chunks/s | encode ceiling chunks/s | ratio | failed |",
             "|---|---|---|---|---|---|---|"]
    for e in results["levels"].values():
        i = e["ingest"]
        lines.append(f"| {e['chunks']:,} | {i['chunks']:,} | {_f(i['seconds'])} | {_f(i['chunks_per_s'])} | "
                     f"{_f(i['encode_ceiling_chunks_per_s'])} | {_f(i.get('ratio'), 3)} | {i['failed']} |")
    lines += ["", f"{s['upload_concurrency']} concurrent upload clients; the ceiling is the index's encoder "
              f"on up to {s['ceiling_sample']} of the same chunk texts, loaded and run as the service runs it (its "
              f"lanes included), server stopped."]
    return lines


def _search(results: dict[str, Any]) -> list[str]:
    s = results["settings"]
    conc = s["concurrency"]
    lines = ["", "## Search latency (ms, client side)", "",
             "| chunks | mode | floor | " + " | ".join(f"c{c} p50 | c{c} p95 | c{c} p99 | c{c} q/s | c{c} p50/floor"
                                                    for c in conc) + " |",
             "|---|---|---|" + "---|---|---|---|---|" * len(conc)]
    for level, e in results["levels"].items():
        for m in s["modes"]:
            row = e["search"][m]
            cells = " | ".join(f"{_f(row[f'c{c}']['p50_ms'])} | {_f(row[f'c{c}']['p95_ms'])} | "
                               f"{_f(row[f'c{c}']['p99_ms'])} | {_f(row[f'c{c}']['qps'])} | "
                               f"{_f(row[f'c{c}'].get('ratio_p50_to_floor'), 2)}" for c in conc)
            lines.append(f"| {int(level):,} | {m} | {_f(row.get('floor_ms'), 2)} | {cells} |")
    return lines


def _floor(results: dict[str, Any]) -> list[str]:
    modes = results["settings"]["modes"]
    lines = ["", "Floor = median query embedding (one query through the encoder as the service runs it, on one lane; "
             "none for lexical) + median "
             "raw vector-store query (the service's EdgeVectorStore with the SearchRequest SearchService builds), "
             "measured in the benchmark process with the server stopped.", "",
             "| chunks | embed ms | " + " | ".join(f"{m} store ms" for m in modes) + " |",
             "|---|---|" + "---|" * len(modes)]
    for level, e in results["levels"].items():
        fl = e["floor"]
        lines.append(f"| {int(level):,} | {_f(fl['embed_ms'], 2)} | "
                     + " | ".join(_f(fl[m]["store_ms"], 2) for m in modes) + " |")
    return lines


def _rss(results: dict[str, Any]) -> list[str]:
    lines = ["", "## Peak RSS (MB, VmHWM)", "",
             "| chunks | server | children (parser pool) | total | peak concurrent RSS |", "|---|---|---|---|---|"]
    for level, e in results["levels"].items():
        r = e.get("peak_rss_mb") or {}
        lines.append(f"| {int(level):,} | {_f(r.get('server_mb'))} | {_f(r.get('children_mb'))} "
                     f"({r.get('children', 0)}) | {_f(r.get('total_mb'))} | {_f(r.get('peak_concurrent_rss_mb'))} |")
    lines += ["", "The server is restarted for each level, so each row is the peak of one server run (loading the "
              "index so far, topping it up, searching). Children's pages shared with each other are counted once "
              "per process."]
    return lines


def _cpu_use(results: dict[str, Any]) -> list[str]:
    lines = ["", "## CPU use (average cores over each level)", "",
             "| chunks | wall s | machine busy | server + children | benchmark process | other work | of it stolen "
             "by the hypervisor |", "|---|---|---|---|---|---|---|"]
    for level, e in results["levels"].items():
        c = e.get("cpu") or {}
        lines.append(f"| {int(level):,} | {_f(c.get('wall_s'), 0)} | {_f(c.get('machine_busy_cores'), 2)} | "
                     f"{_f(c.get('server_cores'), 2)} | {_f(c.get('benchmark_cores'), 2)} | "
                     f"{_f(c.get('other_cores'), 2)} | {_f(c.get('steal_cores'), 2)} |")
    lines += ["", "From /proc: the machine's busy time less this process's and the server tree's (sampled) CPU time. "
              "Anything but a small 'other work' means the figures above shared the CPU."]
    return lines
