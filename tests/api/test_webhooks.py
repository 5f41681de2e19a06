"""Signed lifecycle webhooks, delivered at least once, against a real HTTP receiver on
127.0.0.1 (pytest-httpserver), on SQLite and PostgreSQL. Every delivery is verified with
the `standardwebhooks` library, as a receiver would."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import update
from standardwebhooks.webhooks import Webhook as Verifier
from werkzeug import Response

from rag_service.models import WebhookDelivery, utcnow
from tests.conftest import Api, new_key

FAST_RETRIES = {"webhook_allow_private": True, "webhook_retry_schedule_s": "0.2,0.2,0.2"}


def wait_for(check, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Receiver:
    """The endpoint: answers with the next status of `statuses` (then 200), records every request."""

    def __init__(self, httpserver, path: str = "/hook", statuses: list[int] | None = None) -> None:
        self.path, self.statuses, self.requests = path, list(statuses or []), []
        self.lock = threading.Lock()
        self.url = httpserver.url_for(path)
        httpserver.expect_request(path, method="POST").respond_with_handler(self._handle)

    def _handle(self, request) -> Response:
        with self.lock:
            status = self.statuses.pop(0) if self.statuses else 200
            self.requests.append({"headers": dict(request.headers), "body": request.get_data(as_text=True),
                                  "status": status})
        return Response("ok" if status < 300 else "unavailable", status=status)

    def delivered(self) -> list[dict]:
        """Bodies of the requests answered 2xx, in arrival order."""
        with self.lock:
            return [json.loads(r["body"]) for r in self.requests if r["status"] < 300]


def make_hook(api: Api, receiver: Receiver, events=("*",), **fields) -> dict:
    r = api.post("/v1/webhooks", json={"url": receiver.url, "events": list(events), **fields})
    assert r.status_code == 201, r.text
    return r.json()


@pytest.fixture
def hooked(app_factory):
    client, ctx = app_factory(**FAST_RETRIES)
    return Api(client, new_key(ctx)), ctx


def test_an_upload_sends_a_signed_ready_event_that_standardwebhooks_verifies(hooked, httpserver):
    api, _ = hooked
    receiver = Receiver(httpserver)
    hook = make_hook(api, receiver, events=["document.version.ready"], description="search sync")
    assert hook["secret"].startswith("whsec_") and hook["enabled"] is True
    index = api.create_index("kb")
    doc = api.upload(index["id"], "herons.txt", b"Herons nest in colonies by the river.").json()
    wait_for(receiver.delivered, what="the ready event")
    request = receiver.requests[0]
    body = Verifier(hook["secret"]).verify(request["body"], request["headers"])
    assert body["type"] == "document.version.ready" and body["timestamp"].endswith("Z")
    assert body["data"] == {"index_id": index["id"], "document_id": doc["id"], "name": "herons.txt", "version": 1,
                            "content_hash": doc["content_hash"], "chunk_count": doc["chunk_count"],
                            "current_version": 1, "current": True}
    assert request["headers"]["Webhook-Id"].startswith("msg_")
    # A wrong secret does not verify: the signature is real.
    with pytest.raises(Exception):
        Verifier("whsec_" + "A" * 43 + "=").verify(request["body"], request["headers"])
    # The secret is shown once: never in a listing or a read.
    assert "secret" not in api.get(f"/v1/webhooks/{hook['id']}").json()
    listing = api.get("/v1/webhooks").json()
    assert listing["total"] == 1 and hook["secret"] not in json.dumps(listing)
    deliveries = api.get(f"/v1/webhooks/{hook['id']}/deliveries").json()["items"]
    assert [(d["status"], d["status_code"], d["attempts"]) for d in deliveries] == [("succeeded", 200, 1)]
    assert deliveries[0]["latency_ms"] is not None and deliveries[0]["next_retry_at"] is None


def test_a_failing_receiver_loses_nothing_and_every_retry_keeps_the_webhook_id(hooked, httpserver):
    api, _ = hooked
    receiver = Receiver(httpserver, statuses=[503, 503, 503])
    hook = make_hook(api, receiver, events=["document.version.ready"])
    index = api.create_index("kb")
    api.upload(index["id"], "a.txt", b"Alpha text about kingfishers.")
    wait_for(receiver.delivered, what="a delivery after the 503s")
    assert [r["status"] for r in receiver.requests] == [503, 503, 503, 200]
    assert len({r["headers"]["Webhook-Id"] for r in receiver.requests}) == 1
    for r in receiver.requests:  # each attempt is signed afresh, and verifies
        Verifier(hook["secret"]).verify(r["body"], r["headers"])
    delivery = api.get(f"/v1/webhooks/{hook['id']}/deliveries").json()["items"][0]
    assert delivery["status"] == "succeeded" and delivery["attempts"] == 4
    assert [h["status_code"] for h in delivery["history"]] == [503, 503, 503, 200]
    assert api.get(f"/v1/webhooks/{hook['id']}").json()["enabled"] is True


def test_redelivery_and_the_test_event_keep_the_contract(hooked, httpserver):
    api, _ = hooked
    receiver = Receiver(httpserver)
    hook = make_hook(api, receiver, events=["document.deleted"])
    r = api.post(f"/v1/webhooks/{hook['id']}/test")
    assert r.status_code == 202 and r.json()["event_type"] == "webhook.test"
    wait_for(receiver.delivered, what="the test event")
    assert receiver.delivered()[0]["type"] == "webhook.test"  # sent whatever the subscription
    first = receiver.requests[0]["headers"]["Webhook-Id"]
    again = api.post(f"/v1/webhooks/{hook['id']}/deliveries/{r.json()['id']}/redeliver")
    assert again.status_code == 202 and again.json()["redelivery_of"] == r.json()["id"]
    wait_for(lambda: len(receiver.delivered()) == 2, what="the redelivery")
    assert receiver.requests[1]["headers"]["Webhook-Id"] == first  # receivers deduplicate on it
    assert api.get(f"/v1/webhooks/{hook['id']}/deliveries").json()["total"] == 2


def test_rotating_the_secret_signs_with_both_during_the_grace_period(hooked, httpserver):
    api, _ = hooked
    receiver = Receiver(httpserver)
    hook = make_hook(api, receiver, events=["webhook.test"])
    rotated = api.post(f"/v1/webhooks/{hook['id']}/rotate-secret").json()
    assert rotated["secret"] != hook["secret"] and rotated["secret"].startswith("whsec_")
    api.post(f"/v1/webhooks/{hook['id']}/test")
    wait_for(receiver.delivered, what="the test event")
    request = receiver.requests[0]
    for secret in (hook["secret"], rotated["secret"]):  # a receiver holding either verifies
        Verifier(secret).verify(request["body"], request["headers"])
    own = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODk="
    assert api.post(f"/v1/webhooks/{hook['id']}/rotate-secret", json={"secret": own}).json()["secret"] == own
    bad = api.post(f"/v1/webhooks/{hook['id']}/rotate-secret", json={"secret": "hunter2"})
    assert bad.status_code == 422 and bad.json()["field"] == "secret"


def test_rapid_versions_of_one_document_arrive_in_version_order(hooked, httpserver):
    api, _ = hooked
    receiver = Receiver(httpserver, statuses=[503])  # the first one waits: the rest must queue behind it
    make_hook(api, receiver, events=["document.version.ready"])
    index = api.create_index("kb")
    for n in range(1, 6):  # async: up to four ingest jobs run at once and may finish in any order
        r = api.post(f"/v1/indexes/{index['id']}/documents?async=true", data={"name": "log.txt"},
                     files={"file": ("log.txt", f"Entry {n}: " .encode() + b"the heron count rose. " * n)})
        assert r.status_code == 202, r.text
    for n in range(1, 4):  # sync uploads of another document, one right after the other
        api.upload(index["id"], "notes.txt", f"Note revision {n} about egrets.".encode())
    wait_for(lambda: len(receiver.delivered()) == 8, what="eight ready events")
    by_doc: dict[str, list[int]] = {}
    for body in receiver.delivered():
        by_doc.setdefault(body["data"]["name"], []).append(body["data"]["version"])
    assert by_doc == {"log.txt": [1, 2, 3, 4, 5], "notes.txt": [1, 2, 3]}


def test_an_endpoint_is_disabled_after_its_last_retry_and_the_disable_is_audited(hooked, httpserver):
    api, ctx = hooked
    receiver = Receiver(httpserver, statuses=[500] * 4)  # the first attempt and all three retries
    hook = make_hook(api, receiver)
    api.post(f"/v1/webhooks/{hook['id']}/test")
    state = wait_for(lambda: (h := api.get(f"/v1/webhooks/{hook['id']}").json())["enabled"] is False and h,
                     what="the endpoint to be disabled")
    assert "failed 4 times" in state["disabled_reason"] and state["disabled_at"]
    assert len(receiver.requests) == 4
    delivery = api.get(f"/v1/webhooks/{hook['id']}/deliveries").json()["items"][0]
    assert delivery["status"] == "failed" and delivery["attempts"] == 4 and delivery["error"] == "HTTP 500"
    audit = api.get("/v1/audit-log", params={"action": "webhook.disabled"}).json()
    assert [e["target_id"] for e in audit["items"] if e["action"] == "webhook.disabled"] == [hook["id"]]
    # Disabled: new events owe it nothing, and a test is refused until it is enabled again.
    index = api.create_index("kb")
    api.upload(index["id"], "a.txt", b"Text while the endpoint is disabled.")
    time.sleep(0.5)
    assert len(receiver.requests) == 4
    assert api.post(f"/v1/webhooks/{hook['id']}/test").status_code == 422
    enabled = api.patch(f"/v1/webhooks/{hook['id']}", json={"enabled": True, "events": ["webhook.test"]}).json()
    assert enabled["enabled"] is True and enabled["disabled_reason"] is None and enabled["events"] == ["webhook.test"]
    bad = api.patch(f"/v1/webhooks/{hook['id']}", json={"url": "ftp://example.com/x"})
    assert bad.status_code == 422 and bad.json()["field"] == "url"  # a change is checked like a new webhook

    api.post(f"/v1/webhooks/{hook['id']}/test")
    wait_for(receiver.delivered, what="a delivery once enabled again")


def test_a_delivery_whose_deliverer_died_mid_attempt_is_sent_again(hooked, httpserver):
    api, ctx = hooked
    ctx.deliverer.stop()  # nothing sends while the "dead" delivery is set up
    receiver = Receiver(httpserver)
    hook = make_hook(api, receiver, events=["webhook.test"])
    delivery = api.post(f"/v1/webhooks/{hook['id']}/test").json()
    with ctx.db.session() as s:  # what a process killed during its attempt leaves behind
        s.exec(update(WebhookDelivery).where(WebhookDelivery.id == delivery["id"]).values(
            status="delivering", lease_owner="dead-host:1:abc", lease_expires_at=utcnow() - timedelta(seconds=1)))
        s.commit()
    from rag_service.services.delivery import Deliverer

    ctx.deliverer = Deliverer(ctx)
    ctx.deliverer.start()
    wait_for(receiver.delivered, what="the delivery after its lease expired")
    assert receiver.requests[0]["headers"]["Webhook-Id"] == delivery["event_id"]


def test_project_b_sees_none_of_project_as_events_or_webhooks(hooked, httpserver):
    api_a, ctx = hooked
    api_b = Api(api_a.client, new_key(ctx, "project-b"))
    receiver_a, receiver_b = Receiver(httpserver, "/a"), Receiver(httpserver, "/b")
    hook_a, hook_b = make_hook(api_a, receiver_a), make_hook(api_b, receiver_b)
    index = api_a.create_index("kb")
    doc = api_a.upload(index["id"], "secret-plan.txt", b"Project A's plan about ospreys.").json()
    api_a.delete(f"/v1/documents/{doc['id']}")
    wait_for(lambda: len(receiver_a.delivered()) == 2, what="A's two events")
    api_b.post(f"/v1/webhooks/{hook_b['id']}/test")
    wait_for(receiver_b.delivered, what="B's own test event")
    assert [b["type"] for b in receiver_b.delivered()] == ["webhook.test"]
    stream_b = api_b.get("/v1/events", params={"timeout_s": 0.5}, headers={"Last-Event-ID": "0"})
    assert "secret-plan" not in stream_b.text and index["id"] not in stream_b.text
    assert [line for line in stream_b.text.splitlines() if line.startswith("event:")] == ["event: webhook.test"]
    # A's webhook is not B's to read, change, test, redeliver or delete: 404, as if it did not exist.
    delivery_a = api_a.get(f"/v1/webhooks/{hook_a['id']}/deliveries").json()["items"][0]
    for method, path in (("get", ""), ("patch", ""), ("delete", ""), ("post", "/test"), ("post", "/rotate-secret"),
                         ("get", "/deliveries"), ("post", f"/deliveries/{delivery_a['id']}/redeliver")):
        kwargs = {"json": {"description": "x"}} if method == "patch" else {}
        r = getattr(api_b, method)(f"/v1/webhooks/{hook_a['id']}{path}", **kwargs)
        assert r.status_code == 404 and r.json()["code"] == "not_found", (method, path, r.text)
    assert api_b.get("/v1/webhooks").json()["total"] == 1
    # B cannot redeliver A's delivery through its own endpoint either.
    r = api_b.post(f"/v1/webhooks/{hook_b['id']}/deliveries/{delivery_a['id']}/redeliver")
    assert r.status_code == 404


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/hook", "http://localhost/hook", "http://10.1.2.3/hook",
                                 "http://169.254.169.254/latest/meta-data/", "http://[::1]:8080/",
                                 "http://192.168.0.10/", "http://[::ffff:127.0.0.1]/"])
def test_private_addresses_are_refused_unless_allowed(app_factory, url):
    client, ctx = app_factory()  # RAG_WEBHOOK_ALLOW_PRIVATE not set
    api = Api(client, new_key(ctx))
    r = api.post("/v1/webhooks", json={"url": url, "events": ["*"]})
    assert r.status_code == 422 and r.json()["code"] == "validation_error", r.text
    assert r.json()["field"] == "url" and r.json()["reason"] == "private_address"
    assert api.get("/v1/webhooks").json()["total"] == 0


def test_webhook_input_is_checked(hooked):
    api, _ = hooked
    for body, field in (({"url": "ftp://example.com/x", "events": ["*"]}, "url"),
                        ({"url": "http://user:pw@127.0.0.1/x", "events": ["*"]}, "url"),
                        ({"url": "http://127.0.0.1/x", "events": ["document.exploded"]}, "events"),
                        ({"url": "http://127.0.0.1/x", "events": ["*"], "secret": "whsec_c2hvcnQ="}, "secret")):
        r = api.post("/v1/webhooks", json=body)
        assert r.status_code == 422 and r.json()["field"] == field, r.text
    assert api.post("/v1/webhooks", json={"url": "http://127.0.0.1/x", "events": []}).status_code == 422
    editor = Api(api.client, new_key(hooked[1], "acme", "editor"))
    assert editor.get("/v1/webhooks").status_code == 403


def test_the_event_stream_resumes_from_last_event_id_without_losing_any(hooked):
    api, _ = hooked
    index = api.create_index("kb")
    for n in range(3):
        api.upload(index["id"], f"doc{n}.txt", f"Document {n} about cormorants.".encode())

    def read(after: str | None, **params) -> list[tuple[int, str, dict]]:
        headers = {"Last-Event-ID": after} if after is not None else {}
        r = api.get("/v1/events", params={"timeout_s": 0.5, **params}, headers=headers)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events, current = [], {}
        for line in r.text.splitlines():
            if line.startswith(("id:", "event:", "data:")):
                key, _, value = line.partition(":")
                current[key] = value.strip()
            elif not line and "data" in current:
                events.append((int(current["id"]), current["event"], json.loads(current["data"])))
                current = {}
        return events

    everything = read("0")
    assert [e[1] for e in everything] == ["document.version.ready"] * 3
    assert [e[2]["data"]["name"] for e in everything] == ["doc0.txt", "doc1.txt", "doc2.txt"]
    resumed = read(str(everything[0][0]))
    assert resumed == everything[1:]
    by_query = api.get("/v1/events", params={"timeout_s": 0.5, "last_event_id": everything[1][0]})
    assert by_query.text.count("event: document.version.ready") == 1 and "doc2.txt" in by_query.text
    assert read(str(everything[-1][0])) == []
    # Without Last-Event-ID the stream starts at now; the position it starts from is in a header.
    now = api.get("/v1/events", params={"timeout_s": 0.1})
    assert int(now.headers["x-event-position"]) >= everything[-1][0] and "event:" not in now.text
    doc = api.get("/v1/documents").json()["items"][0]
    api.delete(f"/v1/documents/{doc['id']}")
    api.post(f"/v1/documents/{doc['id']}/restore")
    later = read(str(everything[-1][0]))
    assert [e[1] for e in later] == ["document.deleted", "document.restored"]
    assert read(str(everything[-1][0]), types="document.restored")[0][1] == "document.restored"
    assert api.get("/v1/events", headers={"Last-Event-ID": "abc"}).status_code == 422
    assert api.get("/v1/events", params={"types": "nope"}).status_code == 422


def test_the_stream_leaves_out_indexes_the_boundary_may_not_read(hooked):
    api, _ = hooked
    private = api.create_index("private-kb", privacy_tier="private")
    public = api.create_index("public-kb", privacy_tier="public")
    api.upload(private["id"], "inside.txt", b"Private notes about bitterns.")
    api.upload(public["id"], "outside.txt", b"Public notes about bitterns.")
    r = api.get("/v1/events", params={"timeout_s": 0.5, "data_boundary": "global_public_only"},
                headers={"Last-Event-ID": "0"})
    assert "outside.txt" in r.text and "inside.txt" not in r.text


def test_lifecycle_events_cover_delete_restore_purge_and_jobs(hooked, httpserver):
    api, _ = hooked
    receiver = Receiver(httpserver)
    make_hook(api, receiver, events=["document.deleted", "document.restored", "document.purged", "job.succeeded",
                                     "job.failed", "document.version.failed"])
    index = api.create_index("kb")
    doc = api.upload(index["id"], "a.txt", b"Alpha text about terns.").json()
    api.delete(f"/v1/documents/{doc['id']}")
    api.post(f"/v1/documents/{doc['id']}/restore")
    api.delete(f"/v1/documents/{doc['id']}", params={"hard": "true"})
    job = api.post("/v1/rag/jobs", json={"job_class": "reconcile", "index_id": index["id"]}).json()
    failing = api.post(f"/v1/indexes/{index['id']}/documents?async=true",
                       files={"file": ("broken.docx", b"PK\x03\x04 not really a docx")})
    assert failing.status_code == 202, failing.text
    wait_for(lambda: len(receiver.delivered()) == 6, what="six events")
    got = receiver.delivered()
    of_doc = [b for b in got if b["data"].get("document_id") == doc["id"]]  # one document's: in order
    assert [b["type"] for b in of_doc] == ["document.deleted", "document.restored", "document.purged"]
    assert (of_doc[2]["data"]["name"], of_doc[2]["data"]["version"]) == ("a.txt", 1)
    others = {b["type"]: b["data"] for b in got if b not in of_doc}
    assert sorted(others) == ["document.version.failed", "job.failed", "job.succeeded"]
    assert others["job.succeeded"]["job_id"] == job["id"] and others["job.succeeded"]["job_class"] == "reconcile"
    assert others["job.succeeded"]["status"] == "succeeded" and "found_count" in others["job.succeeded"]["result"]
    assert others["job.failed"]["job_class"] == "ingest" and others["job.failed"]["status"] == "failed"
    assert others["document.version.failed"]["name"] == "broken.docx"
    assert others["document.version.failed"]["error"].startswith("corrupt_document")


def test_delivery_metrics_are_exported(hooked, httpserver):
    api, _ = hooked
    receiver = Receiver(httpserver, statuses=[503])
    hook = make_hook(api, receiver)
    api.post(f"/v1/webhooks/{hook['id']}/test")
    wait_for(receiver.delivered, what="the test event")
    text = api.get("/metrics").text
    assert 'rag_webhook_delivery_attempts_total{outcome="failure"} 1.0' in text
    assert 'rag_webhook_delivery_attempts_total{outcome="success"} 1.0' in text
    assert "rag_webhook_delivery_lag_seconds_count 1.0" in text
    assert "rag_webhook_deliveries_pending 0.0" in text and "rag_webhook_oldest_pending_seconds" in text


def test_status_tells_whether_webhooks_are_delivered_here(app_factory):
    client, _ = app_factory()
    status = client.get("/v1/rag/status").json()
    assert status["components"]["webhook_deliverer"]["reachable"] is True
    assert status["events"]["webhooks"] == "live" and status["events"]["event_stream"] == "live"
    assert "document.version.ready" in status["events"]["event_types"]
    client, _ = app_factory(webhook_delivery="off")
    status = client.get("/v1/rag/status").json()
    assert status["components"]["webhook_deliverer"] == {"configured": False, "reachable": False}
    assert status["events"]["webhooks"] == "available_when_configured" and status["status"] == "ok"


def test_deleting_an_index_reports_each_of_its_documents_purged(hooked):
    api, _ = hooked
    index = api.create_index("kb")
    docs = [api.upload(index["id"], f"n{n}.txt", f"Note {n} about grebes.".encode()).json() for n in range(2)]
    assert api.delete(f"/v1/indexes/{index['id']}").status_code == 204
    r = api.get("/v1/events", params={"timeout_s": 0.3, "types": "document.purged"}, headers={"Last-Event-ID": "0"})
    purged = [json.loads(line[5:])["data"] for line in r.text.splitlines() if line.startswith("data:")]
    assert sorted(p["document_id"] for p in purged) == sorted(d["id"] for d in docs)
    assert {p["reason"] for p in purged} == {"index_deleted"}


def test_a_reader_following_the_stream_during_concurrent_writes_misses_nothing(hooked):
    api, _ = hooked
    index = api.create_index("kb")
    writing = threading.Event()
    writing.set()
    followed: list[int] = []

    def ids_after(after: int) -> list[int]:
        r = api.get("/v1/events", params={"timeout_s": 0.2}, headers={"Last-Event-ID": str(after)})
        return [int(line[3:]) for line in r.text.splitlines() if line.startswith("id:")]

    def follow():
        while writing.is_set():
            followed.extend(ids_after(followed[-1] if followed else 0))
        followed.extend(ids_after(followed[-1] if followed else 0))

    def write(worker: int):
        for n in range(4):
            doc = api.upload(index["id"], f"w{worker}-{n}.txt", f"Writer {worker} note {n} on shags.".encode()).json()
            if n % 2:
                api.delete(f"/v1/documents/{doc['id']}")

    reader = threading.Thread(target=follow)
    reader.start()
    writers = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for t in writers:
        t.start()
    for t in writers:
        t.join(120)
    writing.clear()
    reader.join(60)
    everything = ids_after(0)
    assert len(everything) == 16 + 8  # 16 versions ready, 8 deletes
    assert followed == everything  # in order, none skipped, none twice


def test_event_writers_take_their_sequence_numbers_in_commit_order(app_factory):
    """The mechanism behind "a reader that saw id N never sees a smaller one appear": a second
    writer cannot take a seq while a first one's transaction is still open."""
    from rag_service.services.events import emit

    _, ctx = app_factory(webhook_delivery="off")
    second: dict[str, int] = {}
    done = threading.Event()

    def other_writer():
        with ctx.db.session() as s2:
            second["seq"] = emit(s2, "p", "webhook.test", {"n": 2}).seq
            s2.commit()
        done.set()

    with ctx.db.session() as s1:
        first = emit(s1, "p", "webhook.test", {"n": 1}).seq
        writer = threading.Thread(target=other_writer)
        writer.start()
        assert not done.wait(0.5)  # it waits for this transaction
        s1.commit()
    writer.join(30)
    assert done.is_set() and second["seq"] > first


