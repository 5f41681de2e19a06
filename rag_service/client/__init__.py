"""A typed Python client for the RAG service: `RagClient` (sync) and
`AsyncRagClient` (async), both on httpx.

    with RagClient("http://127.0.0.1:8080", api_key="rag_...") as rag:
        index = rag.create_index("handbook", privacy_tier="private")
        rag.upload(index["id"], "policy.pdf", metadata={"author": "hr"})
        hits = rag.search("parental leave", top_k=5)["results"]

API errors become exceptions by error code (`VersionConflict`, `NotFound`, ...,
all `RagError`). 429 and 503 answers, and connections that could not be opened,
are retried with exponential backoff, honouring `Retry-After`, a bounded number
of times. Pass `http=` (any `httpx.Client`, e.g. FastAPI's TestClient) or
`transport=` to route requests elsewhere (tests, proxies).

Every endpoint is declared once in `_Endpoints`; the two clients differ only
in how a request is sent, so `AsyncRagClient` methods return awaitables.
"""

from __future__ import annotations

import os
import time
from typing import Any, AsyncIterator, Awaitable, Callable, Iterator

import anyio
import httpx

import rag_service
from rag_service.client.endpoints import ApiRequest, Endpoints, Json, compact, decode_answer, match_index
from rag_service.client.errors import (
    CLASS_BY_CODE,
    NO_RETRY,
    Conflict,
    DataBoundaryViolation,
    Forbidden,
    JobRunnerNotLive,
    NotFound,
    PayloadTooLarge,
    RagError,
    RateLimited,
    RetrievalUnavailable,
    RetryPolicy,
    Unauthorized,
    UnsupportedMediaType,
    ValidationError,
    VersionConflict,
    error_from_response,
    parse_retry_after,
)
from rag_service.sse import StreamEvent, parse_sse

DEFAULT_URL = "http://127.0.0.1:8080"
__all__ = [
    "AsyncRagClient", "CLASS_BY_CODE", "Conflict", "DEFAULT_URL", "DataBoundaryViolation", "Forbidden", "JobRunnerNotLive",
    "NO_RETRY", "NotFound", "PayloadTooLarge", "RagClient", "RagError", "RateLimited", "RetrievalUnavailable",
    "RetryPolicy", "Unauthorized", "UnsupportedMediaType", "ValidationError", "VersionConflict", "error_from_response",
    "parse_retry_after",
]


class _Config:
    def _configure(self, base_url: str | None, api_key: str | None, http: Any, retry: RetryPolicy | None,
                   headers: dict[str, str] | None) -> None:
        self.api_key = api_key if api_key is not None else os.environ.get("RAG_API_KEY")
        self.retry = retry or RetryPolicy()
        # An injected client brings its own base URL unless one is given here.
        self._prefix = base_url.rstrip("/") if (base_url and http is not None) else ""
        self.base_url = (base_url or (str(http.base_url) if http is not None else None) or os.environ.get("RAG_URL")
                         or DEFAULT_URL).rstrip("/")
        self._headers = {"User-Agent": f"rag-service-client/{rag_service.__version__}", **(headers or {})}
        if self.api_key:
            self._headers["X-API-Key"] = self.api_key

    def _kwargs(self, request: ApiRequest) -> dict[str, Any]:
        return {"params": request.params, "json": request.json, "data": request.data, "files": request.files,
                "headers": self._headers}


