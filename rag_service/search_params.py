"""The one search-parameter model. The HTTP routes take it as their body (so /openapi.json
shows it), the agent tools and MCP validate their arguments with it, the services search with
it, and the Python client derives its keyword arguments from its fields, so none of them can
fall behind another. It imports pydantic and the value bounds only: the client must not pull in the server.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    field_validator,
)

from rag_service.services.values import (  # stdlib only: light enough for the client
    INT64_MAX,
    INT64_MIN,
)

# Long enough for a pasted paragraph or a whole document as the query (query-by-document). The
# dense side embeds what the model's window takes (the tokenizer truncates); the lexical side keeps
# the most informative RAG_MAX_QUERY_TERMS terms (services/search.py lexical_terms).
MAX_QUERY_CHARS = 32_000
MAX_TOP_K = 100

# Integers are JSON integers (a boolean is not 1) that fit the stores' signed 64 bits; numbers
# are finite. Strings and filter values are checked app-wide too (api/deps.py checked_inputs).
Int64 = Annotated[StrictInt, Field(ge=INT64_MIN, le=INT64_MAX)]
Finite = Annotated[float, Field(allow_inf_nan=False)]


def usable_weights(weights: list[float]) -> list[float]:
    if not all(0 <= w <= 100 for w in weights) or not any(weights):
        raise ValueError("fusion_weights are two numbers 0-100, not both 0")
    return weights


# The fusion settings as one rule for a request, an index's defaults and a tune job's grid.
Mode = Literal["hybrid", "dense", "lexical"]
RrfK = Annotated[StrictInt, Field(ge=1, le=1000)]
FusionWeights = Annotated[list[Finite], Field(min_length=2, max_length=2), AfterValidator(usable_weights)]
# Document search (result_type=document): how the two arms combine, whether a feedback round
# runs, and what the lexical arm ranks (docs/api.md, "Document search").
Fusion = Literal["rrf", "zscore"]
LexicalUnit = Literal["document", "chunk"]


class SearchParams(BaseModel):
    """A search: what to look for, how, and under which data boundary."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(max_length=MAX_QUERY_CHARS)
    top_k: StrictInt = Field(10, ge=1, le=MAX_TOP_K)
    result_type: Literal["chunk", "document"] = "chunk"
    mode: Mode = "hybrid"
    filters: dict[str, Any] | None = None
    min_score: Finite | None = None
    as_of_version: Int64 | None = Field(None, ge=1)
    include_history: bool = False
    data_boundary: str | None = None
    account_id: str | None = None
    index_ids: list[str] | None = Field(None, max_length=100)
    rerank: bool = False
    explain: bool = True
    # Hybrid fusion for this request (defaults: RAG_RRF_K and RAG_FUSION_*_WEIGHT).
    rrf_k: RrfK | None = None
    fusion_weights: FusionWeights | None = Field(None, description="[dense, lexical] weights of the fusion, each 0-100")
    # Document search only (result_type=document); chunk results fuse with RRF in the store.
    fusion: Fusion | None = Field(None, description="document search: rrf (ranks) or zscore (normalised scores)")
    prf: StrictBool | None = Field(None, description="document search: pseudo-relevance feedback (RM3 lexical, Rocchio dense)")
    lexical_unit: LexicalUnit | None = Field(None, description="document search: BM25 over whole documents or over chunks")

    @field_validator("query")
    @classmethod
    def _has_text(cls, query: str) -> str:
        if not query.strip():
            raise ValueError("query must not be empty")
        return query


FIELDS = frozenset(SearchParams.model_fields)


class SearchDefaults(BaseModel):
    """An index's own search defaults (a `tune` job's winner, or PATCH search_defaults); each
    field null means the service's."""

    model_config = ConfigDict(extra="forbid")

    mode: Mode | None = None
    rrf_k: RrfK | None = None
    fusion_weights: FusionWeights | None = None
    fusion: Fusion | None = None
    prf: StrictBool | None = None
    lexical_unit: LexicalUnit | None = None


# The fields a request that leaves them out takes from the index's own defaults.
DEFAULTABLE = tuple(SearchDefaults.model_fields)
