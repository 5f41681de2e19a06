"""Long queries (a pasted passage, a whole document as the query): accepted up to 32,000
characters on every entry point, with the lexical side capped to its most informative terms."""

from __future__ import annotations

from collections import Counter

from pipelines.lexical import most_informative
from tests.conftest import Api, new_key

COMMON = ("report study result method patient analysis data group effect level "
          "increase change time model test value rate factor case type").split()


def seeded(app_factory, **overrides) -> tuple[Api, str]:
    client, ctx = app_factory(**overrides)
    api = Api(client, new_key(ctx))
    index = api.create_index("papers")["id"]
    # Every document shares the common words; only one names the plover.
    for n in range(6):
        body = " ".join(COMMON) + f". Paper {n} on the usual topics."
        if n == 4:
            body += " The snowy plover nests on shingle."
        assert api.upload(index, f"paper{n}.txt", body.encode()).status_code == 201
    return api, index


def test_a_32000_character_query_answers_in_every_mode_and_one_more_is_refused(app_factory):
    api, index = seeded(app_factory)
    passage = ("Shorebirds such as the snowy plover nest on open shingle beaches. " * 600)[:32_000]
    assert len(passage) == 32_000
    for mode in ("hybrid", "dense", "lexical"):
        r = api.search(passage, index, mode=mode, top_k=3)
        assert r.status_code == 200, (mode, r.text)
        assert r.json()["results"][0]["document_name"] == "paper4.txt"
    too_long = api.search(passage + "x", index)
    assert too_long.status_code == 422 and too_long.json()["field"] == "query"
    # The agent tools (and MCP, which serves the same definitions) take the same limit.
    r = api.post("/v1/tools/call", json={"name": "search", "arguments": {"query": passage, "top_k": 1}})
    assert r.status_code == 200 and r.json()["content"]["results"][0]["document_name"] == "paper4.txt"
    r = api.post("/v1/tools/call", json={"name": "search", "arguments": {"query": passage + "x"}})
    assert r.status_code == 422 and r.json()["field"] == "arguments.query"
    tools = {t["function"]["name"]: t["function"] for t in api.get("/v1/tools/openai").json()}
    assert tools["search"]["parameters"]["properties"]["query"]["maxLength"] == 32_000


def test_the_lexical_side_keeps_the_informative_terms_of_a_long_query(app_factory):
    # With a cap of 5 terms, a query of 20 common words and one rare word at its very end
    # still finds the one document with the rare word: the common words go first.
    api, index = seeded(app_factory, max_query_terms=5)
    query = " ".join(COMMON * 3) + " plover"
    r = api.search(query, index, mode="lexical", top_k=6)
    assert r.status_code == 200, r.text
    assert r.json()["results"][0]["document_name"] == "paper4.txt"


def test_most_informative_ranks_by_query_frequency_times_idf():
    terms = Counter({"the_common": 3, "rare": 1, "mid": 2, "unseen": 1})
    doc_freq = {"the_common": 100, "rare": 2, "mid": 20}
    kept = most_informative(terms, 2, doc_freq, docs=100)
    assert list(kept) == ["unseen", "rare"] and kept["rare"] == 1
    assert most_informative(terms, 10, doc_freq, docs=100) == terms  # under the cap: untouched
    # Equal weight keeps the query's own order.
    assert list(most_informative(Counter({"b": 1, "a": 1, "c": 1}), 2, {}, docs=10)) == ["b", "a"]
