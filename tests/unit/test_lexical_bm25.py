"""Lexical retrieval is BM25: the sparse vectors from pipelines.lexical, scored by
the vector store with Qdrant's IDF modifier, rank a corpus the way a reference
BM25 implementation (rank_bm25) does on the same tokens. Checked on both adapters."""

from __future__ import annotations

import math
import uuid

import pytest
from qdrant_client import QdrantClient
from rank_bm25 import BM25Okapi

from pipelines.lexical import STOPWORDS, Bm25Params, document_vector, query_vector, term_id, tokenize
from rag_service.stores.edge import EdgeVectorStore
from rag_service.stores.qdrant_server import QdrantServerVectorStore
from rag_service.stores.vector import Filter, Match, SearchRequest, VectorPoint

K1, B = 1.2, 0.75
ALIAS = "idx_bm25"

CORPUS = [
    "Solar panels convert sunlight into electricity using photovoltaic cells made of silicon.",
    "Wind turbines turn the kinetic energy of moving air into electricity for the grid.",
    "The solar eclipse darkened the sky over the small mountain town for three minutes.",
    "Battery storage lets homes with solar panels use their energy after sunset.",
    "Sourdough bread rises slowly because wild yeast ferments the flour overnight.",
    "A good pizza dough needs strong flour, water, salt, yeast and a very hot oven.",
    "The marathon runner trained by running long distances every weekend in the hills.",
    "Runners often suffer knee injuries when they increase their running mileage too quickly.",
    "Chess players study openings, middlegame plans and endgame technique for years.",
    "The grandmaster sacrificed a knight to launch a mating attack against the king.",
    "Honeybees pollinate crops and produce honey from the nectar of flowers.",
    "Bumblebees can fly in cooler weather than honeybees and pollinate tomatoes.",
    "The volcano erupted, sending ash clouds high into the atmosphere for days.",
    "Earthquakes happen when tectonic plates slip suddenly along a fault line.",
    "Python lists are mutable sequences while tuples cannot be changed after creation.",
    "The compiler reported a type error because the function returned a string instead of an integer.",
    "Garbage collection frees memory that a program no longer references.",
    "The database index made the slow query run a hundred times faster.",
    "Coral reefs are bleaching as ocean temperatures rise year after year.",
    "Whales communicate with songs that travel hundreds of kilometres through the ocean.",
    "The museum displayed ancient Roman coins, pottery and a bronze helmet.",
    "Medieval castles were built with thick stone walls and deep moats for defence.",
    "The violinist practised scales for hours before the concert in the old cathedral.",
    "Jazz musicians improvise melodies over a chord progression during a solo.",
    "Tomatoes need full sun, regular watering and rich soil to ripen well.",
    "Composting kitchen scraps returns nutrients to the garden soil.",
    "The electric car charged its battery in forty minutes at a fast charging station.",
    "Trains powered by overhead electric lines connect the two cities every hour.",
    "The astronaut repaired a solar array on the outside of the space station.",
    "Telescopes on mountain tops observe distant galaxies on clear dark nights.",
    "A cup of strong coffee in the morning helps many people wake up.",
    "Green tea contains less caffeine than coffee but more antioxidants.",
    "The football team won the championship after a penalty shootout.",
    "Tennis players serve, volley and rally from the baseline during a match.",
    "Glaciers carve valleys as they slowly move down the mountain under their own weight.",
    "Rainforests hold a huge share of the world's plant and animal species.",
    "The bakery sells fresh bread, croissants and pastries every morning.",
    "Wind farms offshore produce more energy because the wind is stronger at sea.",
    "Running shoes with extra cushioning reduce the impact on the runner's knees.",
    "The power grid must balance electricity supply and demand every second.",
]

QUERIES = [
    "solar panels energy",
    "bread flour yeast",
    "running knee injuries",
    "chess endgame",
    "ocean temperature coral",
    "electric battery charging",
    "wind energy at sea",
    "mountain telescope",
    "coffee caffeine",
    "honeybees pollinate flowers",
    "grid electricity demand",
    "volcano ash",
]

TOKENS = [tokenize(t) for t in CORPUS]
AVG_LEN = sum(map(len, TOKENS)) / len(TOKENS)
PARAMS = Bm25Params(k1=K1, b=B, avg_len=AVG_LEN)
NS = uuid.UUID("5e0e3a4b-7f0a-4d3c-8d7a-0c1b2a3f4e5d")
IDS = [str(uuid.uuid5(NS, str(i))) for i in range(len(CORPUS))]
INDEX_OF = {pid: i for i, pid in enumerate(IDS)}


