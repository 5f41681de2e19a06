"""Hostile requests get a 4xx with a stable code, and nothing is stored."""

import asyncio
import json

import pytest

from rag_service.api.errors import BodyTooLarge
from rag_service.api.limits import StreamingBodyLimit
from tests.conftest import Api, new_key


def _documents(api: Api, index_id: str) -> int:
    return api.get(f"/v1/indexes/{index_id}/documents").json()["total"]


def test_chunked_body_without_content_length_is_refused_while_streaming(app_factory):
    client, ctx = app_factory(max_upload_mb=1)
    api = Api(client, new_key(ctx))
    index_id = api.create_index()["id"]
    sent = []

    def body():
        # 4 MB in 64 KB pieces with no Content-Length (httpx sends it chunked).
        boundary = b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.txt\"\r\n\r\n"
        yield boundary
        for _ in range(64):
            sent.append(1)
            yield b"a" * 65536

    r = api.post(f"/v1/indexes/{index_id}/documents", content=body(),
                 headers={"Content-Type": "multipart/form-data; boundary=XyZ"})
    assert r.status_code == 413, r.text
    assert r.json()["code"] == "payload_too_large" and r.json()["request_id"] == r.headers["X-Request-ID"]
    assert r.json()["reason"] == "body_too_large"  # stopped by the stream counter, not after a full read
    assert _documents(api, index_id) == 0


def test_streaming_limit_stops_reading_at_the_limit():
    """The middleware pulls no more of the body than the limit plus one message."""
    pulled = []

    async def receive():
        pulled.append(1)
        return {"type": "http.request", "body": b"x" * 1000, "more_body": True}

    async def app(scope, receive, send):
        while True:
            await receive()

    sent = []

    async def send(message):
        sent.append(message)

    async def run():
        await StreamingBodyLimit(app, limit_bytes=10_000)({"type": "http", "headers": []}, receive, send)

    asyncio.run(run())
    assert len(pulled) == 11  # 11 KB read of an endless body, then refused
    assert sent[0]["status"] == 413 and b"payload_too_large" in sent[1]["body"]
    assert issubclass(BodyTooLarge, Exception)


def test_declared_oversized_body_is_refused_before_reading(app_factory):
    client, ctx = app_factory(max_upload_mb=1)
    api = Api(client, new_key(ctx))
    index_id = api.create_index()["id"]
    r = api.post(f"/v1/indexes/{index_id}/documents", content=b"x" * 10,
                 headers={"Content-Type": "multipart/form-data; boundary=XyZ", "Content-Length": str(50 * 1024 * 1024)})
    assert r.status_code == 413 and r.json()["code"] == "payload_too_large"


def test_too_many_multipart_parts(api):
    index_id = api.create_index()["id"]
    files = [("file", (f"f{i}.txt", b"some text here", "text/plain")) for i in range(3)]
    r = api.post(f"/v1/indexes/{index_id}/documents", files=files)
    assert r.status_code == 413 and r.json()["code"] == "payload_too_large"
    assert r.json()["reason"] == "too_many_files"
    fields = {f"extra{i}": "x" for i in range(20)}
    r = api.post(f"/v1/indexes/{index_id}/documents", files={"file": ("a.txt", b"some text here")}, data=fields)
    assert r.status_code == 413 and r.json()["reason"] == "too_many_fields"
    assert _documents(api, index_id) == 0


def test_huge_metadata(api):
    index_id = api.create_index()["id"]
    big = json.dumps({"k": "v" * (100 * 1024)})
    r = api.upload(index_id, "a.txt", b"some text here", metadata=big)
    assert r.status_code == 422 and r.json()["code"] == "validation_error" and r.json()["field"] == "metadata"
    bigger = json.dumps({"k": "v" * (2 * 1024 * 1024)})
    r = api.upload(index_id, "a.txt", b"some text here", metadata=bigger)
    assert r.status_code == 413 and r.json()["reason"] == "form_field_too_large"
    nested = "[" * 5000 + "]" * 5000
    r = api.upload(index_id, "a.txt", b"some text here", metadata=nested)
    assert r.status_code == 422 and r.json()["code"] == "validation_error"
    assert _documents(api, index_id) == 0


def test_deeply_nested_filters_and_json_bodies(api):
    index_id = api.create_index()["id"]
    assert api.upload(index_id, "a.txt", b"the nested filter document").status_code == 201
    nested: dict = {"gte": 1}
    for _ in range(30):
        nested = {"gte": nested}
    r = api.search("nested", index_id, filters={"year": nested})
    assert r.status_code == 422 and r.json()["code"] == "validation_error"
    # Past Python's recursion limit the JSON parser itself gives up: still a 422, never a 500.
    deep = '{"query": "x", "filters": {"a": ' + "[" * 100_000 + "]" * 100_000 + "}}"
    r = api.post(f"/v1/indexes/{index_id}/search", content=deep, headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["code"] == "validation_error"


@pytest.mark.parametrize("payload", [b'{"query": "\xff\xfe bad"}', b'{"query": "x"', b"\x00\x01"])
def test_invalid_json_and_utf8_in_search_bodies(api, payload):
    index_id = api.create_index()["id"]
    r = api.post(f"/v1/indexes/{index_id}/search", content=payload, headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["code"] == "validation_error"


def test_invalid_utf8_in_document_and_form_fields(api):
    index_id = api.create_index()["id"]
    r = api.upload(index_id, "bad.txt", b"valid start \xff\xfe\xfd then more words to index")
    assert r.status_code in (201, 415, 422)  # decoded with replacement, or refused: never a 500
    if r.status_code == 201:
        text = api.get(f"/v1/documents/{r.json()['id']}/versions/1").json()["text"]
        assert "valid start" in text
    body = (b"--XyZ\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n\xff\xfe.txt\r\n"
            b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"n.txt\"\r\n\r\nhello there words\r\n"
            b"--XyZ--\r\n")
    r = api.post(f"/v1/indexes/{index_id}/documents", content=body,
                 headers={"Content-Type": "multipart/form-data; boundary=XyZ"})
    assert r.status_code < 500, r.text


def test_hostile_names_are_cleaned(api):
    index_id = api.create_index()["id"]
    r = api.upload(index_id, "../../etc/passwd\x00.txt", b"path traversal attempt text", name="../../x\x07y.txt")
    assert r.status_code == 201, r.text
    name = r.json()["name"]
    assert "/" not in name and "\x07" not in name and ".." not in name.split(":")[0][:2]
