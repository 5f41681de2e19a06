"""A bounded stress run over loopback HTTP against a real uvicorn server.

For a fixed time, threads upload the same and different names (blind and
conditional), delete and restore, and search. Every request is stamped from one
counter when it is sent and when it is answered, so afterwards we can judge:
- version numbers are dense, 1..N, with N = the uploads acknowledged 201;
- every conditional upload won (201) or got 409, nothing else;
- every acknowledged version is readable with the bytes that were sent;
- no search returned a version older than one already acknowledged when the search
  was sent, nor a document whose delete was acknowledged before the search was sent
  (unless an upload or restore of it could have landed in between);
- no request got a 5xx.

It runs on SQLite and PostgreSQL. The embedded vector store is one process, so
this is one server process with many concurrent requests; SQL concurrency across
processes is covered by tests/api/test_concurrency.py (4 processes racing the CAS).
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from dataclasses import dataclass, field

import httpx
import pytest
import uvicorn

from rag_service.app import create_app
from rag_service.context import build_context
from tests.conftest import new_key

DURATION_S = 12.0
# On a loaded CI machine 12 s can hold only a handful of searches; the race runs on
# (up to HARD_STOP_S) until this many searches have overlapped the writers.
MIN_SEARCHES = 20
HARD_STOP_S = 90.0
SHARED = ("shared-0.txt", "shared-1.txt")


@dataclass
class Event:
    kind: str  # upload | cond_upload | delete | restore | search
    name: str
    sent: int
    acked: int
    status: int
    version: int | None = None
    token: str | None = None
    hits: list[tuple[str, int]] = field(default_factory=list)


class Ledger:
    def __init__(self) -> None:
        self._clock = itertools.count()
        self._lock = threading.Lock()
        self.events: list[Event] = []

    def tick(self) -> int:
        with self._lock:
            return next(self._clock)

    def add(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)


@pytest.fixture
def live_server(settings_factory, embedders):
    settings = settings_factory(rate_limit_per_minute=0)
    ctx = build_context(settings, embedders=embedders)
    app = create_app(settings, ctx=ctx)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0,
                                           log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    # As a client would: start only once the warm-up (encoder, parser pool) is done.
    app.state.readiness.wait(120)
    yield url, new_key(ctx)
    server.should_exit = True
    thread.join(30)
    ctx.vectors.close()
    ctx.db.dispose()


def test_concurrent_writes_deletes_and_searches_keep_every_rule(live_server):
    url, key = live_server
    headers = {"X-API-Key": key}
    ledger = Ledger()
    tokens = itertools.count()
    with httpx.Client(base_url=url, headers=headers, timeout=60) as setup:
        index_id = setup.post("/v1/indexes", json={"name": "stress"}).json()["id"]
        for name in SHARED:
            assert setup.post(f"/v1/indexes/{index_id}/documents", data={"name": name},
                              files={"file": (name, b"seed text for the stress run")}).status_code == 201
    ledger.add(Event("upload", SHARED[0], -2, -1, 201, version=1))
    ledger.add(Event("upload", SHARED[1], -2, -1, 201, version=1))

    def upload(client, name, kind, if_version=None):
        token = f"tok{next(tokens):05d}x"
        data = {"name": name} | ({"if_version": str(if_version)} if if_version is not None else {})
        sent = ledger.tick()
        r = client.post(f"/v1/indexes/{index_id}/documents", data=data,
                        files={"file": (name, f"Stress note {token} for {name}.".encode())})
        body = r.json()
        ledger.add(Event(kind, name, sent, ledger.tick(), r.status_code, version=body.get("version"), token=token))

    def blind_uploader(seed):
        rng = random.Random(seed)
        with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
            n = 0
            while running():
                name = rng.choice(SHARED) if rng.random() < 0.7 else f"own-{seed}-{n}.txt"
                upload(client, name, "upload")
                n += 1

    def conditional_uploader(seed):
        rng = random.Random(seed)
        with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
            while running():
                name = rng.choice(SHARED)
                r = client.get(f"/v1/indexes/{index_id}/documents/by-name/{name}")
                upload(client, name, "cond_upload", r.json()["latest_version"])

    def deleter(seed):
        rng = random.Random(seed)
        with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
            while running():
                name = rng.choice(SHARED)
                doc_id = client.get(f"/v1/indexes/{index_id}/documents/by-name/{name}").json()["id"]
                for kind, method, path in (("delete", "DELETE", f"/v1/documents/{doc_id}"),
                                           ("restore", "POST", f"/v1/documents/{doc_id}/restore")):
                    sent = ledger.tick()
                    r = client.request(method, path)
                    ledger.add(Event(kind, name, sent, ledger.tick(), r.status_code))
                    time.sleep(rng.uniform(0.05, 0.3))

    def searcher(seed):
        rng = random.Random(seed)
        with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
            while running():
                sent = ledger.tick()
                r = client.post(f"/v1/indexes/{index_id}/search",
                                json={"query": "stress note", "mode": rng.choice(["lexical", "hybrid", "dense"]),
                                      "top_k": 20, "filters": {"name": list(SHARED)}})
                hits = [(h["document_name"], h["version"]) for h in r.json().get("results", [])]
                ledger.add(Event("search", "", sent, ledger.tick(), r.status_code, hits=hits))
                searches_done.append(r.status_code)

    crashed: list[str] = []
    searches_done: list[int] = []
    started = time.monotonic()

    def running() -> bool:
        elapsed = time.monotonic() - started
        return elapsed < DURATION_S or (len(searches_done) < MIN_SEARCHES and elapsed < HARD_STOP_S)

    def guarded(role, seed):
        try:
            role(seed)
        except Exception as exc:  # a crashed thread would otherwise just go quiet
            crashed.append(f"{role.__name__}: {type(exc).__name__}: {exc}")

    workers = [threading.Thread(target=guarded, args=(f, i)) for i, f in
               enumerate([blind_uploader, blind_uploader, conditional_uploader, deleter, searcher, searcher])]
    for w in workers:
        w.start()
    for w in workers:
        w.join(HARD_STOP_S + 120)
    events = ledger.events
    assert crashed == []

    assert not [e for e in events if e.status >= 500], "a request failed with 5xx"
    conditional = [e for e in events if e.kind == "cond_upload"]
    assert conditional and all(e.status in (201, 409) for e in conditional), {e.status for e in conditional}
    assert {e.status for e in events if e.kind == "upload"} == {201}

    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        written = [e for e in events if e.kind in ("upload", "cond_upload") and e.status == 201]
        assert len(written) >= 10  # the run really raced writes
        for name in {e.name for e in written}:
            versions = client.get(f"/v1/indexes/{index_id}/documents/by-name/{name}/versions").json()["items"]
            acked = sorted(e.version for e in written if e.name == name)
            assert [v["version"] for v in versions] == list(range(1, len(versions) + 1)), name  # dense
            assert acked == list(range(1, len(acked) + 1)) and len(acked) == len(versions), name  # none lost
        doc_ids = {name: client.get(f"/v1/indexes/{index_id}/documents/by-name/{name}").json()["id"] for name in SHARED}
        for e in written:
            if e.token and e.name in SHARED:
                text = client.get(f"/v1/documents/{doc_ids[e.name]}/versions/{e.version}").json()["text"]
                assert e.token in text, (e.name, e.version)

    searches = [e for e in events if e.kind == "search" and e.status == 200]
    assert len(searches) > 10 and sum(len(s.hits) for s in searches) > 0
    stale = []
    for s in searches:
        for name, version in s.hits:
            newer = [e for e in written if e.name == name and e.version > version and e.acked < s.sent]
            deletes = [e for e in events if e.kind == "delete" and e.name == name and e.status == 200 and e.acked < s.sent]
            revived = lambda d: any(e.name == name and e.kind in ("upload", "cond_upload", "restore")  # noqa: E731
                                    and e.acked > d.sent and e.sent < s.acked for e in events)
            if newer or any(not revived(d) for d in deletes):
                stale.append((name, version, s.sent))
    assert stale == [], f"{len(stale)} stale hits, e.g. {stale[:5]}"