def test_retention_drops_old_events_but_keeps_what_is_still_owed(hooked, httpserver):
    from rag_service.models import Event
    from rag_service.services.events import prune

    api, ctx = hooked
    ctx.deliverer.stop()  # the owed delivery below stays owed
    index = api.create_index("kb")
    for n in range(3):
        api.upload(index["id"], f"old{n}.txt", f"Old note {n} about rails.".encode())
    receiver = Receiver(httpserver)
    hook = make_hook(api, receiver, events=["webhook.test"])
    owed = api.post(f"/v1/webhooks/{hook['id']}/test").json()
    with ctx.db.session() as s:  # everything so far is four days old
        s.exec(update(Event).values(created_at=utcnow() - timedelta(days=4)))
        s.commit()
        assert prune(s, retention_hours=72) == 3
    api.upload(index["id"], "new.txt", b"A new note about crakes.")
    r = api.get("/v1/events", params={"timeout_s": 0.3}, headers={"Last-Event-ID": "0"})
    kinds = [line[7:] for line in r.text.splitlines() if line.startswith("event: ")]
    assert kinds == ["stream.truncated", "webhook.test", "document.version.ready"]
    assert "old0.txt" not in r.text and "new.txt" in r.text
    # The delivery still owed kept its event: it can still be sent.
    from rag_service.services.delivery import Deliverer

    ctx.deliverer = Deliverer(ctx)
    ctx.deliverer.start()
    wait_for(receiver.delivered, what="the owed delivery")
    assert receiver.requests[0]["headers"]["Webhook-Id"] == owed["event_id"]


