"""`python -m benchmarks stale`: the judge on hand-made ledgers (it must call stale
what is stale, and nothing else), then the command end to end on the synthetic
collection, once honestly (0 stale hits) and once with the service told to serve
history (the judge must catch it and the command must fail)."""

from __future__ import annotations

import json
import random

import pytest

from benchmarks import stale
from benchmarks.stale.facts import FactMaker, pick_key_sentence
from benchmarks.stale.ledger import Hit, Ledger, SearchRecord, WriteOp, is_gap, judge_hit

OLD = "The key finding was that insulin reduces bone density in mice."
NEW = "In the Velamide trial (protocol KX-421), weekly injections lowered serum ferritin in 80 smokers."


def _history() -> list[WriteOp]:
    """v1 acked at 2, v2 (fact replaced) acked at 4, soft delete acked at 6."""
    return [WriteOp("upload", start=1, version=1, fact=OLD, ack=2),
            WriteOp("upload", start=3, version=2, fact=NEW, ack=4),
            WriteOp("delete", start=5, ack=6)]


def test_an_old_version_after_the_new_one_was_acknowledged_is_stale():
    ops = _history()[:2]
    assert judge_hit(ops, Hit("d", 1, "some chunk"), sent=10, received=11) == "old_version"
    assert judge_hit(ops, Hit("d", 2, "In the Velamide trial ..."), sent=10, received=11) is None


def test_an_old_version_is_fine_while_the_new_upload_is_in_flight():
    ops = [WriteOp("upload", start=1, version=1, fact=OLD, ack=2),
           WriteOp("upload", start=3, version=2, fact=NEW, ack=6)]
    # Sent at 4, answered at 5, while v2 (started 3, acknowledged 6) was being indexed: either may be served.
    assert judge_hit(ops, Hit("d", 1, OLD), sent=4, received=5) is None
    assert judge_hit(ops, Hit("d", 2, NEW), sent=4, received=5) is None
    # Once v2 was acknowledged before a search was sent, v1 is stale.
    assert judge_hit(ops, Hit("d", 1, OLD), sent=7, received=8) == "old_version"


def test_text_holding_a_removed_sentence_is_stale_whatever_version_it_claims():
    ops = _history()[:2]
    assert judge_hit(ops, Hit("d", 2, f"Intro.  {OLD.upper()}\n more"), sent=10, received=11) == "removed_text"


def test_hits_of_a_deleted_document_are_stale_unless_a_revival_started():
    ops = _history()
    assert judge_hit(ops, Hit("d", 2, NEW), sent=10, received=11) == "deleted"
    # Sent before the delete was acknowledged: still fine.
    assert judge_hit(ops, Hit("d", 2, NEW), sent=5, received=7) is None
    # A restore started before the answer came back may legitimately bring it back.
    ops.append(WriteOp("restore", start=10, ack=12))
    assert judge_hit(ops, Hit("d", 2, NEW), sent=9, received=11) is None
    assert judge_hit(ops, Hit("d", 2, NEW), sent=13, received=14) is None
    # An upload revives a deleted name too.
    ops2 = _history() + [WriteOp("upload", start=8, version=3, fact="x", ack=None)]
    assert judge_hit(ops2, Hit("d", 2, NEW), sent=7, received=9) is None


def test_versions_and_documents_nobody_wrote_are_flagged():
    ops = _history()[:2]
    assert judge_hit(ops, Hit("d", 7, NEW), sent=10, received=11) == "unknown_version"
    assert judge_hit(None, Hit("zzz", 1, "text"), sent=10, received=11) == "unknown_document"


def test_ledger_judge_reports_each_stale_hit():
    ledger = Ledger()
    ledger.ops["d"] = _history()[:2]
    ledger.ops["e"] = [WriteOp("upload", start=1, version=1, ack=2)]
    rec = SearchRecord(mode="hybrid", phase="quiet", kind="removed", target="d", fact=OLD, sent=10, received=11,
                       hits=[Hit("e", 1, "other"), Hit("d", 1, OLD), Hit("d", 2, NEW)])
    rows = ledger.judge(rec)
    assert [(r["document"], r["version"], r["rank"], r["reason"]) for r in rows] == [("d", 1, 2, "old_version")]


