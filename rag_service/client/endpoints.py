"""Every endpoint of the API, declared once (`Endpoints`); the sync and async clients differ
only in how a request is sent."""

from __future__ import annotations

import json
import os
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Generic, TypeVar

import httpx

from rag_service.client.errors import error_from_response
from rag_service.search_params import FIELDS as SEARCH_FIELDS

Json = Any  # decoded JSON: a dict for every endpoint but the tools list, None for 204
R = TypeVar("R")


@dataclass
class ApiRequest:
    method: str
    path: str
    params: dict[str, Any] | None = None
    json: Any = None
    data: dict[str, str] | None = None
    # A dict of one part per field, or (field, (filename, bytes)) pairs for repeated fields.
    files: dict[str, tuple[str, bytes]] | list[tuple[str, tuple[str, bytes]]] | None = None


def quote_segment(value: str) -> str:
    return urllib.parse.quote(str(value), safe="")


def compact(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def decode_answer(response: httpx.Response) -> Json:
    if response.status_code >= 400:
        raise error_from_response(response)
    if response.status_code == 204 or not response.content:
        return None
    return response.json()


def file_bytes(file: str | os.PathLike[str] | bytes | IO[bytes], filename: str | None, name: str | None) -> tuple[str, bytes]:
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


class Endpoints(Generic[R]):
    """Every endpoint, once. `R` is the JSON answer (sync) or an awaitable of it (async)."""

    def _send(self, request: ApiRequest) -> R:  # pragma: no cover - implemented by the clients
        raise NotImplementedError

    # indexes
    def list_indexes(self, page: int = 1, per_page: int = 50) -> R:
        return self._send(ApiRequest("GET", "/v1/indexes", params={"page": page, "per_page": per_page}))

    def create_index(self, name: str, *, description: str | None = None, privacy_tier: str | None = None,
                     embedding_model: str | None = None, chunk_max_characters: int | None = None,
                     chunk_overlap: int | None = None, bm25_k1: float | None = None, bm25_b: float | None = None) -> R:
        body = compact({"name": name, "description": description, "privacy_tier": privacy_tier,
                        "embedding_model": embedding_model, "chunk_max_characters": chunk_max_characters,
                        "chunk_overlap": chunk_overlap, "bm25_k1": bm25_k1, "bm25_b": bm25_b})
        return self._send(ApiRequest("POST", "/v1/indexes", json=body))

    def get_index(self, index_id: str) -> R:
        return self._send(ApiRequest("GET", f"/v1/indexes/{quote_segment(index_id)}"))

    def update_index(self, index_id: str, *, name: str | None = None, description: str | None = None,
                     privacy_tier: str | None = None, bm25_k1: float | None = None, bm25_b: float | None = None) -> R:
        body = compact({"name": name, "description": description, "privacy_tier": privacy_tier,
                        "bm25_k1": bm25_k1, "bm25_b": bm25_b})
        return self._send(ApiRequest("PATCH", f"/v1/indexes/{quote_segment(index_id)}", json=body))

    def delete_index(self, index_id: str) -> R:
        return self._send(ApiRequest("DELETE", f"/v1/indexes/{quote_segment(index_id)}"))

    # documents
    def upload(self, index_id: str, file: str | os.PathLike[str] | bytes | IO[bytes], *, name: str | None = None,
               metadata: dict[str, Any] | None = None, if_version: int | None = None,
               filename: str | None = None) -> R:
        """Upload a file (path, bytes or binary stream). The answer has `unchanged: true`
        when the bytes and metadata equal the latest version's; `if_version=N` makes it
        conditional (`VersionConflict` otherwise), `if_version=0` create-only."""
        filename, data = file_bytes(file, filename, name)
        form = compact({"name": name, "metadata": json.dumps(metadata) if metadata is not None else None,
                        "if_version": str(if_version) if if_version is not None else None})
        return self._send(ApiRequest("POST", f"/v1/indexes/{quote_segment(index_id)}/documents", data=form,
                                     files={"file": (filename, data)}))

    def upload_batch(self, index_id: str, files: list[dict[str, Any]], *, run_async: bool = False) -> R:
        """Upload many files in one request. Each entry: `file` (path, bytes or stream) and optional
        `name`, `metadata`, `if_version`, `filename`. The answer's `items` hold one result per file,
        in order, each with `status_code` and, for a failure, `code` (the request itself answers 207
        when any file failed): nothing is raised for a single file's error."""
        parts, manifest = [], []
        for entry in files:
            filename, data = file_bytes(entry["file"], entry.get("filename"), entry.get("name"))
            parts.append(("file", (filename, data)))
            manifest.append(compact({k: entry.get(k) for k in ("name", "metadata", "if_version")}))
        return self._send(ApiRequest("POST", f"/v1/indexes/{quote_segment(index_id)}/documents/batch",
                                     params={"async": "true"} if run_async else None,
                                     data={"manifest": json.dumps(manifest)}, files=parts))

    def list_documents(self, index_id: str | None = None, *, page: int = 1, per_page: int = 50,
                       include_deleted: bool = False, name_prefix: str | None = None) -> R:
        path = f"/v1/indexes/{quote_segment(index_id)}/documents" if index_id else "/v1/documents"
        params = compact({"page": page, "per_page": per_page, "include_deleted": str(include_deleted).lower(),
                         "name_prefix": name_prefix})
        return self._send(ApiRequest("GET", path, params=params))

    def get_document(self, document_id: str, *, index_id: str | None = None) -> R:
        return self._send(ApiRequest("GET", document_path(document_id, index_id)))

    def get_document_by_name(self, index_id: str, name: str) -> R:
        return self._send(ApiRequest("GET", by_name_path(index_id, name)))

    def document_versions(self, index_id: str, name: str) -> R:
        return self._send(ApiRequest("GET", f"{by_name_path(index_id, name)}/versions"))

    def get_version(self, document_id: str, version: int, *, index_id: str | None = None) -> R:
        """One version with its text and chunks."""
        return self._send(ApiRequest("GET", f"{document_path(document_id, index_id)}/versions/{int(version)}"))

    def delete_document(self, document_id: str, *, hard: bool = False, index_id: str | None = None) -> R:
        return self._send(ApiRequest("DELETE", document_path(document_id, index_id), params={"hard": str(hard).lower()}))

    def restore_document(self, document_id: str, *, index_id: str | None = None) -> R:
        return self._send(ApiRequest("POST", f"{document_path(document_id, index_id)}/restore"))

    # search
    def search(self, query: str, *, index_id: str | None = None, **params: Any) -> R:
        """Search all indexes, or `index_id`'s. `params` are the fields of the service's own search
        model (rag_service.search_params.SearchParams: top_k, mode, result_type, filters, min_score,
        as_of_version, include_history, data_boundary, account_id, index_ids, rerank, explain,
        rrf_k, fusion_weights); an unknown one is a TypeError here, before any request."""
        unknown = sorted(set(params) - SEARCH_FIELDS)
        if unknown:
            raise TypeError(f"search() got unknown parameters {unknown}; it takes {sorted(SEARCH_FIELDS - {'query'})}")
        body = compact({"query": query, **{k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}})
        path = f"/v1/indexes/{quote_segment(index_id)}/search" if index_id else "/v1/search"
        return self._send(ApiRequest("POST", path, json=body))

    # status and jobs
    def status(self) -> R:
        return self._send(ApiRequest("GET", "/v1/rag/status"))

    def list_jobs(self, *, page: int = 1, per_page: int = 50, status: str | None = None) -> R:
        """The job contract (classes, boundaries, tiers, rules) and this project's jobs."""
        params = compact({"page": page, "per_page": per_page, "status": status})
        return self._send(ApiRequest("GET", "/v1/rag/jobs", params=params))

    def create_job(self, job_class: str, *, index_id: str | None = None, data_boundary: str | None = None,
                   privacy_tier: str | None = None, account_id: str | None = None,
                   params: dict[str, Any] | None = None) -> R:
        body = compact({"job_class": job_class, "index_id": index_id, "data_boundary": data_boundary,
                        "privacy_tier": privacy_tier, "account_id": account_id, "params": params})
        return self._send(ApiRequest("POST", "/v1/rag/jobs", json=body))

    def get_job(self, job_id: str) -> R:
        return self._send(ApiRequest("GET", f"/v1/rag/jobs/{quote_segment(job_id)}"))

    def cancel_job(self, job_id: str) -> R:
        return self._send(ApiRequest("POST", f"/v1/rag/jobs/{quote_segment(job_id)}/cancel"))

    def get_evidence(self, evidence_id: str) -> R:
        return self._send(ApiRequest("GET", f"/v1/rag/evidence/{quote_segment(evidence_id)}"))

    # agent tools
    def openai_tools(self) -> R:
        return self._send(ApiRequest("GET", "/v1/tools/openai"))

    def call_tool(self, name: str, arguments: dict[str, Any] | str | None = None) -> R:
        return self._send(ApiRequest("POST", "/v1/tools/call", json={"name": name, "arguments": arguments or {}}))

    # keys (admin)
    def list_keys(self, page: int = 1, per_page: int = 50) -> R:
        return self._send(ApiRequest("GET", "/v1/keys", params={"page": page, "per_page": per_page}))

    def create_key(self, role: str, name: str | None = None) -> R:
        return self._send(ApiRequest("POST", "/v1/keys", json=compact({"role": role, "name": name})))

    def revoke_key(self, key_id: str) -> R:
        return self._send(ApiRequest("DELETE", f"/v1/keys/{quote_segment(key_id)}"))

    def health(self) -> R:
        return self._send(ApiRequest("GET", "/healthz"))


def by_name_path(index_id: str, name: str) -> str:
    return f"/v1/indexes/{quote_segment(index_id)}/documents/by-name/{quote_segment(name)}"


def document_path(document_id: str, index_id: str | None) -> str:
    if index_id:
        return f"/v1/indexes/{quote_segment(index_id)}/documents/{quote_segment(document_id)}"
    return f"/v1/documents/{quote_segment(document_id)}"


def match_index(items: list[dict[str, Any]], name_or_id: str) -> dict[str, Any] | None:
    return next((i for i in items if i["id"] == name_or_id), None) or next((i for i in items if i["name"] == name_or_id), None)
