"""Values the stores can represent, checked once at every edge.

SQLite and PostgreSQL JSON, Qdrant payloads and the JSON responses agree only on
a subset of what Python's json module accepts: no NaN or ±Infinity, integers in
signed 64 bits, strings that encode to UTF-8 (no lone surrogates) and hold no NUL
(PostgreSQL text cannot). `check_value` walks a decoded JSON value and raises
ValidationFailed naming the first bad field; `loads` decodes JSON text with the
same rules (an integer literal too long for int64 is never built as a Python int).
"""

from __future__ import annotations

import json
import math
from typing import Any

from rag_service.errors import ValidationFailed

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
MAX_DEPTH = 64
_MAX_INT_DIGITS = 20  # sign included: anything longer is outside int64 whatever its digits


def _bad(field: str, why: str) -> ValidationFailed:
    return ValidationFailed(f"{field}: {why}", field=field)


def text_problem(value: str) -> str | None:
    """Why a string cannot be stored, or None."""
    if "\x00" in value:
        return "contains a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate (not valid Unicode text)"
    return None


def check_text(value: str, field: str) -> str:
    problem = text_problem(value)
    if problem:
        raise _bad(field, problem)
    return value


def check_int(value: int, field: str) -> int:
    if not INT64_MIN <= value <= INT64_MAX:
        raise _bad(field, "integers must fit in signed 64 bits")
    return value


def value_problem(value: Any, depth: int = 0) -> tuple[str, str] | None:
    """(path below the value, reason) of the first value the stores cannot hold, or None."""
    if isinstance(value, str):
        problem = text_problem(value)
        return ("", problem) if problem else None
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return None if INT64_MIN <= value <= INT64_MAX else ("", "integers must fit in signed 64 bits")
    if isinstance(value, _OutOfRange):
        return ("", "integers must fit in signed 64 bits")
    if isinstance(value, float):
        return None if math.isfinite(value) else ("", "numbers must be finite (no NaN or Infinity)")
    if depth >= MAX_DEPTH:
        return ("", f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        return ("", f"{type(value).__name__} is not a JSON value")
    for key, item in items:
        if isinstance(key, str):
            problem = text_problem(key)
            if problem:  # the key itself cannot be echoed back: name its parent
                return ("", f"a key {problem}")
        found = value_problem(item, depth + 1)
        if found:
            below, why = found
            return (f".{str(key)[:100]}{below}", why)
    return None


def check_value(value: Any, field: str) -> Any:
    """`value` if every part of it can be stored and echoed; else ValidationFailed(field=<the path>)."""
    found = value_problem(value)
    if found:
        below, why = found
        raise _bad(field + below, why)
    return value


class _OutOfRange:
    """What `loads` decodes an integer literal too long for int64 to (never built as an int)."""


def _int(text: str) -> int | _OutOfRange:
    return _OutOfRange() if len(text) > _MAX_INT_DIGITS else int(text)


def loads(raw: str, field: str) -> Any:
    """Decode JSON text under the same rules as check_value."""
    try:
        # NaN, Infinity and 1e309 decode to floats check_value refuses with their path.
        value = json.loads(raw, parse_int=_int)
    except json.JSONDecodeError as exc:
        raise ValidationFailed(f"{field} is not valid JSON: {exc}", field=field) from None
    except RecursionError:
        raise _bad(field, "nested too deeply") from None
    return check_value(value, field)


def parse_int64(raw: str, field: str, minimum: int = INT64_MIN) -> int:
    """A decimal integer sent as text (form field, header) within signed 64 bits."""
    text = raw.strip()
    digits = text[1:] if text[:1] in "+-" else text
    if not digits.isascii() or not digits.isdigit():
        raise _bad(field, "must be an integer")
    if len(digits) > _MAX_INT_DIGITS:
        raise _bad(field, "integers must fit in signed 64 bits")
    value = check_int(int(text), field)
    if value < minimum:
        raise _bad(field, f"must be >= {minimum}")
    return value


def readable_metadata(stored: Any) -> dict[str, Any]:
    """The `metadata` fields of a view of stored provenance metadata. A row written before these
    checks (a lone surrogate, NaN) cannot be sent as JSON: it is listed with an error marker
    instead of failing the whole listing."""
    if stored is None:
        return {"metadata": {}}
    found = value_problem(stored) if isinstance(stored, dict) else ("", "not a JSON object")
    if found is None:
        return {"metadata": stored}
    below, why = found
    return {"metadata": {}, "metadata_error": f"stored metadata{below} is unreadable: {why}"}


def json_object(raw: str, field: str) -> dict:
    """A JSON object sent as text (multipart metadata, OpenAI tool arguments), or validation_error."""
    value = loads(raw, field)
    if not isinstance(value, dict):
        raise ValidationFailed(f"{field} must be a JSON object", field=field)
    return value
