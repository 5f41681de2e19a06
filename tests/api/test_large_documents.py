"""10 MB text-like uploads parse and chunk inside the default limits (60 s, 4096 MB
per parser process) and are indexed synchronously. A stub embedder stands in for
the model: these tests check parsing and chunking, not embeddings."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from benchmarks.parse_speed import FORMATS, make_document
from pipelines.embed import DEFAULT_MODEL_NAME
from rag_service.stores.embedder import EmbedderRegistry
from tests.conftest import Api, new_key


class HashEmbedder:
    """Deterministic unit vectors from the text's hash: the model's shape at no model cost."""

    name = DEFAULT_MODEL_NAME
    dimension = 384

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")
            vec = np.random.default_rng(seed).standard_normal(self.dimension)
            out[row] = vec / np.linalg.norm(vec)
        return out


@pytest.fixture
def database_url(tmp_path) -> str:
    """SQLite only: parsing and chunking happen before the database, and each 10 MB
    upload costs CI ~30 s per database (its SQL paths run in test_chunk_stability)."""
    return f"sqlite:///{tmp_path / 'rag.db'}"


@pytest.fixture
def stub_api(app_factory) -> Api:
    registry = EmbedderRegistry()
    registry.register(HashEmbedder())
    client, ctx = app_factory(registry=registry)
    return Api(client, new_key(ctx))


@pytest.mark.parametrize("fmt", FORMATS)
def test_ten_megabyte_text_like_upload_is_indexed_synchronously(stub_api, fmt):
    # 10000-character chunks: a tenth of the rows the default would write, to keep the
    # test's SQL and vector writes short; parsing sees the whole 10 MB either way.
    index_id = stub_api.create_index(f"big-{fmt}", chunk_max_characters=10000)["id"]
    filename, data = make_document(fmt, 10.0)
    assert len(data) >= 10_000_000
    r = stub_api.upload(index_id, filename, data)
    assert r.status_code == 201, r.text[:500]
    body = r.json()
    assert body["status"] == "ready" and body["chunk_count"] > 500
    chunks = stub_api.get(f"/v1/indexes/{index_id}/documents/{body['id']}/versions/1").json()["chunks"]
    assert len(chunks) == body["chunk_count"] and all(len(c["text"]) <= 10000 for c in chunks)
    if fmt != "json":  # every other generated format has headings (CSV: its header row)
        assert sum(c["section"] is not None for c in chunks) > len(chunks) * 0.8


def test_html_page_with_one_ten_megabyte_paragraph_is_not_empty(stub_api):
    """libxml2 drops a text node over 10 MB unless huge_tree is on: this page used to be `empty_document`."""
    index_id = stub_api.create_index("one-node", chunk_max_characters=10000)["id"]
    words = " ".join(f"word{i % 5000}" for i in range(1_200_000))
    page = f"<html><body><h1>One Long Page</h1><p>{words}</p></body></html>".encode()
    assert len(page) > 10_000_000 and page.count(b"\n") == 0
    r = stub_api.upload(index_id, "long.html", page)
    assert r.status_code == 201, r.text[:500]
    assert r.json()["chunk_count"] > 1000
    hits = stub_api.search("word4321", index_id, mode="lexical").json()["results"]
    assert hits and "word4321" in hits[0]["text"] and hits[0]["section"] == "One Long Page"


def test_a_fifty_megabyte_text_file_at_the_upload_limit_ingests_async_and_becomes_ready(stub_api):
    """Issue 11: a text file as large as the upload limit (RAG_MAX_UPLOAD_MB, 50 MB) goes in
    with ?async=true and is served whole: its last paragraph is searchable."""
    from tests.api.test_rag import wait_job

    index_id = stub_api.create_index("fifty", chunk_max_characters=20000)["id"]
    limit = 50 * 1024 * 1024
    _, data = make_document("txt", limit / 1_000_000)
    tail = b"\n\nThe final paragraph names the quokka of Rottnest Island.\n"
    data = data[: limit - len(tail)] + tail
    assert len(data) == limit
    r = stub_api.post(f"/v1/indexes/{index_id}/documents", params={"async": "true"},
                      files={"file": ("fifty.txt", data, "text/plain")}, data={"name": "fifty"})
    assert r.status_code == 202, r.text[:500]
    job = wait_job(stub_api, r.json()["id"], timeout=900)
    assert job["status"] == "succeeded", job
    doc = stub_api.get(f"/v1/indexes/{index_id}/documents/by-name/fifty").json()
    assert doc["current_version"] == 1 and doc["status"] == "ready", doc
    version = stub_api.get(f"/v1/indexes/{index_id}/documents/{doc['id']}/versions/1").json()
    assert version["chunk_count"] > 2000 and version["size_bytes"] == limit
    hits = stub_api.search("quokka Rottnest", index_id, mode="lexical").json()["results"]
    assert hits and "quokka" in hits[0]["text"]
    # one byte more is refused before anything is stored
    r = stub_api.post(f"/v1/indexes/{index_id}/documents", params={"async": "true"},
                      files={"file": ("over.txt", data + b"x", "text/plain")})
    assert r.status_code == 413 and r.json()["code"] == "payload_too_large", r.text[:300]
    assert "RAG_MAX_UPLOAD_MB" in r.json()["message"]
    assert [d["name"] for d in stub_api.get(f"/v1/indexes/{index_id}/documents").json()["items"]] == ["fifty"]