class QdrantIdfBM25(BM25Okapi):
    """rank_bm25's Okapi BM25 with Qdrant's IDF, ln(1 + (N - n + 0.5) / (n + 0.5)):
    the exact scores the vector store should produce."""

    def _calc_idf(self, nd):
        for word, freq in nd.items():
            self.idf[word] = math.log(1 + (self.corpus_size - freq + 0.5) / (freq + 0.5))


def top_k(scores, k: int = 5) -> list[int]:
    """The k best documents that score at all; equal scores ordered by index."""
    ranked = sorted(range(len(scores)), key=lambda i: (-round(float(scores[i]), 4), i))
    return [i for i in ranked if scores[i] > 0][:k]


def store_top_k(hits, k: int = 5) -> list[int]:
    """The store's ranking with the same tie-break (fetch everything, so a tie at
    rank k cannot push a different equal-scored document in)."""
    return sorted((INDEX_OF[h.id] for h in hits), key=lambda i: (-round(_score(hits, i), 4), i))[:k]


def _score(hits, index: int) -> float:
    return next(h.score for h in hits if INDEX_OF[h.id] == index)


def _make_store(kind: str, tmp_path):
    if kind == "embedded":
        return EdgeVectorStore(tmp_path / "qdrant")
    return QdrantServerVectorStore(client=QdrantClient(":memory:"))


@pytest.fixture(scope="module")
def bm25_okapi() -> BM25Okapi:
    return BM25Okapi(TOKENS, k1=K1, b=B)


@pytest.fixture(scope="module")
def bm25_qdrant() -> QdrantIdfBM25:
    return QdrantIdfBM25(TOKENS, k1=K1, b=B)


@pytest.fixture(params=["embedded", "server"])
def store(request, tmp_path):
    s = _make_store(request.param, tmp_path)
    s.ensure_collection(ALIAS, 4)
    s.upsert(
        ALIAS,
        [
            VectorPoint(id=pid, dense=[1.0, 0.0, 0.0, 0.0], sparse=document_vector(toks, PARAMS),
                        payload={"document_id": f"doc{i}", "live": 1, "ordinal": i})
            for i, (pid, toks) in enumerate(zip(IDS, TOKENS))
        ],
    )
    yield s
    s.close()


def search(store, query: str, limit: int = 5, filter: Filter | None = None):
    req = SearchRequest(mode="lexical", limit=limit, sparse=query_vector(query), filter=filter)
    return store.search(ALIAS, req).hits


# -- the corpus itself ---------------------------------------------------------


def test_corpus_is_sane():
    assert len(CORPUS) == 40 and len(set(CORPUS)) == 40
    assert all(TOKENS)
    # No two distinct tokens of the corpus share a term id (a collision would merge them).
    vocab = {t for toks in TOKENS for t in toks} | {t for q in QUERIES for t in tokenize(q)}
    assert len({term_id(t) for t in vocab}) == len(vocab)
    assert 5 < AVG_LEN < 15


# -- against rank_bm25 ---------------------------------------------------------


@pytest.mark.parametrize("query", QUERIES)
def test_ranking_matches_bm25_with_qdrant_idf(store, bm25_qdrant, query):
    """Same formula, same IDF: identical top-5 (order included) and scores."""
    q = tokenize(query)
    expected_scores = bm25_qdrant.get_scores(q)
    hits = search(store, query, limit=len(CORPUS))
    # Exactly the documents sharing a term come back, each with its BM25 score.
    assert {INDEX_OF[h.id] for h in hits} == {i for i, s in enumerate(expected_scores) if s > 0}
    for h in hits:
        assert h.score == pytest.approx(expected_scores[INDEX_OF[h.id]], rel=1e-4)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    got, expected = store_top_k(hits, 5), top_k(expected_scores, 5)
    assert got == expected, (query, [CORPUS[i] for i in got], [CORPUS[i] for i in expected])
    # And with limit=5 the store returns those five (up to ties at the cut).
    top5 = search(store, query, limit=5)
    assert [round(h.score, 4) for h in top5] == [round(float(expected_scores[i]), 4) for i in expected]


@pytest.mark.parametrize("query", QUERIES)
def test_ranking_close_to_bm25okapi(store, bm25_okapi, query):
    """rank_bm25's Okapi IDF is ln((N - n + 0.5) / (n + 0.5)) (floored for common
    terms), not Qdrant's ln(1 + ...): rankings agree at the top, not exactly."""
    q = tokenize(query)
    expected = top_k(bm25_okapi.get_scores(q), 5)
    got = store_top_k(search(store, query, limit=len(CORPUS)), 5)
    assert got[0] == expected[0], (query, got, expected)
    assert len(set(got) & set(expected)) >= min(4, len(expected)), (query, got, expected)


