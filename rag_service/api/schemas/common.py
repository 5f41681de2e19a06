"""The error body, paging, shapes several areas share, and the helpers route decorators
use to declare their answers (`returns`, `errors_for`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ResponseModel(BaseModel):
    """Base of every response model: fields may be added beside the documented ones."""

    model_config = ConfigDict(extra="allow")


class ErrorBody(ResponseModel):
    """docs/api.md "Errors": the one shape of every error answer. Detail fields of the
    code (`required_role`, `current_version`, `component`, `limit_bytes`...) sit beside these."""

    error: str = Field(description="the stable error code (the same as `code`)")
    code: str = Field(description="the stable error code: unauthorized, forbidden, data_boundary_violation, "
                                  "not_found, conflict, version_conflict, payload_too_large, validation_error...")
    message: str = Field(description="for people; may change")
    request_id: str | None = Field(None, description="the request's X-Request-ID")
    field: str | None = Field(None, description="validation_error: the path of the first bad value, as the "
                                                "request names it (`metadata.a`, `filters.year.gte`, `body`)")
    errors: list[dict[str, Any]] | None = Field(None, description="validation_error: pydantic's list of problems")
    reason: str | None = Field(None, description="a finer cause, e.g. body_too_large, malformed_body")


class Page(ResponseModel):
    """A page of a listing: `items` (typed by each listing), the total and the page asked for."""

    total: int = Field(description="items in the whole listing")
    page: int
    per_page: int


class Encoder(ResponseModel):
    """The encoder identity vectors came from: vectors of two identities never mix."""

    model: str
    backend: str = Field(description="torch or onnx")
    precision: str = Field(description="fp32, bf16 (torch) or int8 (onnx)")


class IndexExclusion(ResponseModel):
    """An index a listing or search over all indexes skipped: its data_boundary may not read it."""

    index_id: str
    privacy_tier: str


# What each error status means on these routes (docs/api.md "Errors" has every code).
ERROR_WHEN: dict[int, str] = {
    401: "`unauthorized`: no key, an unknown key or a revoked key",
    403: "`forbidden`: the key's role is too low (`required_role`); or `data_boundary_violation`: the "
         "request's data_boundary may not read or write the index's privacy_tier",
    404: "`not_found`: missing, or another project's",
    409: "`conflict`: the name is taken; or `version_conflict`: if_version / If-Match is not the latest "
         "version (`current_version`, `expected_version`)",
    413: "`payload_too_large`: the body is over RAG_MAX_UPLOAD_MB, or too many files or fields; or "
         "`document_too_large`: parsing needs more than RAG_PARSE_MEMORY_MB",
    415: "`unsupported_media_type`: not one of .txt .md .html .htm .pdf .docx .csv .json",
    422: "`validation_error` (`field` names the bad value) or another 422 code of docs/api.md",
    429: "`rate_limited`: over RAG_RATE_LIMIT_PER_MINUTE requests a minute for the key (Retry-After)",
    501: "`rag_job_runner_not_live`: a planned job class",
    503: "`retrieval_unavailable`: the database, vector store or embedder does not answer "
         "(`component`; Retry-After)",
}

# Every route behind a key can answer these: a bad key, a bad path or query value, the key's
# rate limit, and the database (which authenticates the key) not answering.
KEYED = (401, 422, 429, 503)


def errors_for(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries for error statuses, each with the shared error body."""
    return {status: {"model": ErrorBody, "description": ERROR_WHEN[status]} for status in sorted(set(statuses))}


def returns(model: Any, status: int = 200, description: str | None = None) -> dict[int | str, dict[str, Any]]:
    """A `responses=` entry for a success status. Declared this way (not `response_model=`)
    so FastAPI documents the model but still sends the service's answer untouched."""
    entry: dict[str, Any] = {"model": model}
    if description:
        entry["description"] = description
    return {status: entry}