class RagClient(_Config, Endpoints[Json]):
    """Synchronous client. `base_url` defaults to `RAG_URL` (else http://127.0.0.1:8080),
    `api_key` to `RAG_API_KEY`."""

    def __init__(self, base_url: str | None = None, api_key: str | None = None, *, http: httpx.Client | None = None,
                 transport: httpx.BaseTransport | None = None, timeout: float = 120.0,
                 retry: RetryPolicy | None = None, sleep: Callable[[float], None] = time.sleep,
                 headers: dict[str, str] | None = None) -> None:
        self._configure(base_url, api_key, http, retry, headers)
        self._owns_http = http is None
        self.http = http or httpx.Client(base_url=self.base_url, transport=transport, timeout=timeout)
        self._sleep = sleep

    def _send(self, request: ApiRequest) -> Json:
        for attempt in range(1, self.retry.max_attempts + 1):
            last = attempt == self.retry.max_attempts
            try:
                response = self.http.request(request.method, self._prefix + request.path, **self._kwargs(request))
            except httpx.ConnectError:  # never reached the service: safe to try again
                if last:
                    raise
                self._sleep(self.retry.delay(attempt, None))
                continue
            if response.status_code in self.retry.statuses and not last:
                self._sleep(self.retry.delay(attempt, response))
                continue
            return decode_answer(response)
        raise AssertionError("unreachable")

    def stream_events(self, after: int | None = None, *, types: list[str] | None = None,
                      timeout_s: float | None = None) -> Iterator[StreamEvent]:
        """The project's events as they happen (`GET /v1/events`), after event id `after` (None:
        from now on). `timeout_s` ends the stream; reconnect with the last event's id to resume."""
        headers = {**self._headers, **({"Last-Event-ID": str(after)} if after is not None else {})}
        params = compact({"types": ",".join(types) if types else None, "timeout_s": timeout_s})
        with self.http.stream("GET", self._prefix + "/v1/events", params=params, headers=headers,
                              timeout=httpx.Timeout(30.0, read=None)) as response:
            if response.status_code >= 400:
                response.read()
                decode_answer(response)  # raises the service's error
            yield from parse_sse(response.iter_lines())

    def event_position(self) -> int:
        """The id of the latest event: resume after it to see only what happens from now on."""
        with self.http.stream("GET", self._prefix + "/v1/events", params={"timeout_s": 0.01},
                              headers=self._headers) as response:
            response.read()
            if response.status_code >= 400:
                decode_answer(response)
            return int(response.headers.get("x-event-position", "0"))

    def iter_indexes(self, per_page: int = 100) -> Iterator[dict[str, Any]]:
        page = 1
        while True:
            body = self.list_indexes(page=page, per_page=per_page)
            yield from body["items"]
            if page * per_page >= body["total"] or not body["items"]:
                return
            page += 1

    def iter_documents(self, index_id: str | None = None, *, include_deleted: bool = False,
                       per_page: int = 200) -> Iterator[dict[str, Any]]:
        page = 1
        while True:
            body = self.list_documents(index_id, page=page, per_page=per_page, include_deleted=include_deleted)
            yield from body["items"]
            if page * per_page >= body["total"] or not body["items"]:
                return
            page += 1

    def find_index(self, name_or_id: str) -> dict[str, Any] | None:
        """The index with this id, else with this name, else None."""
        return match_index(list(self.iter_indexes()), name_or_id)

    def close(self) -> None:
        if self._owns_http:
            self.http.close()

    def __enter__(self) -> RagClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncRagClient(_Config, Endpoints[Awaitable[Json]]):
    """Asynchronous client (asyncio or trio): the same methods as `RagClient`, awaited."""

    def __init__(self, base_url: str | None = None, api_key: str | None = None, *,
                 http: httpx.AsyncClient | None = None, transport: httpx.AsyncBaseTransport | None = None,
                 timeout: float = 120.0, retry: RetryPolicy | None = None,
                 sleep: Callable[[float], Awaitable[None]] = anyio.sleep, headers: dict[str, str] | None = None) -> None:
        self._configure(base_url, api_key, http, retry, headers)
        self._owns_http = http is None
        self.http = http or httpx.AsyncClient(base_url=self.base_url, transport=transport, timeout=timeout)
        self._sleep = sleep

    async def _send(self, request: ApiRequest) -> Json:
        for attempt in range(1, self.retry.max_attempts + 1):
            last = attempt == self.retry.max_attempts
            try:
                response = await self.http.request(request.method, self._prefix + request.path, **self._kwargs(request))
            except httpx.ConnectError:
                if last:
                    raise
                await self._sleep(self.retry.delay(attempt, None))
                continue
            if response.status_code in self.retry.statuses and not last:
                await self._sleep(self.retry.delay(attempt, response))
                continue
            return decode_answer(response)
        raise AssertionError("unreachable")

    async def iter_indexes(self, per_page: int = 100) -> AsyncIterator[dict[str, Any]]:
        page = 1
        while True:
            body = await self.list_indexes(page=page, per_page=per_page)
            for item in body["items"]:
                yield item
            if page * per_page >= body["total"] or not body["items"]:
                return
            page += 1

    async def find_index(self, name_or_id: str) -> dict[str, Any] | None:
        return match_index([i async for i in self.iter_indexes()], name_or_id)

    async def aclose(self) -> None:
        if self._owns_http:
            await self.http.aclose()

    async def __aenter__(self) -> AsyncRagClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
