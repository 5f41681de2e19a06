"""parse_filters: the search request's `filters` object -> vector store conditions."""

from __future__ import annotations

import pytest

from rag_service.errors import ValidationFailed
from rag_service.services.filters import MAX_CONDITIONS, parse_filters
from rag_service.stores.vector import Match, MatchAny, Range

# -- accepted ------------------------------------------------------------------


@pytest.mark.parametrize("filters", [None, {}])
def test_no_filters(filters):
    assert parse_filters(filters) == []


def test_scalar_equality():
    assert parse_filters({"team": "red"}) == [Match("meta.team", "red")]
    assert parse_filters({"year": 2021}) == [Match("meta.year", 2021)]
    assert parse_filters({"count": 0}) == [Match("meta.count", 0)]
    assert parse_filters({"team": ""}) == [Match("meta.team", "")]


def test_name_filters_the_document_name():
    assert parse_filters({"name": "report.pdf"}) == [Match("name", "report.pdf")]


def test_float_equality_is_a_point_range():
    assert parse_filters({"score": 0.5}) == [Range("meta.score", gte=0.5, lte=0.5)]


def test_list_any_of():
    assert parse_filters({"tags": ["a", "b"]}) == [MatchAny("meta.tags", ("a", "b"))]
    assert parse_filters({"year": [2020, 2021]}) == [MatchAny("meta.year", (2020, 2021))]
    assert parse_filters({"tags": ["only"]}) == [MatchAny("meta.tags", ("only",))]
    assert parse_filters({"tags": ["x"] * 100}) == [MatchAny("meta.tags", ("x",) * 100)]


def test_numeric_range():
    assert parse_filters({"year": {"gte": 2020}}) == [Range("meta.year", gte=2020.0)]
    assert parse_filters({"year": {"gt": 2019, "lt": 2023}}) == [Range("meta.year", gt=2019.0, lt=2023.0)]
    (cond,) = parse_filters({"price": {"gte": 1.5, "lte": 10}})
    assert cond == Range("meta.price", gte=1.5, lte=10.0)
    assert isinstance(cond.lte, float) and not cond.is_datetime


def test_date_range():
    assert parse_filters({"published": {"gte": "2021-05-01"}}) == [
        Range("meta.published", gte="2021-05-01T00:00:00Z", is_datetime=True)
    ]
    assert parse_filters({"published": {"gt": "2021-05-01T10:30:00Z", "lte": "2022-01-01"}}) == [
        Range("meta.published", gt="2021-05-01T10:30:00Z", lte="2022-01-01T00:00:00Z", is_datetime=True)
    ]
    (cond,) = parse_filters({"published": {"lt": "2021-05-01T10:30:00+02:00"}})
    assert cond == Range("meta.published", lt="2021-05-01T10:30:00+02:00", is_datetime=True)


def test_several_conditions_are_all_kept_in_order():
    conditions = parse_filters(
        {"team": "red", "tags": ["a", "b"], "year": {"gte": 2020}, "published": {"lt": "2024-01-01"}, "name": "x.txt"}
    )
    assert conditions == [
        Match("meta.team", "red"),
        MatchAny("meta.tags", ("a", "b")),
        Range("meta.year", gte=2020.0),
        Range("meta.published", lt="2024-01-01T00:00:00Z", is_datetime=True),
        Match("name", "x.txt"),
    ]


@pytest.mark.parametrize("key", ["a", "A_b-c", "x" * 100, "2021", "team_ID"])
def test_accepted_keys(key):
    assert parse_filters({key: "v"}) == [Match(f"meta.{key}", "v")]


def test_max_conditions_accepted():
    assert len(parse_filters({f"k{i}": i for i in range(MAX_CONDITIONS)})) == MAX_CONDITIONS


# -- rejected ------------------------------------------------------------------


@pytest.mark.parametrize(
    "filters",
    [
        # unknown range operators, or an empty range
        {"year": {"between": 1}},
        {"year": {"gte": 2020, "between": 1}},
        {"year": {"eq": 2020}},
        {"year": {"$gte": 2020}},
        {"year": {}},
        # empty, oversized or mixed lists
        {"tags": []},
        {"tags": ["x"] * 101},
        {"tags": ["a", 1]},
        {"tags": [1, 2.5]},
        {"tags": [1.5, 2.5]},
        {"tags": [None]},
        {"tags": [["a"]]},
        {"tags": [{"a": 1}]},
        # booleans, anywhere
        {"flag": True},
        {"flag": False},
        {"flags": [True, False]},
        {"flags": [1, True]},
        {"year": {"gte": True}},
        # range bounds that are neither all numbers nor all ISO dates
        {"year": {"gte": {"nested": 1}}},
        {"year": {"gte": [2020]}},
        {"year": {"gte": None}},
        {"year": {"gte": "2020"}},
        {"year": {"gte": "soon"}},
        {"year": {"gte": 2020, "lte": "2021-01-01"}},
        {"published": {"gte": "2021-13-01"}},
        {"published": {"gte": "2021-05-01 10:00"}},
        # ISO 8601 forms Python's fromisoformat takes but Qdrant's RFC 3339 parser does not:
        # accepted here, they fail later in the vector store (an internal error, not a 400).
        {"published": {"gte": "2021-W01-1"}},
        {"published": {"gte": "20210501"}},
        # values of other types
        {"team": None},
        {"team": ("a", "b")},
        # bad keys
        {"a.b": 1},
        {"": 1},
        {"meta.team": "red"},
        {"a b": 1},
        {"a/b": 1},
        {"x" * 101: 1},
        {"ключ": 1},
        {"a\n": 1},
        # too many conditions
        {f"k{i}": i for i in range(MAX_CONDITIONS + 1)},
    ],
    ids=repr,
)
def test_rejected(filters):
    with pytest.raises(ValidationFailed) as info:
        parse_filters(filters)
    assert info.value.code == "validation_error"
    assert info.value.detail["field"].startswith("filters")


@pytest.mark.parametrize("filters", ["team=red", ["team", "red"], [("team", "red")], 5, ("a",)], ids=repr)
def test_non_dict_filters_rejected(filters):
    with pytest.raises(ValidationFailed) as info:
        parse_filters(filters)
    assert info.value.detail["field"] == "filters"


def test_error_names_the_offending_key():
    with pytest.raises(ValidationFailed) as info:
        parse_filters({"team": "red", "year": {"between": [1, 2]}})
    assert info.value.detail["field"] == "filters.year"
    assert "year" in info.value.message
    assert "between" in info.value.message