def test_an_attempt_times_out_and_a_redirect_is_not_followed(app_factory, httpserver):
    client, ctx = app_factory(webhook_allow_private=True, webhook_retry_schedule_s="0.1", webhook_timeout_s=0.5)
    api = Api(client, new_key(ctx))
    release = threading.Event()  # the slow answer waits for this (the receiver serves one request at a time)
    httpserver.expect_request("/slow", method="POST").respond_with_handler(
        lambda request: (release.wait(10), Response("late", status=200))[1])
    httpserver.expect_request("/moved", method="POST").respond_with_data(
        "", status=302, headers={"Location": httpserver.url_for("/elsewhere")})
    httpserver.expect_request("/elsewhere").respond_with_data("followed")
    errors = {}
    for path in ("/moved", "/slow"):
        hook = api.post("/v1/webhooks", json={"url": httpserver.url_for(path), "events": ["webhook.test"]}).json()
        api.post(f"/v1/webhooks/{hook['id']}/test")
        state = wait_for(lambda: (d := api.get(f"/v1/webhooks/{hook['id']}/deliveries").json()["items"][0])["status"]
                         == "failed" and d, what=f"{path} to fail its two attempts")
        errors[path] = [h["error"] for h in state["history"]]
        release.set()  # let the receiver finish the timed-out request, then serve the next
        time.sleep(0.1)
        release.clear()
    assert errors["/slow"] == ["timed out after 0.5 s"] * 2
    assert errors["/moved"] == ["HTTP 302"] * 2
    assert not [r for r, _ in httpserver.log if r.path == "/elsewhere"]
