"""Live service processes for the tests that need a real server (the console in a browser, the
clean-venv install, crashes, shutdown): a free port, waiting for readiness, and a stop that
leaves nothing behind (the parser pool and any other child included)."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import psutil


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _log_tail(log: Path | None) -> str:
    return f":\n{log.read_text(errors='replace')[-4000:]}" if log is not None and log.exists() else ""


def wait_ready(base: str, process: subprocess.Popen, log: Path | None = None, timeout_s: float = 240) -> httpx.Response:
    """Until GET /v1/ready answers 200. Meanwhile /v1/health must already say ok and /v1/ready
    may only answer 503 not_ready: what a load balancer polling a starting service sees."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited during start-up ({process.returncode}){_log_tail(log)}")
        try:
            assert httpx.get(f"{base}/v1/health", timeout=5).json() == {"status": "ok"}
            ready = httpx.get(f"{base}/v1/ready", timeout=5)
            if ready.status_code == 200:
                return ready
            assert ready.status_code == 503 and ready.json()["code"] == "not_ready", ready.text
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"the server was not ready in {timeout_s:.0f} s{_log_tail(log)}")


def stop(process: subprocess.Popen, timeout_s: float = 30) -> None:
    """SIGTERM (a graceful stop closes the parser pool), SIGKILL if it does not end in time,
    then every process it started that is still alive: nothing may outlive the suite."""
    try:
        descendants = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
    _, alive = psutil.wait_procs(descendants, timeout=10)
    for child in alive:
        child.kill()
    psutil.wait_procs(alive, timeout=10)
