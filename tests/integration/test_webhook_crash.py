"""The outbox survives a crash: a real `rag-service serve` is SIGKILLed after an upload
commits and before its webhook is delivered; the event goes out after the restart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import httpx
import psutil
import pytest
from standardwebhooks.webhooks import Webhook as Verifier

from tests.api.test_webhooks import Receiver, wait_for
from tests.processes import free_port, stop, wait_ready

KEY = "rag_webhook_crash"


def _start(tmp_path, database_url: str, port: int, delivery: str, log_name: str,
           command: str = "serve") -> subprocess.Popen:
    env = {**os.environ, "RAG_DATA_DIR": str(tmp_path / "data"), "RAG_PORT": str(port), "RAG_BOOTSTRAP_KEY": KEY,
           "RAG_DATABASE_URL": database_url, "RAG_WEBHOOK_ALLOW_PRIVATE": "true", "RAG_WEBHOOK_DELIVERY": delivery,
           "HF_HUB_OFFLINE": "1", "DO_NOT_TRACK": "1"}
    log = open(tmp_path / log_name, "wb")
    return subprocess.Popen([sys.executable, "-m", "rag_service.cli", command], env=env, stdout=log,
                            stderr=subprocess.STDOUT)


def _kill(server: subprocess.Popen) -> None:
    children = psutil.Process(server.pid).children(recursive=True)
    server.send_signal(signal.SIGKILL)
    server.wait(30)
    psutil.wait_procs(children, timeout=10)


@pytest.mark.parametrize("second_life", ["serve", "worker"])
def test_an_event_committed_before_a_sigkill_is_delivered_after_the_restart(tmp_path, database_url, httpserver,
                                                                          second_life):
    if second_life == "worker" and database_url.startswith("sqlite"):
        pytest.skip("workers beside the API are the scale-out mode: PostgreSQL (the serve case covers SQLite)")
    receiver = Receiver(httpserver)
    port = free_port()
    base, headers = f"http://127.0.0.1:{port}", {"X-API-Key": KEY}
    # First life: nothing is delivered (as if the process died right after the commit).
    server = _start(tmp_path, database_url, port, "off", "first.log")
    try:
        wait_ready(base, server)
        hook = httpx.post(f"{base}/v1/webhooks", headers=headers, timeout=30,
                          json={"url": receiver.url, "events": ["document.version.ready"]}).json()
        index = httpx.post(f"{base}/v1/indexes", json={"name": "kb"}, headers=headers, timeout=30).json()
        up = httpx.post(f"{base}/v1/indexes/{index['id']}/documents", headers=headers, timeout=120,
                        files={"file": ("wrens.txt", b"Wrens sing loudly for their size.")})
        assert up.status_code == 201, up.text
        owed = httpx.get(f"{base}/v1/webhooks/{hook['id']}/deliveries", headers=headers, timeout=30).json()
        assert [d["status"] for d in owed["items"]] == ["pending"]
        _kill(server)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
    assert receiver.requests == []
    # Second life (the API again, or a `rag-service worker`): its deliverer finds the owed
    # delivery in SQL and sends it.
    if second_life == "worker":
        worker = _start(tmp_path, database_url, port, "inprocess", "worker.log", command="worker")
        try:
            wait_for(receiver.delivered, timeout=120, what="the worker's delivery")
        finally:
            stop(worker, timeout_s=60)
        body = Verifier(hook["secret"]).verify(receiver.requests[0]["body"], receiver.requests[0]["headers"])
        assert (body["data"]["document_id"], len(receiver.requests)) == (up.json()["id"], 1)
        return
    server = _start(tmp_path, database_url, port, "inprocess", "second.log")
    try:
        wait_ready(base, server)
        wait_for(receiver.delivered, timeout=60, what="the delivery after the restart")
        request = receiver.requests[0]
        body = Verifier(hook["secret"]).verify(request["body"], request["headers"])
        assert body["type"] == "document.version.ready"
        assert (body["data"]["document_id"], body["data"]["version"]) == (up.json()["id"], 1)
        assert request["headers"]["Webhook-Id"] == owed["items"][0]["event_id"]
        done = httpx.get(f"{base}/v1/webhooks/{hook['id']}/deliveries", headers=headers, timeout=30).json()
        assert [(d["status"], d["attempts"]) for d in done["items"]] == [("succeeded", 1)]
        time.sleep(0.5)
        assert len(receiver.requests) == 1, json.dumps(receiver.requests)[:500]
    finally:
        stop(server)
