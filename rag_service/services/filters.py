"""Search filters: the request's JSON object -> the vector store's filter conditions.

{"team": "red"} equality, {"tags": ["a", "b"]} any-of, {"year": {"gte": 2020}} range
(numbers, or ISO dates), all ANDed. `name` filters the document name; every other
key is a provenance metadata key. Anything else is a validation_error.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

from rag_service.errors import ValidationFailed
from rag_service.services.values import check_value
from rag_service.stores.vector import Condition, Match, MatchAny, Range

RANGE_OPS = ("gt", "gte", "lt", "lte")
_KEY = re.compile(r"[A-Za-z0-9_\-]{1,100}")
# Only what Qdrant's datetime index parses: a calendar date or RFC 3339.
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2}))?")
MAX_CONDITIONS = 32


def _payload_key(key: str) -> str:
    return "name" if key == "name" else f"meta.{key}"


def _is_date(value: Any) -> bool:
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        return False
    try:
        (datetime if "T" in value else date).fromisoformat(value.replace("Z", "+00:00"))
        return True
    except ValueError:
        return False


def _bad(key: str, why: str) -> ValidationFailed:
    return ValidationFailed(f"filter {key!r}: {why}", field=f"filters.{key}")


def parse_filters(filters: dict[str, Any] | None) -> list[Condition]:
    if filters is None:
        return []
    if not isinstance(filters, dict):
        raise ValidationFailed("filters must be a JSON object", field="filters")
    # Tools, MCP and jobs reach here too: no NaN, no integer past int64, no unstorable text.
    check_value(filters, "filters")
    if len(filters) > MAX_CONDITIONS:
        raise ValidationFailed(f"at most {MAX_CONDITIONS} filter conditions", field="filters")
    conditions: list[Condition] = []
    for key, value in filters.items():
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise _bad(key, "keys are 1-100 letters, digits, '_' or '-'")
        path = _payload_key(key)
        if isinstance(value, bool):
            raise _bad(key, "booleans cannot be matched; store flags as strings or integers")
        if isinstance(value, (str, int)):
            conditions.append(Match(path, value))
        elif isinstance(value, float):
            conditions.append(Range(path, gte=value, lte=value))
        elif isinstance(value, list):
            if not value or len(value) > 100:
                raise _bad(key, "an any-of list needs 1-100 values")
            if all(isinstance(v, str) for v in value):
                conditions.append(MatchAny(path, tuple(value)))
            elif all(isinstance(v, int) and not isinstance(v, bool) for v in value):
                conditions.append(MatchAny(path, tuple(value)))
            else:
                raise _bad(key, "an any-of list holds only strings or only integers")
        elif isinstance(value, dict):
            unknown = set(value) - set(RANGE_OPS)
            if unknown or not value:
                raise _bad(key, f"a range uses only {', '.join(RANGE_OPS)}" + (f"; unknown: {sorted(unknown)}" if unknown else ""))
            bounds = list(value.values())
            if all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds):
                conditions.append(Range(path, **{op: float(b) for op, b in value.items()}))
            elif all(_is_date(b) for b in bounds):
                conditions.append(Range(path, is_datetime=True, **{op: _rfc3339(b) for op, b in value.items()}))
            else:
                raise _bad(key, "range bounds are all numbers or all ISO dates")
        else:
            raise _bad(key, "a value is a string, number, list or range object")
    return conditions


def _rfc3339(value: str) -> str:
    return value if "T" in value else f"{value}T00:00:00Z"