def test_full_ranking_matches_with_larger_limit(store, bm25_qdrant):
    # Every document that shares a term comes back, in BM25 order.
    query = "energy electricity solar wind power"
    scores = bm25_qdrant.get_scores(tokenize(query))
    expected = top_k(scores, len(CORPUS))
    got = store_top_k(search(store, query, limit=len(CORPUS)), len(CORPUS))
    assert got == expected


def test_filtered_lexical_ranking(store, bm25_qdrant):
    # Filtering does not change the scores of the points it keeps.
    keep = {i for i in range(len(CORPUS)) if i % 2 == 0}
    flt = Filter(must_not=tuple(Match("document_id", f"doc{i}") for i in range(len(CORPUS)) if i not in keep))
    for query in QUERIES[:5]:
        scores = bm25_qdrant.get_scores(tokenize(query))
        expected = top_k([s if i in keep else 0.0 for i, s in enumerate(scores)], 5)
        hits = search(store, query, limit=len(CORPUS), filter=flt)
        assert {INDEX_OF[h.id] for h in hits} <= keep
        assert store_top_k(hits, 5) == expected, query
        for h in hits:
            assert h.score == pytest.approx(scores[INDEX_OF[h.id]], rel=1e-4)


def test_repeated_query_terms_in_store(store, bm25_qdrant):
    once, twice = search(store, "solar battery", limit=10), search(store, "solar solar battery", limit=10)
    assert {h.id: h.score for h in twice} != {h.id: h.score for h in once}
    # Doubling "solar" doubles its contribution: score(twice) = score(once) + solar part.
    solar_only = {h.id: h.score for h in search(store, "solar", limit=40)}
    once_s = {h.id: h.score for h in once}
    for h in twice:
        assert h.score == pytest.approx(once_s[h.id] + solar_only.get(h.id, 0.0), rel=1e-4)
    # rank_bm25 also counts repeats, so the reference agrees.
    expected = bm25_qdrant.get_scores(tokenize("solar solar battery"))
    for h in twice:
        assert h.score == pytest.approx(expected[INDEX_OF[h.id]], rel=1e-4)


# -- tokenizer and vector units --------------------------------------------------


def test_repeated_query_terms_count():
    vec = query_vector("solar solar panels")
    weights = dict(zip(vec.indices, vec.values))
    assert weights == {term_id("solar"): 2.0, term_id("panel"): 1.0}
    assert vec.indices == sorted(vec.indices)
    # Case and stemming fold repeats together too.
    assert dict(zip(*(lambda v: (v.indices, v.values))(query_vector("Solar SOLAR panel panels")))) == {
        term_id("solar"): 2.0,
        term_id("panel"): 2.0,
    }


def test_stemming_maps_inflections_to_one_token():
    assert tokenize("running") == tokenize("runs") == tokenize("run") == ["run"]
    assert tokenize("panels") == tokenize("panel")
    assert query_vector("running").indices == query_vector("runs").indices
    assert tokenize("Runs RUNNING") == ["run", "run"]


def test_tokenize_drops_stopwords_and_punctuation():
    assert tokenize("The cat, and the hat!") == ["cat", "hat"]
    assert tokenize("the of and is") == []
    assert query_vector("the of and").indices == []
    # Stop words go before stemming (as in Lucene's analyzer): "it" goes, "its" stems to "it".
    assert tokenize("it is its") == ["it"]
    words = " ".join(CORPUS).lower().split()
    assert not STOPWORDS & set(tokenize(" ".join(w for w in words if w != "its")))
    assert tokenize("Café naïve") == tokenize("café NAÏVE")


def test_document_vector_weights():
    p = Bm25Params(k1=K1, b=B, avg_len=4.0)
    assert document_vector([], p).indices == []
    vec = document_vector(["solar", "solar", "panel", "roof"], p)  # dl == avg_len: norm == k1
    weights = dict(zip(vec.indices, vec.values))
    assert vec.indices == sorted(vec.indices)
    assert weights[term_id("solar")] == pytest.approx(2 * (K1 + 1) / (2 + K1))
    assert weights[term_id("panel")] == pytest.approx(1 * (K1 + 1) / (1 + K1))
    # Longer-than-average documents weigh a term occurrence less.
    long = dict(zip(*(lambda v: (v.indices, v.values))(document_vector(["panel"] + ["x"] * 11, p))))
    assert long[term_id("panel")] < weights[term_id("panel")]
    # Term frequency saturates below k1 + 1.
    many = document_vector(["solar"] * 1000, Bm25Params(k1=K1, b=0.0, avg_len=4.0))
    assert many.values[0] < K1 + 1
