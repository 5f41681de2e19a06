"""`python -m benchmarks webhooks`: what the outbox costs an upload, and how soon a change reaches
a receiver.

Method: the real app (`ServiceHarness`: SQLite, embedded Qdrant, the real model) and a receiver
on 127.0.0.1 (http.server in a process of its own); every delivery is verified with `standardwebhooks`.
Two projects upload the same small documents, alternately, one upload at a time, in two phases
(the deliverer running, then stopped: the outbox alone); project `quiet`
has no webhook, project `hooked` has `--hooks` endpoints subscribed to every event. Reported: each
project's client-side upload latency (p50, p95) and their ratio (measured in the same run,
interleaved, so machine noise falls on both), and for `hooked` the delivery lag of
`document.version.ready` while the deliverer runs (receiver clock minus the event's timestamp,
which is taken just before the change commits): p50, p95, max. Exit status 1 when a delivery is
missing after the run, or one fails to verify.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import queue
import statistics
import time
from datetime import datetime
from typing import Any
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from benchmarks.common import ServiceHarness, cpu_info, log
from benchmarks.report import write_results


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("webhooks", help="upload cost of the event outbox, and webhook delivery lag",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--documents", type=int, default=100, help="uploads per project")
    p.add_argument("--hooks", type=int, default=3, help="webhook endpoints of the hooked project")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/webhooks"))
    return p


def _serve(port_out, arrivals) -> None:
    """The receiver, in its own process (as a real one would be): answers 204, records arrivals."""
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("content-length", 0))).decode()
            arrivals.put((time.time(), body, dict(self.headers), self.path))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port_out.put(server.server_address[1])
    server.serve_forever()


class _Receiver:
    def __enter__(self) -> "_Receiver":
        ctx = multiprocessing.get_context("spawn")
        port, self.queue = ctx.Queue(), ctx.Queue()
        self.process = ctx.Process(target=_serve, args=(port, self.queue), daemon=True)
        self.process.start()
        self.url = f"http://127.0.0.1:{port.get(timeout=60)}"
        self.arrivals: list[tuple[float, str, dict[str, str], str]] = []
        return self

    def collect(self, expected: int, timeout_s: float) -> list[tuple[float, str, dict[str, str], str]]:
        deadline = time.time() + timeout_s
        while len(self.arrivals) < expected and time.time() < deadline:
            try:
                self.arrivals.append(self.queue.get(timeout=max(0.01, deadline - time.time())))
            except queue.Empty:
                break
        return self.arrivals

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.join(10)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2) if ordered else float("nan")


def run(args: argparse.Namespace) -> int:
    from standardwebhooks.webhooks import Webhook as Verifier

    from rag_service.services.auth import AuthService

    before = os.environ.get("RAG_WEBHOOK_ALLOW_PRIVATE")
    os.environ["RAG_WEBHOOK_ALLOW_PRIVATE"] = "true"  # the receiver is on loopback (read by the harness's Settings)
    try:
        return _measure(args, Verifier, AuthService)
    finally:
        if before is None:
            os.environ.pop("RAG_WEBHOOK_ALLOW_PRIVATE", None)
        else:
            os.environ["RAG_WEBHOOK_ALLOW_PRIVATE"] = before


def _measure(args: argparse.Namespace, Verifier, AuthService) -> int:  # noqa: N803 (classes passed in)
    with _Receiver() as receiver, ServiceHarness() as h:
        quiet = {"X-API-Key": AuthService(h.ctx.db).create_key("quiet", "admin")[0]}
        hooked = h.headers
        secrets = {}
        for n in range(args.hooks):
            r = h.client.post("/v1/webhooks", headers=hooked, json={"url": f"{receiver.url}/h{n}", "events": ["*"]})
            secrets[f"/h{n}"] = r.json()["secret"]
        indexes = {name: h.client.post("/v1/indexes", headers=headers, json={"name": name}).json()["id"]
                   for name, headers in (("quiet", quiet), ("hooked", hooked))}
        phases, delivering_done = _upload_phases(h, args.documents, indexes, {"quiet": quiet, "hooked": hooked})
        expected = 2 * args.documents * args.hooks
        from rag_service.services.delivery import Deliverer

        h.ctx.deliverer = Deliverer(h.ctx)  # the outbox-only phase's deliveries go out now
        h.ctx.deliverer.start()
        arrivals = receiver.collect(expected, timeout_s=180)
    lags, verified = [], 0
    for at, raw, headers, path in arrivals:
        body = Verifier(secrets[path]).verify(raw, headers)  # raises on a bad signature
        verified += 1
        sent = datetime.fromisoformat(body["timestamp"].replace("Z", "+00:00")).timestamp()
        if sent < delivering_done:  # lag is measured while the deliverer runs throughout
            lags.append((at - sent) * 1000)

    results = {
        "cpu": cpu_info(), "documents_per_project_and_phase": args.documents, "hooks": args.hooks,
        "phases": {phase: _summary(latency) for phase, latency in phases.items()},
        "deliveries": {"expected": expected, "received": len(arrivals), "verified": verified,
                       "lag_ms": {"p50": _pct(lags, 0.5), "p95": _pct(lags, 0.95), "max": _pct(lags, 1.0)}},
    }
    write_results(args.out, results, _markdown(results))
    return 0 if len(arrivals) == expected else 1


def _upload_phases(h: ServiceHarness, documents: int, indexes: dict[str, str],
                   headers: dict[str, dict[str, str]]) -> tuple[dict[str, dict[str, list[float]]], float]:
    """Upload latencies (ms) per phase and project, and when the delivering phase ended.

    "delivering": the in-process deliverer sends while uploads go on (what a service with
    webhooks does); "outbox only": it is stopped, so uploads pay only for the outbox rows."""
    phases: dict[str, dict[str, list[float]]] = {}
    delivering_done = 0.0
    for phase in ("delivering", "outbox only"):
        if phase == "outbox only":
            delivering_done = time.time()
            h.ctx.deliverer.stop()
        log(f"{phase}: uploading {documents} documents into each project, alternately")
        phases[phase] = latency = {"quiet": [], "hooked": []}
        for n in range(documents):
            text = f"Note {n} ({phase}): the dunlin flock turned over the estuary at dusk, {n} birds by count."
            order = ("quiet", "hooked") if n % 2 else ("hooked", "quiet")
            for name in order:
                started = time.perf_counter()
                r = h.client.post(f"/v1/indexes/{indexes[name]}/documents", headers=headers[name],
                                  files={"file": (f"{phase[0]}{n}.txt", text.encode())})
                latency[name].append((time.perf_counter() - started) * 1000)
                assert r.status_code == 201, r.text
    return phases, delivering_done


def _summary(latency: dict[str, list[float]]) -> dict[str, Any]:
    return {"upload_ms": {name: {"p50": round(statistics.median(v), 2), "p95": _pct(v, 0.95)}
                          for name, v in latency.items()},
            "upload_p50_ratio_hooked_over_quiet":
                round(statistics.median(latency["hooked"]) / statistics.median(latency["quiet"]), 3)}


def _markdown(results: dict[str, Any]) -> str:
    deliveries, documents, hooks = results["deliveries"], results["documents_per_project_and_phase"], results["hooks"]
    md = [
        "# Webhooks: outbox cost and delivery lag", "",
        f"CPU: {results['cpu'].get('model')} ({results['cpu']['cpus']} CPUs; "
        f"flags: {', '.join(results['cpu'].get('flags_of_note', []))}).",
        f"{documents} small .txt uploads per project and phase, interleaved; `hooked` has {hooks} "
        "endpoints on every event, `quiet` none. Receiver: another process on 127.0.0.1.", "",
        "| phase | quiet p50 ms | hooked p50 ms | quiet p95 ms | hooked p95 ms | p50 hooked / quiet |",
        "|---|---|---|---|---|---|",
        *[f"| {phase} | {r['upload_ms']['quiet']['p50']} | {r['upload_ms']['hooked']['p50']} | "
          f"{r['upload_ms']['quiet']['p95']} | {r['upload_ms']['hooked']['p95']} | "
          f"**{r['upload_p50_ratio_hooked_over_quiet']}** |" for phase, r in results["phases"].items()], "",
        f"Deliveries: {deliveries['received']} of {deliveries['expected']} received, each verified with "
        f"standardwebhooks. Lag from the "
        f"event's timestamp (just before its commit) to the receiver, while delivering: p50 "
        f"{deliveries['lag_ms']['p50']} ms, p95 {deliveries['lag_ms']['p95']} ms, "
        f"max {deliveries['lag_ms']['max']} ms.", "",
    ]
    return "\n".join(md)
