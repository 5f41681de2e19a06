"""GET /v1/events over a real uvicorn connection: events arrive while the client listens,
and a client that drops and reconnects with Last-Event-ID gets exactly what it missed."""

from __future__ import annotations

import threading
import time

import httpx

from rag_service.client import RagClient
from tests.integration.test_stress import live_server  # noqa: F401  (a uvicorn server on loopback)


def test_live_events_and_a_reconnect_lose_nothing(live_server):  # noqa: F811
    url, key = live_server
    rag = RagClient(url, key)
    index = rag.create_index("kb")
    start = rag.event_position()
    received: list = []
    listening = threading.Event()

    def listen(after, until_count):
        listening.set()
        for event in rag.stream_events(after, timeout_s=60):
            received.append(event)
            if len(received) >= until_count:
                return  # the client goes away mid-stream

    listener = threading.Thread(target=listen, args=(start, 2))
    listener.start()
    listening.wait(10)
    time.sleep(0.3)
    first_two = time.monotonic()
    for n in range(2):
        rag.upload(index["id"], f"Live note {n} about plovers.".encode(), filename=f"live{n}.txt")
    listener.join(60)
    assert not listener.is_alive() and len(received) == 2
    assert time.monotonic() - first_two < 60  # pushed while connected, not at the stream's end
    # Disconnected: two more changes happen.
    for n in range(2, 4):
        rag.upload(index["id"], f"Live note {n} about plovers.".encode(), filename=f"live{n}.txt")
    listen(received[-1].id, 4)
    names = [e.data["data"]["name"] for e in received]
    assert names == ["live0.txt", "live1.txt", "live2.txt", "live3.txt"]
    assert len({e.id for e in received}) == 4 and [e.id for e in received] == sorted(e.id for e in received)
    # The key is checked like on every route.
    r = httpx.get(f"{url}/v1/events", params={"timeout_s": 0.1}, headers={"X-API-Key": "rag_wrong"})
    assert r.status_code == 401
    rag.close()
