"""The client's errors (one class per HTTP status, `RagError` at the root), Retry-After parsing
and the retry policy. Codes map to classes through the server's own table
(`rag_service.error_codes`), so a code the server adds cannot be missed here."""

from __future__ import annotations

import email.utils
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import httpx

from rag_service.error_codes import STATUS_BY_CODE


class RagError(Exception):
    """An error answer of the service: HTTP status, stable code, message, full body."""

    def __init__(self, status: int, code: str, message: str, body: dict[str, Any] | None = None,
                 headers: httpx.Headers | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.body = body or {}
        self.headers = headers or httpx.Headers()

    @property
    def request_id(self) -> str | None:
        return self.body.get("request_id")

    @property
    def retry_after(self) -> float | None:
        return parse_retry_after(self.headers.get("retry-after"))


class Unauthorized(RagError):
    """401: missing, invalid or revoked API key."""

    status = 401


class Forbidden(RagError):
    """403: the key's role may not do this."""

    status = 403


class DataBoundaryViolation(Forbidden):
    """403: the data boundary may not read an index that was named."""


class NotFound(RagError):
    """404 (also for another project's objects)."""

    status = 404


class Conflict(RagError):
    """409."""

    status = 409


class VersionConflict(Conflict):
    """409: `if_version` did not match the document's latest version."""

    @property
    def current_version(self) -> int | None:
        return self.body.get("current_version")

    @property
    def expected_version(self) -> int | None:
        return self.body.get("expected_version")


class PayloadTooLarge(RagError):
    """413."""

    status = 413


class UnsupportedMediaType(RagError):
    """415."""

    status = 415


class ValidationError(RagError):
    """422 (validation_error, and the document and rerank errors that share its status)."""

    status = 422


class RateLimited(RagError):
    """429 after the retries ran out."""

    status = 429


class JobRunnerNotLive(RagError):
    """501: a planned job class with no runner yet."""

    status = 501


class RetrievalUnavailable(RagError):
    """503: a store is down (never an empty result that looks like no hits)."""

    status = 503


# The client's classes are keyed by HTTP status; a code gets its own class only where callers
# need its detail (current_version, the excluded indexes). Every other code the server knows
# maps through its status, read from the one table the server answers with.
_SPECIFIC: dict[str, type[RagError]] = {"data_boundary_violation": DataBoundaryViolation,
                                        "version_conflict": VersionConflict}
_BY_STATUS: dict[int, type[RagError]] = {
    cls.status: cls for cls in (Unauthorized, Forbidden, NotFound, Conflict, PayloadTooLarge, UnsupportedMediaType,
                                ValidationError, RateLimited, JobRunnerNotLive, RetrievalUnavailable)
}
CLASS_BY_CODE: dict[str, type[RagError]] = {
    code: _SPECIFIC.get(code) or _BY_STATUS.get(status, RagError) for code, status in STATUS_BY_CODE.items()
}


def error_from_response(response: httpx.Response) -> RagError:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {"message": response.text[:1000]}
    code = str(body.get("code") or body.get("error") or f"http_{response.status_code}")
    message = str(body.get("message") or response.reason_phrase or "error")
    cls = CLASS_BY_CODE.get(code) or _BY_STATUS.get(response.status_code, RagError)
    return cls(response.status_code, code, message, body, response.headers)


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After is either delay-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


@dataclass(frozen=True)
class RetryPolicy:
    """`max_attempts` tries in all; waits `Retry-After` when given, else
    `backoff * 2**(n-1)`; never longer than `max_delay`."""

    max_attempts: int = 4
    backoff: float = 0.5
    max_delay: float = 30.0
    statuses: frozenset[int] = field(default_factory=lambda: frozenset({429, 503}))

    def delay(self, attempt: int, response: httpx.Response | None) -> float:
        retry_after = parse_retry_after(response.headers.get("retry-after")) if response is not None else None
        if retry_after is None:
            retry_after = self.backoff * 2 ** (attempt - 1)
        return min(retry_after, self.max_delay)


NO_RETRY = RetryPolicy(max_attempts=1)