def test_gap_means_a_live_document_was_not_served():
    ops = _history()[:2] + [WriteOp("upload", start=7, version=3, fact="y", ack=9)]
    empty = SearchRecord(mode="dense", phase="concurrent", kind="continuity", target="d", fact=None, sent=8,
                         received=10)
    assert is_gap(ops, empty)  # v2 was live and v3 in flight: v2 must keep being served
    served = SearchRecord(mode="dense", phase="concurrent", kind="continuity", target="d", fact=None, sent=8,
                          received=10, names=["d"])
    assert not is_gap(ops, served)
    deleted = _history()
    assert not is_gap(deleted, SearchRecord("dense", "quiet", "continuity", "d", None, sent=10, received=11))
    # A delete that started while the query ran may hide it.
    racing = _history()
    assert not is_gap(racing, SearchRecord("dense", "quiet", "continuity", "d", None, sent=5, received=7))


def test_key_sentence_is_the_most_distinctive_and_facts_are_unique():
    idf = {"zebrafish": 5.0, "telomer": 4.0, "studi": 0.1, "result": 0.1}
    body = ("This study reports results in a broad sample of patients. "
            "Zebrafish telomeres shortened in every treated animal we examined. Results were robust overall.")
    assert pick_key_sentence(body, idf).startswith("Zebrafish telomeres")
    maker = FactMaker(random.Random(1))
    made = [maker.make() for _ in range(200)]
    assert len({s for s, _ in made}) == 200
    sentence, query = made[0]
    compound = sentence.split()[2]
    assert compound in query and sentence.endswith(".")


def _run(args: list[str]) -> int:
    from benchmarks.__main__ import main

    return main(["stale", *args])


def test_stale_command_end_to_end(tiny_beir, tmp_path):
    out = tmp_path / "stale"
    rc = _run(["--dataset", str(tiny_beir), "--limit-docs", "30", "--sample", "6", "--deletes", "2",
               "--concurrent-s", "3", "--out", str(out)])
    results = json.loads((out / "results.json").read_text())
    assert results["stale_hits_total"] == 0, results["stale_examples"]
    assert rc == 0, (results["write_errors"], results["search_errors"])
    assert results["revised"] == 6 and results["deleted"] == 1 and results["restored"] == 1
    assert set(results["modes"]) == {"dense", "lexical", "hybrid"}
    for mode, m in results["modes"].items():
        assert m["queries"] > 0 and m["stale_hits"] == 0, mode
        # The removed sentences did find their documents before the revision: the check has teeth.
        assert m["before_revision"]["key_sentence_hit@10"] >= 0.75, mode
        assert m["concurrent"]["queries"] > 0 and m["concurrent"]["stale_hits"] == 0, mode
        assert m["gaps"] == 0, mode
    assert results["modes"]["hybrid"]["ndcg@10_new_facts"] > 0.8
    assert results["concurrent"]["uploads"] > 0
    assert "Stale hits: 0" in (out / "results.md").read_text()


def test_stale_command_catches_a_service_that_serves_history(tiny_beir, tmp_path, monkeypatch):
    # include_history makes the service return old versions on purpose: the judge must
    # count them and the command must fail, or a real stale hit could slip through.
    monkeypatch.setattr(stale, "SEARCH_OVERRIDES", {"include_history": True})
    out = tmp_path / "history"
    rc = _run(["--dataset", str(tiny_beir), "--limit-docs", "20", "--sample", "4", "--deletes", "0",
               "--modes", "lexical", "--concurrent-s", "0", "--out", str(out)])
    results = json.loads((out / "results.json").read_text())
    assert rc == 1
    assert results["stale_hits_total"] > 0
    assert results["modes"]["lexical"]["stale_hits"] > 0
    assert set(results["stale_reasons"]) <= {"old_version", "removed_text"}
    example = results["stale_examples"][0]
    assert example["version"] == 1 and example["phase"] == "quiet"


@pytest.mark.parametrize("bad", ["semantic", "dense,fuzzy"])
def test_unknown_modes_are_refused(tiny_beir, bad):
    with pytest.raises(SystemExit):
        _run(["--dataset", str(tiny_beir), "--modes", bad])
