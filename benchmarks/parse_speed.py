"""Parse speed of the text-like formats: MB/s of `prepare_upload` (parse + chunk +
BM25 tokens, what a parser-pool worker does for one upload) on generated documents.

    python -m benchmarks.parse_speed --size-mb 10

Documents are made here, deterministically, to look like what users upload:
English-like paragraphs under headings with bullet lists (txt, md, html), an HTML
page on one single line, a CSV with 60 columns, a JSON array of records. The lead's
ingest benchmark calls `parse_mb_per_s` for its `parse_mb_per_s` field.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import random
import time

FORMATS = ("txt", "md", "csv", "json", "html", "html-one-line")
_EXTENSION = {"txt": "txt", "md": "md", "csv": "csv", "json": "json", "html": "html", "html-one-line": "html"}
_WORDS = (
    "the of and to in a is that for it as was with be by on not this are or from at which but have an they were "
    "been one all we their has would when if so no more can will who what up out about into than them only other "
    "time new some could these two may first then do any like now over such our even most made after also did many "
    "before must through back years where much way down should because each just those people how too little state "
    "good very make world still own see work long get here between both life being under never day same another know "
    "while last might great old year off come since against go came right used take three protein cell study patients "
    "results analysis method data model system network sample trial dose risk effect group control measured increased "
    "reduced observed reported significant response treatment clinical growth signal energy water market price policy"
).split()


def sentence(rng: random.Random) -> str:
    words = " ".join(rng.choices(_WORDS, k=rng.randint(6, 22)))  # one call: a 50 MB test file in seconds
    return words[0].upper() + words[1:] + "."


def paragraph(rng: random.Random, sentences: tuple[int, int] = (2, 6)) -> str:
    return " ".join(sentence(rng) for _ in range(rng.randint(*sentences)))


def heading(rng: random.Random) -> str:
    return " ".join(rng.choices(_WORDS, k=rng.randint(2, 5))).title()


def _blocks(size: int, rng: random.Random):
    """('h' | 'p' | 'ul', payload) until about `size` characters: 10 % headings, 10 % lists."""
    made = 0
    while made < size:
        x = rng.random()
        block = ("h", heading(rng)) if x < 0.1 else ("ul", [sentence(rng) for _ in range(3)]) if x < 0.2 \
            else ("p", paragraph(rng))
        made += len(str(block[1])) + 4
        yield block


def _text(size: int, rng: random.Random) -> str:
    out = {"h": lambda b: b, "p": lambda b: b, "ul": lambda b: "\n".join(f"- {s}" for s in b)}
    return "\n\n".join(out[kind](body) for kind, body in _blocks(size, rng))


def _markdown(size: int, rng: random.Random) -> str:
    out = {"h": lambda b: f"{'#' * rng.randint(1, 3)} {b}", "p": lambda b: b,
           "ul": lambda b: "\n".join(f"* {s}" for s in b)}
    return "\n\n".join(out[kind](body) for kind, body in _blocks(size, rng))


def _html(size: int, rng: random.Random, sep: str = "\n") -> str:
    out = {"h": lambda b: f"<h2>{b}</h2>", "ul": lambda b: "<ul>" + "".join(f"<li>{s}</li>" for s in b) + "</ul>",
           "p": lambda b: f"<p>{b} <b>{rng.choice(_WORDS)}</b> <a href=\"#x\">{rng.choice(_WORDS)}</a>.</p>"}
    body = sep.join(out[kind](payload) for kind, payload in _blocks(size, rng))
    return (f"<!DOCTYPE html>{sep}<html><head><title>Report</title><style>p {{margin: 0}}</style></head>{sep}"
            f"<body>{sep}{body}{sep}</body></html>")


def _csv(size: int, rng: random.Random, columns: int = 60) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow([f"{rng.choice(_WORDS)}_{i}" for i in range(columns)])
    while buf.tell() < size:
        writer.writerow([w if i % 3 else str(int(rng.random() * 100_000))
                         for i, w in enumerate(rng.choices(_WORDS, k=columns))])
    return buf.getvalue()


def _json(size: int, rng: random.Random) -> str:
    records, made = [], 0
    while made < size:
        record = {"id": len(records), "title": heading(rng), "abstract": paragraph(rng),
                  "tags": rng.choices(_WORDS, k=3),
                  "meta": {"year": rng.randint(1990, 2026), "score": round(rng.random(), 4)}}
        records.append(record)
        made += len(json.dumps(record)) + 2
    return json.dumps({"records": records}, indent=1)


def make_document(fmt: str, size_mb: float, seed: int = 0) -> tuple[str, bytes]:
    """(filename, bytes) of about `size_mb` MB in format `fmt` (one of FORMATS)."""
    build = {"txt": _text, "md": _markdown, "csv": _csv, "json": _json, "html": _html,
             "html-one-line": lambda n, r: _html(n, r, sep="")}[fmt]
    wanted = aim = int(size_mb * 1_000_000)
    while len(data := build(aim, random.Random(seed)).encode("utf-8")) < wanted:
        aim += wanted - len(data) + 1000  # the generators estimate; markup adds a little
    return f"{fmt}-{size_mb:g}mb.{_EXTENSION[fmt]}", data


def parse_mb_per_s(size_mb: float, formats: tuple[str, ...] = FORMATS, max_characters: int = 1000,
                   overlap: int = 0) -> dict[str, float]:
    """MB/s of prepare_upload on one generated document of `size_mb` per format, in this process."""
    from rag_service.services.preparation import prepare_upload

    prepare_upload(b"Warm-up paragraph.", "warm.txt", max_characters, overlap)  # imports are not parse time
    speeds: dict[str, float] = {}
    for fmt in formats:
        filename, data = make_document(fmt, size_mb)
        started = time.perf_counter()
        prepare_upload(data, filename, max_characters, overlap)
        speeds[fmt] = round(len(data) / 1_000_000 / (time.perf_counter() - started), 3)
    return speeds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.parse_speed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=float, default=10.0)
    parser.add_argument("--formats", default=",".join(FORMATS), help="comma-separated, from: " + ", ".join(FORMATS))
    args = parser.parse_args(argv)
    formats = tuple(f.strip() for f in args.formats.split(",") if f.strip())
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        parser.error(f"unknown format(s) {unknown}")
    print(json.dumps({"size_mb": args.size_mb, "parse_mb_per_s": parse_mb_per_s(args.size_mb, formats)}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
