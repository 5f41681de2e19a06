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

import email.utils
import json
import os
import time
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, AsyncIterator, Awaitable, Callable, Generic, Iterator, TypeVar

import anyio
import httpx

import rag_service
from rag_service.sse import StreamEvent, parse_sse

DEFAULT_URL = "http://127.0.0.1:8080"
Json = Any  # decoded JSON: a dict for every endpoint but the tools list, None for 204
R = TypeVar("R")


# -- errors --------------------------------------------------------------------
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


class Forbidden(RagError):
    """403: the key's role may not do this."""


class DataBoundaryViolation(Forbidden):
    """403: the data boundary may not read an index that was named."""


class NotFound(RagError):
    """404 (also for another project's objects)."""


class Conflict(RagError):
    """409."""


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


class UnsupportedMediaType(RagError):
    """415."""


class ValidationError(RagError):
    """422 (validation_error, and the document and rerank errors that share its status)."""


class RateLimited(RagError):
    """429 after the retries ran out."""


class JobRunnerNotLive(RagError):
    """501: a planned job class with no runner yet."""


class RetrievalUnavailable(RagError):
    """503: a store is down (never an empty result that looks like no hits)."""


_BY_CODE: dict[str, type[RagError]] = {
    "unauthorized": Unauthorized,
    "forbidden": Forbidden,
    "data_boundary_violation": DataBoundaryViolation,
    "not_found": NotFound,
    "conflict": Conflict,
    "version_conflict": VersionConflict,
    "payload_too_large": PayloadTooLarge,
    "unsupported_media_type": UnsupportedMediaType,
    "validation_error": ValidationError,
    "rate_limited": RateLimited,
    "rag_job_runner_not_live": JobRunnerNotLive,
    "retrieval_unavailable": RetrievalUnavailable,
}
_BY_STATUS: dict[int, type[RagError]] = {
    401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict, 413: PayloadTooLarge,
    415: UnsupportedMediaType, 422: ValidationError, 429: RateLimited, 501: JobRunnerNotLive, 503: RetrievalUnavailable,
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
    cls = _BY_CODE.get(code) or _BY_STATUS.get(response.status_code, RagError)
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


# -- requests ------------------------------------------------------------------
@dataclass
class _Request:
    method: str
    path: str
    params: dict[str, Any] | None = None
    json: Any = None
    data: dict[str, str] | None = None
    # A dict of one part per field, or (field, (filename, bytes)) pairs for repeated fields.
    files: dict[str, tuple[str, bytes]] | list[tuple[str, tuple[str, bytes]]] | None = None


def _q(value: str) -> str:
    return urllib.parse.quote(str(value), safe="")


def _compact(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _decode(response: httpx.Response) -> Json:
    if response.status_code >= 400:
        raise error_from_response(response)
    if response.status_code == 204 or not response.content:
        return None
    return response.json()


def _file_bytes(file: str | os.PathLike[str] | bytes | IO[bytes], filename: str | None, name: str | None) -> tuple[str, bytes]:
    if isinstance(file, (bytes, bytearray, memoryview)):
        data = bytes(file)
        filename = filename or name
        if not filename:
            raise ValueError("uploading bytes needs a filename (or a name): the extension decides the format")
    elif isinstance(file, (str, os.PathLike)):
        path = Path(file)
        data = path.read_bytes()
        filename = filename or path.name
    else:
        data = file.read()
        filename = filename or Path(getattr(file, "name", "") or name or "").name
        if not filename:
            raise ValueError("uploading a stream needs a filename (or a name)")
    return filename, data


class _Endpoints(Generic[R]):
    """Every endpoint, once. `R` is the JSON answer (sync) or an awaitable of it (async)."""

    def _send(self, request: _Request) -> R:  # pragma: no cover - implemented by the clients
        raise NotImplementedError

    # indexes
    def list_indexes(self, page: int = 1, per_page: int = 50) -> R:
        return self._send(_Request("GET", "/v1/indexes", params={"page": page, "per_page": per_page}))

    def create_index(self, name: str, *, description: str | None = None, privacy_tier: str | None = None,
                     embedding_model: str | None = None, chunk_max_characters: int | None = None,
                     chunk_overlap: int | None = None, bm25_k1: float | None = None, bm25_b: float | None = None) -> R:
        body = _compact({"name": name, "description": description, "privacy_tier": privacy_tier,
                         "embedding_model": embedding_model, "chunk_max_characters": chunk_max_characters,
                         "chunk_overlap": chunk_overlap, "bm25_k1": bm25_k1, "bm25_b": bm25_b})
        return self._send(_Request("POST", "/v1/indexes", json=body))

    def get_index(self, index_id: str) -> R:
        return self._send(_Request("GET", f"/v1/indexes/{_q(index_id)}"))

    def update_index(self, index_id: str, *, name: str | None = None, description: str | None = None,
                     privacy_tier: str | None = None, bm25_k1: float | None = None, bm25_b: float | None = None) -> R:
        body = _compact({"name": name, "description": description, "privacy_tier": privacy_tier,
                         "bm25_k1": bm25_k1, "bm25_b": bm25_b})
        return self._send(_Request("PATCH", f"/v1/indexes/{_q(index_id)}", json=body))

    def delete_index(self, index_id: str) -> R:
        return self._send(_Request("DELETE", f"/v1/indexes/{_q(index_id)}"))

    # documents
    def upload(self, index_id: str, file: str | os.PathLike[str] | bytes | IO[bytes], *, name: str | None = None,
               metadata: dict[str, Any] | None = None, if_version: int | None = None,
               filename: str | None = None) -> R:
        """Upload a file (path, bytes or binary stream). The answer has `unchanged: true`
        when the bytes and metadata equal the latest version's; `if_version=N` makes it
        conditional (`VersionConflict` otherwise), `if_version=0` create-only."""
        filename, data = _file_bytes(file, filename, name)
        form = _compact({"name": name, "metadata": json.dumps(metadata) if metadata is not None else None,
                         "if_version": str(if_version) if if_version is not None else None})
        return self._send(_Request("POST", f"/v1/indexes/{_q(index_id)}/documents", data=form,
                                   files={"file": (filename, data)}))

    def upload_batch(self, index_id: str, files: list[dict[str, Any]], *, run_async: bool = False) -> R:
        """Upload many files in one request. Each entry: `file` (path, bytes or stream) and optional
        `name`, `metadata`, `if_version`, `filename`. The answer's `items` hold one result per file,
        in order, each with `status_code` and, for a failure, `code` (the request itself answers 207
        when any file failed): nothing is raised for a single file's error."""
        parts, manifest = [], []
        for entry in files:
            filename, data = _file_bytes(entry["file"], entry.get("filename"), entry.get("name"))
            parts.append(("file", (filename, data)))
            manifest.append(_compact({k: entry.get(k) for k in ("name", "metadata", "if_version")}))
        return self._send(_Request("POST", f"/v1/indexes/{_q(index_id)}/documents/batch",
                                   params={"async": "true"} if run_async else None,
                                   data={"manifest": json.dumps(manifest)}, files=parts))

    def list_documents(self, index_id: str | None = None, *, page: int = 1, per_page: int = 50,
                       include_deleted: bool = False, name_prefix: str | None = None) -> R:
        path = f"/v1/indexes/{_q(index_id)}/documents" if index_id else "/v1/documents"
        params = _compact({"page": page, "per_page": per_page, "include_deleted": str(include_deleted).lower(),
                           "name_prefix": name_prefix})
        return self._send(_Request("GET", path, params=params))

    def get_document(self, document_id: str, *, index_id: str | None = None) -> R:
        return self._send(_Request("GET", _doc_path(document_id, index_id)))

    def get_document_by_name(self, index_id: str, name: str) -> R:
        return self._send(_Request("GET", f"/v1/indexes/{_q(index_id)}/documents/by-name/{_q(name)}"))

    def document_versions(self, index_id: str, name: str) -> R:
        return self._send(_Request("GET", f"/v1/indexes/{_q(index_id)}/documents/by-name/{_q(name)}/versions"))

    def get_version(self, document_id: str, version: int, *, index_id: str | None = None) -> R:
        """One version with its text and chunks."""
        return self._send(_Request("GET", f"{_doc_path(document_id, index_id)}/versions/{int(version)}"))

    def delete_document(self, document_id: str, *, hard: bool = False, index_id: str | None = None) -> R:
        return self._send(_Request("DELETE", _doc_path(document_id, index_id), params={"hard": str(hard).lower()}))

    def restore_document(self, document_id: str, *, index_id: str | None = None) -> R:
        return self._send(_Request("POST", f"{_doc_path(document_id, index_id)}/restore"))

    # search
    def search(self, query: str, *, index_id: str | None = None, top_k: int | None = None, mode: str | None = None,
               result_type: str | None = None, filters: dict[str, Any] | None = None, min_score: float | None = None,
               as_of_version: int | None = None, include_history: bool | None = None,
               data_boundary: str | None = None, account_id: str | None = None, index_ids: list[str] | None = None,
               rerank: bool | None = None, explain: bool | None = None) -> R:
        body = _compact({"query": query, "top_k": top_k, "mode": mode, "result_type": result_type,
                         "filters": filters, "min_score": min_score, "as_of_version": as_of_version,
                         "include_history": include_history, "data_boundary": data_boundary,
                         "account_id": account_id, "index_ids": index_ids, "rerank": rerank, "explain": explain})
        path = f"/v1/indexes/{_q(index_id)}/search" if index_id else "/v1/search"
        return self._send(_Request("POST", path, json=body))

    # status and jobs
    def status(self) -> R:
        return self._send(_Request("GET", "/v1/rag/status"))

    def list_jobs(self, *, page: int = 1, per_page: int = 50, status: str | None = None) -> R:
        """The job contract (classes, boundaries, tiers, rules) and this project's jobs."""
        params = _compact({"page": page, "per_page": per_page, "status": status})
        return self._send(_Request("GET", "/v1/rag/jobs", params=params))

    def create_job(self, job_class: str, *, index_id: str | None = None, data_boundary: str | None = None,
                   privacy_tier: str | None = None, account_id: str | None = None,
                   params: dict[str, Any] | None = None) -> R:
        body = _compact({"job_class": job_class, "index_id": index_id, "data_boundary": data_boundary,
                         "privacy_tier": privacy_tier, "account_id": account_id, "params": params})
        return self._send(_Request("POST", "/v1/rag/jobs", json=body))

    def get_job(self, job_id: str) -> R:
        return self._send(_Request("GET", f"/v1/rag/jobs/{_q(job_id)}"))

    def cancel_job(self, job_id: str) -> R:
        return self._send(_Request("POST", f"/v1/rag/jobs/{_q(job_id)}/cancel"))

    def get_evidence(self, evidence_id: str) -> R:
        return self._send(_Request("GET", f"/v1/rag/evidence/{_q(evidence_id)}"))

    # agent tools
    def openai_tools(self) -> R:
        return self._send(_Request("GET", "/v1/tools/openai"))

    def call_tool(self, name: str, arguments: dict[str, Any] | str | None = None) -> R:
        return self._send(_Request("POST", "/v1/tools/call", json={"name": name, "arguments": arguments or {}}))

    # keys (admin)
    def list_keys(self, page: int = 1, per_page: int = 50) -> R:
        return self._send(_Request("GET", "/v1/keys", params={"page": page, "per_page": per_page}))

    def create_key(self, role: str, name: str | None = None) -> R:
        return self._send(_Request("POST", "/v1/keys", json=_compact({"role": role, "name": name})))

    def revoke_key(self, key_id: str) -> R:
        return self._send(_Request("DELETE", f"/v1/keys/{_q(key_id)}"))

    def health(self) -> R:
        return self._send(_Request("GET", "/healthz"))


def _doc_path(document_id: str, index_id: str | None) -> str:
    if index_id:
        return f"/v1/indexes/{_q(index_id)}/documents/{_q(document_id)}"
    return f"/v1/documents/{_q(document_id)}"


def _match_index(items: list[dict[str, Any]], name_or_id: str) -> dict[str, Any] | None:
    return next((i for i in items if i["id"] == name_or_id), None) or next((i for i in items if i["name"] == name_or_id), None)


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

    def _kwargs(self, request: _Request) -> dict[str, Any]:
        return {"params": request.params, "json": request.json, "data": request.data, "files": request.files,
                "headers": self._headers}


class RagClient(_Config, _Endpoints[Json]):
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

    def _send(self, request: _Request) -> Json:
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
            return _decode(response)
        raise AssertionError("unreachable")

    def stream_events(self, after: int | None = None, *, types: list[str] | None = None,
                      timeout_s: float | None = None) -> Iterator[StreamEvent]:
        """The project's events as they happen (`GET /v1/events`), after event id `after` (None:
        from now on). `timeout_s` ends the stream; reconnect with the last event's id to resume."""
        headers = {**self._headers, **({"Last-Event-ID": str(after)} if after is not None else {})}
        params = _compact({"types": ",".join(types) if types else None, "timeout_s": timeout_s})
        with self.http.stream("GET", self._prefix + "/v1/events", params=params, headers=headers,
                              timeout=httpx.Timeout(30.0, read=None)) as response:
            if response.status_code >= 400:
                response.read()
                _decode(response)  # raises the service's error
            yield from parse_sse(response.iter_lines())

    def event_position(self) -> int:
        """The id of the latest event: resume after it to see only what happens from now on."""
        with self.http.stream("GET", self._prefix + "/v1/events", params={"timeout_s": 0.01},
                              headers=self._headers) as response:
            response.read()
            if response.status_code >= 400:
                _decode(response)
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
        return _match_index(list(self.iter_indexes()), name_or_id)

    def close(self) -> None:
        if self._owns_http:
            self.http.close()

    def __enter__(self) -> RagClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncRagClient(_Config, _Endpoints[Awaitable[Json]]):
    """Asynchronous client (asyncio or trio): the same methods as `RagClient`, awaited."""

    def __init__(self, base_url: str | None = None, api_key: str | None = None, *,
                 http: httpx.AsyncClient | None = None, transport: httpx.AsyncBaseTransport | None = None,
                 timeout: float = 120.0, retry: RetryPolicy | None = None,
                 sleep: Callable[[float], Awaitable[None]] = anyio.sleep, headers: dict[str, str] | None = None) -> None:
        self._configure(base_url, api_key, http, retry, headers)
        self._owns_http = http is None
        self.http = http or httpx.AsyncClient(base_url=self.base_url, transport=transport, timeout=timeout)
        self._sleep = sleep

    async def _send(self, request: _Request) -> Json:
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
            return _decode(response)
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
        return _match_index([i async for i in self.iter_indexes()], name_or_id)

    async def aclose(self) -> None:
        if self._owns_http:
            await self.http.aclose()

    async def __aenter__(self) -> AsyncRagClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
