"""Highlights mark whole words whose stem is a query term, whatever their case or inflection."""

from pipelines.lexical import tokenize
from rag_service.services.highlight import highlight


def test_every_inflection_and_case_of_a_query_term_is_marked_and_nothing_inside_other_words():
    text = "Vaccines work. A vaccine, VACCINATED people; unvaccinatedly not. vaccine_x stays."
    [snippet] = highlight(text, set(tokenize("vaccine")))
    assert snippet.count("<em>") == 3  # "vaccinated" stems to "vaccin" as well
    assert "<em>Vaccines</em>" in snippet and "<em>vaccine</em>," in snippet and "<em>VACCINATED</em>" in snippet
    # A word that merely contains the term, or joins it with an underscore, is another word.
    assert "unvaccinatedly" in snippet and "<em>unvaccinatedly" not in snippet and "<em>vaccine_x" not in snippet


def test_no_match_gives_no_snippet_and_the_snippet_is_a_window_around_the_first_match():
    assert highlight("nothing relevant here", set(tokenize("protein"))) == []
    text = "filler " * 200 + "Protein folding matters. " + "tail " * 200
    [snippet] = highlight(text, set(tokenize("proteins")))
    assert snippet.startswith("…") and snippet.endswith("…")
    assert "<em>Protein</em> folding" in snippet and len(snippet) < 300


def test_non_ascii_words_match_case_insensitively():
    [snippet] = highlight("Über die Straße, über alles.", set(tokenize("über")))
    assert snippet.count("<em>") == 2
