"""Talking to the service in a stale run: writes entered in the ledger before they are
sent and acknowledged when the answer comes, and searches stamped with ledger ticks."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from benchmarks.common import ServiceHarness
from benchmarks.stale.ledger import Hit, Ledger, SearchRecord, WriteOp, tick


class Writer:
    """Uploads, deletes and restores, each entered in the ledger before it is sent."""

    def __init__(self, h: ServiceHarness, index_id: str, ledger: Ledger) -> None:
        self.h, self.index_id, self.ledger = h, index_id, ledger
        self.doc_ids: dict[str, str] = {}
        self.counts: Counter[str] = Counter()
        self.errors: list[dict[str, Any]] = []
        self._lock = threading.Lock()  # counts and errors are shared by writer threads

    def _count(self, key: str) -> None:
        with self._lock:
            self.counts[key] += 1

    def _fail(self, op: WriteOp, name: str, response) -> bool:
        self.ledger.failed(name)
        with self._lock:
            self.counts["errors"] += 1
            if len(self.errors) < 20:
                self.errors.append({"op": op.kind, "document": name, "status": response.status_code,
                                    "body": response.text[:300]})
        return False

    def upload(self, name: str, text: str, fact: str | None, if_version: int | None) -> bool:
        op = self.ledger.begin(name, "upload", fact)
        data = {"name": name}
        if if_version is not None:
            # The writer knows the latest version: a 409 here would mean the compare-and-swap is wrong.
            data["if_version"] = str(if_version)
        response = self.h.client.post(
            f"/v1/indexes/{self.index_id}/documents", data=data, headers=self.h.headers,
            files={"file": (f"{name}.txt", text.encode("utf-8"), "text/plain")})
        if response.status_code not in (200, 201):
            return self._fail(op, name, response)
        view = response.json()
        self.doc_ids[name] = view["id"]
        self.ledger.finish(name, op, int(view["version"]))
        self._count("uploads")
        return True

    def delete(self, name: str) -> bool:
        return self._simple(name, "delete", "DELETE", "")

    def restore(self, name: str) -> bool:
        return self._simple(name, "restore", "POST", "/restore")

    def _simple(self, name: str, kind: str, method: str, suffix: str) -> bool:
        op = self.ledger.begin(name, kind)
        url = f"/v1/indexes/{self.index_id}/documents/{self.doc_ids[name]}{suffix}"
        response = self.h.client.request(method, url, headers=self.h.headers)
        if response.status_code != 200:
            return self._fail(op, name, response)
        self.ledger.finish(name, op)
        self._count(kind + "s")
        return True


class Searcher:
    """Asks one index; `overrides` are extra fields for every search body (the tests use
    them to make the service serve old versions on purpose)."""

    def __init__(self, h: ServiceHarness, index_id: str, top_k: int, overrides: dict[str, Any]) -> None:
        self.h, self.index_id, self.top_k, self.overrides = h, index_id, top_k, dict(overrides)

    def search(self, rec: SearchRecord, query: str, result_type: str,
               filters: dict[str, Any] | None = None) -> SearchRecord:
        """Ask one query; fill `rec` (sent/received ticks, hits). Raises on a non-200 answer."""
        body: dict[str, Any] = {"query": query, "mode": rec.mode, "top_k": self.top_k, "result_type": result_type,
                                "explain": False, **self.overrides}
        if filters:
            body["filters"] = filters
        rec.sent = tick()
        response = self.h.client.post(f"/v1/indexes/{self.index_id}/search", json=body, headers=self.h.headers)
        rec.received = tick()
        if response.status_code != 200:
            raise RuntimeError(f"search -> {response.status_code}: {response.text[:300]}")
        for r in response.json()["results"]:
            text = r["best_chunk"]["text"] if result_type == "document" else r["text"]
            rec.hits.append(Hit(name=r["document_name"], version=int(r["version"]), text=text))
            if r["document_name"] not in rec.names:
                rec.names.append(r["document_name"])
        return rec
