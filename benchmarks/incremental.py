"""`python -m benchmarks incremental`: how many chunks a new version embeds again.

Vectors are cached by chunk text, so a chunk whose text is unchanged is reused and
only changed chunks go to the model. Whether an edit stays cheap therefore depends
on the chunker keeping boundaries where they were (pipelines/chunk.py).

Method: generated English-like documents of about 10 to 200 chunks (`--sizes`),
each as plain text and as Markdown with a heading every few paragraphs, are
uploaded through the service (`ServiceHarness`: the real app, SQLite, embedded
Qdrant, the real model). Then each edit is applied to version 1 and uploaded as
the next version of the same document: one paragraph inserted near the start
(after the first paragraph), in the middle; one word changed near the start and in
the middle; a middle paragraph deleted; a paragraph appended; and, with headings,
a new section inserted in the middle. Reported per edit: the upload answer's
`chunks_embedded` out of its `chunk_count`. Beside it, for comparison and computed
outside the service on the same elements, what unstructured's greedy
`chunk_by_title` (the chunker before) would have re-embedded.

The issue's own case is measured on its own, over `--issue-seeds` documents: one
paragraph inserted after the first of 30 plain-text paragraphs. Exit status 1
when any of them re-embeds more than a quarter of its chunks (the target), else 0.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path
from typing import Any, Callable

from benchmarks.common import ServiceHarness, expect, log
from benchmarks.parse_speed import heading, paragraph
from benchmarks.report import emit

TARGET_FRACTION = 0.25
Edit = Callable[[list[str], random.Random], list[str]]


def _insert(at: Callable[[int], int]) -> Edit:
    return lambda blocks, rng: blocks[: at(len(blocks))] + [paragraph(rng)] + blocks[at(len(blocks)):]


def _change_word(at: Callable[[int], int]) -> Edit:
    def edit(blocks: list[str], rng: random.Random) -> list[str]:
        i = next(j for j in range(at(len(blocks)), len(blocks)) if not blocks[j].startswith("#"))
        words = blocks[i].split(" ")
        words[len(words) // 2] = "zeppelin"
        return blocks[:i] + [" ".join(words)] + blocks[i + 1:]
    return edit


def _delete(at: Callable[[int], int]) -> Edit:
    return lambda blocks, rng: blocks[: at(len(blocks))] + blocks[at(len(blocks)) + 1:]


def _new_section(blocks: list[str], rng: random.Random) -> list[str]:
    mid = len(blocks) // 2
    return blocks[:mid] + [f"## {heading(rng)}", paragraph(rng), paragraph(rng)] + blocks[mid:]


def _middle(n: int) -> int:
    return n // 2


EDITS: dict[str, Edit] = {
    "insert_start": _insert(lambda n: 1),
    "insert_middle": _insert(_middle),
    "change_word_start": _change_word(lambda n: 1),
    "change_word_middle": _change_word(_middle),
    "delete_middle": _delete(_middle),
    "append": lambda blocks, rng: blocks + [paragraph(rng)],
}
HEADING_EDITS = {"insert_section": _new_section}


def _document(chunks: int, headings: bool, seed: int, max_characters: int) -> list[str]:
    """Blocks (paragraphs, '## headings') for about `chunks` chunks at this chunk size."""
    rng = random.Random(seed)
    blocks: list[str] = []
    size = 0
    # Chunks fill about half the budget on average (pipelines/chunk.py).
    while size < chunks * max_characters * 0.5:
        if headings and len(blocks) % 6 == 0:
            blocks.append(f"## {heading(rng)}")
        blocks.append(paragraph(rng))
        size += len(blocks[-1]) + 2
    return blocks


def _greedy_chunk_hashes(text: str, filename: str, max_characters: int) -> list[str]:
    """What the chunker before (chunk_by_title, greedy, same settings as it had) would have made."""
    from unstructured.chunking.title import chunk_by_title
    from unstructured.documents.elements import ListItem, NarrativeText, Table, Text, Title

    from pipelines.chunk import content_hash
    from pipelines.parse import parse_document

    kinds = {"Title": Title, "NarrativeText": NarrativeText, "ListItem": ListItem, "Table": Table}
    elements = [kinds.get(e.category, Text)(text=e.text) for e in parse_document(text.encode(), filename)[1]]
    chunks = chunk_by_title(elements, max_characters=max_characters, new_after_n_chars=max_characters,
                            combine_text_under_n_chars=min(max_characters // 2, 500))
    return [content_hash(c.text.strip()) for c in chunks if c.text.strip()]


def _upload(h: ServiceHarness, index_id: str, filename: str, text: str) -> dict[str, Any]:
    before = h.ctx.embedders.encode_calls
    r = h.client.post(f"/v1/indexes/{index_id}/documents", headers=h.headers,
                      files={"file": (filename, text.encode("utf-8"))}, data={"name": filename})
    body = expect(r, 201)
    # The upload answer reports it; the model's own counter is the fallback and the cross-check.
    body.setdefault("chunks_embedded", h.ctx.embedders.encode_calls - before)
    return body


def run_document(h: ServiceHarness, index_id: str, chunks: int, headings: bool, seed: int,
                 max_characters: int) -> dict[str, Any]:
    blocks = _document(chunks, headings, seed, max_characters)
    filename = f"doc-{chunks}-{'md' if headings else 'txt'}.{'md' if headings else 'txt'}"
    text = "\n\n".join(blocks)
    v1 = _upload(h, index_id, filename, text)
    greedy_before = set(_greedy_chunk_hashes(text, filename, max_characters))
    row: dict[str, Any] = {"target_chunks": chunks, "headings": headings, "chunks": v1["chunk_count"],
                           "characters": len(text), "edits": {}}
    edits = {**EDITS, **(HEADING_EDITS if headings else {})}
    for n, (name, edit) in enumerate(edits.items()):
        edited = "\n\n".join(edit(blocks, random.Random(seed * 100 + n)))
        answer = _upload(h, index_id, filename, edited)
        greedy = _greedy_chunk_hashes(edited, filename, max_characters)
        greedy_new = sum(g not in greedy_before for g in greedy)
        row["edits"][name] = {
            "embedded": answer["chunks_embedded"], "total": answer["chunk_count"],
            "fraction": round(answer["chunks_embedded"] / answer["chunk_count"], 4),
            "greedy_embedded": greedy_new, "greedy_total": len(greedy),
            "greedy_fraction": round(greedy_new / len(greedy), 4),
        }
    return row


def run_issue_case(h: ServiceHarness, seeds: int) -> dict[str, Any]:
    """The issue's own case: one paragraph inserted after the first of 30, plain text, per seed,
    in an index with the default chunking settings."""
    index_id = h.create_index("issue-case")["id"]
    max_characters = h.get_index(index_id)["chunking"]["max_characters"]
    fractions, greedy = [], []
    for seed in range(seeds):
        rng = random.Random(10_000 + seed)
        blocks = [paragraph(rng) for _ in range(30)]
        filename = f"issue-case-{seed}.txt"
        _upload(h, index_id, filename, "\n\n".join(blocks))
        edited = "\n\n".join(EDITS["insert_start"](blocks, rng))
        answer = _upload(h, index_id, filename, edited)
        fractions.append(round(answer["chunks_embedded"] / answer["chunk_count"], 4))
        before = set(_greedy_chunk_hashes("\n\n".join(blocks), filename, max_characters))
        after = _greedy_chunk_hashes(edited, filename, max_characters)
        greedy.append(round(sum(g not in before for g in after) / len(after), 4))
    return {"documents": seeds, "fractions": fractions, "max_fraction": max(fractions),
            "mean_fraction": round(sum(fractions) / seeds, 4), "greedy_fractions": greedy,
            "greedy_max_fraction": max(greedy), "greedy_mean_fraction": round(sum(greedy) / seeds, 4),
            "target": TARGET_FRACTION, "target_met": max(fractions) <= TARGET_FRACTION}


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("incremental", help="chunks re-embedded by edits, inserts and appends (10-200 chunk documents)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="10,50,200", help="document sizes in chunks, comma-separated")
    p.add_argument("--max-characters", type=int, default=1000, help="the index's chunk_max_characters")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--issue-seeds", type=int, default=20,
                   help="30-paragraph plain-text documents for the issue's insert-near-the-start case")
    p.add_argument("--out", type=Path, default=None, help="write results.json and results.md here")
    return p


def _markdown(results: dict[str, Any]) -> str:
    lines = [f"# Incremental re-embedding ({results['max_characters']}-character chunks)", "",
             "Chunks the service embedded again for each edit of version 1, out of the new version's chunks "
             "(upload answer `chunks_embedded` / `chunk_count`); in brackets, unstructured's greedy "
             "`chunk_by_title` (the chunker before) on the same elements.", ""]
    names = list(EDITS) + list(HEADING_EDITS)
    lines += ["| document | chunks | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for row in results["documents"]:
        cells = []
        for name in names:
            e = row["edits"].get(name)
            cells.append("–" if e is None else
                         f"{e['embedded']}/{e['total']} ({e['greedy_embedded']}/{e['greedy_total']})")
        kind = "Markdown, headings" if row["headings"] else "plain text"
        lines.append(f"| {kind} | {row['chunks']} | " + " | ".join(cells) + " |")
    s, issue = results["summary"], results["issue_case"]
    lines += ["", f"The issue's case (one paragraph inserted after the first of 30, plain text, "
                  f"{issue['documents']} documents): at most **{issue['max_fraction']:.3f}** of the chunks "
                  f"re-embedded, mean {issue['mean_fraction']:.3f} (target <= {TARGET_FRACTION}); greedy "
                  f"chunk_by_title: at most {issue['greedy_max_fraction']:.3f}, mean {issue['greedy_mean_fraction']:.3f}.",
              "", f"Every edit in the table: mean fraction {s['mean_fraction']:.3f} (greedy {s['mean_greedy_fraction']:.3f}).",
              "",
              f"Run: `python -m benchmarks incremental --sizes {results['sizes']} --issue-seeds {issue['documents']}` "
              f"in {results['seconds']} s.", ""]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    started = time.perf_counter()
    rows = []
    with ServiceHarness() as h:
        index_id = h.create_index("incremental", chunk_max_characters=args.max_characters)["id"]
        for i, chunks in enumerate(sizes):
            for headings in (False, True):
                row = run_document(h, index_id, chunks, headings, args.seed + 10 * i + headings, args.max_characters)
                log(f"{row['chunks']} chunks, headings={headings}: "
                    + ", ".join(f"{k} {e['embedded']}/{e['total']}" for k, e in row["edits"].items()))
                rows.append(row)
        issue = run_issue_case(h, args.issue_seeds)
    edits = [e for row in rows for e in row["edits"].values()]
    summary = {
        "issue_case_max_fraction": issue["max_fraction"], "issue_case_greedy_max_fraction": issue["greedy_max_fraction"],
        "mean_fraction": round(sum(e["fraction"] for e in edits) / len(edits), 4),
        "mean_greedy_fraction": round(sum(e["greedy_fraction"] for e in edits) / len(edits), 4),
        "target_met": issue["target_met"],
    }
    results = {"benchmark": "incremental", "sizes": args.sizes, "max_characters": args.max_characters,
               "seed": args.seed, "documents": rows, "issue_case": issue, "summary": summary,
               "seconds": round(time.perf_counter() - started, 1)}
    log(f"summary: {summary}")
    emit(args.out, results, _markdown(results))
    return 0 if summary["target_met"] else 1
