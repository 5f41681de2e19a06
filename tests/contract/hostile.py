"""The value classes the stores can't represent, as Hypothesis strategies: shared by the
value fuzz (test_value_fuzz.py) and the schemathesis run (test_openapi_fuzz.py). The most
hostile come first: derandomized Hypothesis starts from the first element."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import strategies as st

BIG = 2**63  # one past signed 64 bits

HOSTILE_TEXT = st.sampled_from([
    "\udc00", "nul\x00byte", "a\ud800b", "\x00", "x" * 100_000, "9" * 5000, "", " ", "../../etc/passwd",
    "cafe\u0301.txt", "\U0001f600", "NaN", "-1",
])
HOSTILE_NUMBER = st.sampled_from([
    BIG, math.nan, math.inf, -math.inf, -BIG - 1, 10**4000, 2**64, True, False, 1e308, 0, -1, 2**63 - 1,
])
# URLs have a length limit of their own (the client's): no 100 kB strings there.
URL_TEXT = HOSTILE_TEXT.map(lambda s: s[:3000])
KEYS = st.sampled_from(["year", "a", "\udc00", "nul\x00", "name", "gte", "x" * 300])


def _deep(depth: int) -> Any:
    value: Any = 1
    for n in range(depth):
        value = [value] if n % 2 else {"a": value}
    return value


HOSTILE_LEAF = HOSTILE_TEXT | HOSTILE_NUMBER
HOSTILE_OBJECT = st.dictionaries(KEYS, HOSTILE_LEAF | st.dictionaries(KEYS, HOSTILE_LEAF, max_size=2), min_size=1,
                                 max_size=3)
HOSTILE_JSON = HOSTILE_LEAF | HOSTILE_OBJECT | st.lists(HOSTILE_LEAF, min_size=1, max_size=3) | st.sampled_from(
    [_deep(100), _deep(500)])
