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
import random
import time
from pathlib import Path
from typing import Any

from benchmarks.common import ServiceHarness, load_beir, log, parse_modes
from benchmarks.report import emit
from benchmarks.stale.facts import FactMaker, plan_run
from benchmarks.stale.ledger import Ledger, Phase
from benchmarks.stale.phases import Session, create_index
from benchmarks.stale.report import markdown, summarise
from benchmarks.stale.service import Searcher, Writer

MODES = ("dense", "lexical", "hybrid")
# Extra fields for every search body. Empty in real runs; the tests put
# {"include_history": True} here to make the service serve old versions on purpose
# and prove the judge catches them end to end.
SEARCH_OVERRIDES: dict[str, Any] = {}


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
        index = create_index(h, ds, args)
        results["model"] = index["embedding_model"]
        results["service"] = {"chunking": index["chunking"], "endpoint": "POST /v1/indexes/{id}/search",
                              "top_k": args.top_k, "explain": False, "removed_queries": "result_type=chunk",
                              "new_fact_queries": "result_type=document",
                              "continuity_queries": "result_type=chunk, filters={name: document}",
                              **({"overrides": SEARCH_OVERRIDES} if SEARCH_OVERRIDES else {})}
        session = Session(ds, plan, modes, args, Searcher(h, index["id"], args.top_k, SEARCH_OVERRIDES),
                          Writer(h, index["id"], ledger), ledger, facts)
        session.upload_originals()
        session.ask_before(before)
        session.revise()
        session.ask_quiet(quiet)
        conc_info = session.race(concurrent, search_errors)

    # The service is gone: the ledger and the records are all the judge needs.
    summarise(results, ledger, modes, before, quiet, concurrent, conc_info, args.concurrent_s > 0)
    results["write_errors"] = session.writer.errors
    results["search_errors"] = search_errors[:20]
    results["wall_time_s"] = round(time.perf_counter() - started, 1)
    log(f"stale hits: {results['stale_hits_total']}; gaps: {results['gaps_total']}; write errors: "
        f"{session.writer.counts['errors']}; search errors: {len(search_errors)}; wall time "
        f"{results['wall_time_s']:.0f}s")
    emit(args.out, results, markdown(results))
    return 1 if results["stale_hits_total"] or session.writer.counts["errors"] or search_errors else 0
