"""Authentication and the route's role are checked before the body is read
(rag_service/api/middleware.py AuthBeforeBody).

FastAPI parses a route's body (a whole multipart upload) before it resolves the route's
dependencies, so a request with no key or a reader's key used to be refused only after its
body had arrived (a 1.5 MB chunked upload: 401 after 6.9 s). These tests count the body bytes
the app pulls, and hold a real uvicorn connection half-sent.
"""

from __future__ import annotations

import json
import socket

import anyio
import httpx
import pytest

from rag_service.app import create_app
from rag_service.context import build_context
from tests.conftest import new_key
from tests.integration.test_stress import live_server  # noqa: F401  (a uvicorn server on loopback)

MULTIPART = "gate-boundary"
BIG = 1_500_000


@pytest.fixture
def database_url(tmp_path) -> str:
    """SQLite only: the check runs above the database (it is one key lookup)."""
    return f"sqlite:///{tmp_path / 'rag.db'}"


def multipart(size: int, filename: str = "big.txt") -> bytes:
    head = (f"--{MULTIPART}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n"
            "Content-Type: text/plain\r\n\r\n").encode()
    line = b"Tide tables for the northern harbour, spring and neap, by the hour.\n"
    return head + (line * (size // len(line) + 1))[:size] + f"\r\n--{MULTIPART}--\r\n".encode()


async def asgi_call(app, method: str, path: str, key: str | None, body: bytes, content_type: str):
    """One request straight into the ASGI app, the body in 64 KiB messages; returns
    (status, response body, body bytes the app pulled)."""
    headers = [(b"host", b"testserver"), (b"content-type", content_type.encode()), (b"transfer-encoding", b"chunked")]
    if key:
        headers.append((b"x-api-key", key.encode()))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": headers,
             "client": ("127.0.0.1", 50000), "server": ("testserver", 80), "state": {}}
    pieces = [body[i:i + 65536] for i in range(0, len(body), 65536)] or [b""]
    pulled = 0
    sent: list[dict] = []
    finished = anyio.Event()

    async def receive():
        nonlocal pulled
        if pieces:
            piece = pieces.pop(0)
            pulled += len(piece)
            return {"type": "http.request", "body": piece, "more_body": bool(pieces)}
        await finished.wait()  # the client stays connected until the answer is complete
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            finished.set()

    with anyio.fail_after(120):
        await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    payload = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(payload), pulled


def test_refusals_arrive_before_any_of_the_body_is_read(settings_factory, embedders):
    ctx = build_context(settings_factory(), embedders=embedders)
    admin, reader, editor = (new_key(ctx, role=r) for r in ("admin", "reader", "editor"))

    async def scenario():
        app = create_app(ctx.settings, ctx=ctx)
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver",
                                         headers={"X-API-Key": admin}) as http:
                index = (await http.post("/v1/indexes", json={"name": "tides"})).json()["id"]
            form = f"multipart/form-data; boundary={MULTIPART}"
            upload = f"/v1/indexes/{index}/documents"
            big_json = json.dumps({"name": "x" * BIG}).encode()
            cases = [
                (None, "POST", upload, multipart(BIG), form, 401, "unauthorized"),
                ("rag_not_a_key", "POST", upload, multipart(BIG), form, 401, "unauthorized"),
                (reader, "POST", upload, multipart(BIG), form, 403, "forbidden"),
                (reader, "POST", "/v1/indexes", big_json, "application/json", 403, "forbidden"),
                (reader, "PATCH", f"/v1/indexes/{index}", big_json, "application/json", 403, "forbidden"),
                (reader, "POST", "/v1/rag/jobs", big_json, "application/json", 403, "forbidden"),
                (None, "POST", "/v1/search", big_json, "application/json", 401, "unauthorized"),
                (None, "POST", "/v1/tools/call", big_json, "application/json", 401, "unauthorized"),
            ]
            for key, method, path, body, content_type, status, code in cases:
                got, answer, pulled = await asgi_call(app, method, path, key, body, content_type)
                label = f"{method} {path} key={key and key[:8]}"
                assert (got, answer["code"]) == (status, code), label
                assert pulled == 0, f"{label}: the app read {pulled} body bytes before refusing"
            # The same route with a key that may write reads the body and stores the file.
            small = multipart(3000, "tides.txt")
            got, answer, pulled = await asgi_call(app, "POST", upload, editor, small, form)
            assert got == 201 and answer["name"] == "tides.txt" and pulled == len(small), answer

    try:
        anyio.run(scenario)
    finally:
        ctx.vectors.close()
        ctx.db.dispose()


def half_sent_upload(port: int, path: str, key: str | None) -> tuple[int, dict]:
    """Send the head and the first 64 KiB chunk of a 1.5 MB chunked upload, then wait for an
    answer without sending the rest: a server that waits for the body never answers (the
    socket timeout then fails the test)."""
    body = multipart(BIG)
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
                f"Content-Type: multipart/form-data; boundary={MULTIPART}\r\n"
                + (f"X-API-Key: {key}\r\n" if key else "") + "\r\n")
        first = body[:65536]
        sock.sendall(head.encode() + f"{len(first):x}\r\n".encode() + first + b"\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            block = sock.recv(65536)
            assert block, "the server closed the connection without answering"
            data += block
        headers, rest = data.split(b"\r\n\r\n", 1)
        length = int(next(line.split(b":", 1)[1] for line in headers.split(b"\r\n")
                          if line.lower().startswith(b"content-length:")))
        while len(rest) < length:
            rest += sock.recv(65536)
    return int(headers.split(b" ", 2)[1]), json.loads(rest[:length])


def test_uvicorn_answers_a_refused_upload_while_the_client_is_still_sending(live_server):
    url, admin = live_server
    port = int(url.rsplit(":", 1)[1])
    reader = httpx.post(f"{url}/v1/keys", json={"role": "reader"}, headers={"X-API-Key": admin}).json()["key"]
    r = httpx.post(f"{url}/v1/indexes", json={"name": "tides"}, headers={"X-API-Key": admin})
    path = f"/v1/indexes/{r.json()['id']}/documents"
    status, body = half_sent_upload(port, path, None)
    assert status == 401 and body["code"] == "unauthorized"
    status, body = half_sent_upload(port, path, reader)
    assert status == 403 and body["code"] == "forbidden" and body["required_role"] == "editor"
    # Nothing was stored, and the server still serves.
    listing = httpx.get(f"http://127.0.0.1:{port}/v1/documents", headers={"X-API-Key": admin})
    assert listing.status_code == 200 and listing.json()["total"] == 0


def test_the_role_table_is_built_at_startup_not_by_the_first_request(app_factory, monkeypatch):
    """Walking every route's dependencies took tens of milliseconds, paid by the first search
    after /v1/ready (issue 11: the first search after ready is as fast as later ones)."""
    from rag_service.api import middleware
    from tests.conftest import Api

    client, ctx = app_factory()  # started: the lifespan has run
    api = Api(client, new_key(ctx))

    def not_now(app):
        raise AssertionError("role table built by a request")

    monkeypatch.setattr(middleware, "role_table", not_now)
    index_id = api.create_index()["id"]
    assert api.search("anything", index_id).status_code == 200
    reader = Api(client, new_key(ctx, role="reader"))
    assert reader.post("/v1/indexes", json={"name": "x"}).status_code == 403  # roles still enforced
