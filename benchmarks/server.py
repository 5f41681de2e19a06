"""The service as it is deployed, for the benchmarks that measure it from outside:
`python -m rag_service.cli serve` (uvicorn, embedded SQLite + qdrant-edge) in a
subprocess on 127.0.0.1, its peak RSS and CPU time sampled while it runs."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import log
from benchmarks.procstats import RssMonitor, is_running


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """`python -m rag_service.cli serve` on 127.0.0.1 with the embedded defaults."""

    def __init__(self, data_dir: Path, api_key: str, port: int) -> None:
        self.data_dir, self.api_key, self.port = data_dir, api_key, port
        self.base_url = f"http://127.0.0.1:{port}"
        self.log_path = data_dir / f"server-{time.strftime('%H%M%S')}-{port}.log"
        self.proc: subprocess.Popen | None = None
        self.monitor: RssMonitor | None = None
        self.rss: dict[str, Any] | None = None
        self.cpu_s = 0.0  # CPU seconds of the server and its children, sampled
        self._seen_children: dict[int, str | None] = {}

    def start(self, timeout_s: float = 300.0) -> "ServerProcess":
        self._spawn()
        try:
            self._wait_healthy(timeout_s)
        except BaseException:
            self.stop()  # `with` does not call __exit__ when __enter__ fails: never leave it running
            raise
        return self

    def _spawn(self) -> None:
        env = dict(os.environ)
        env.update({
            "RAG_DATA_DIR": str(self.data_dir), "RAG_BOOTSTRAP_KEY": self.api_key,
            # Measure, do not throttle; and pin the embedded defaults whatever the environment says.
            "RAG_RATE_LIMIT_PER_MINUTE": "0", "RAG_DATABASE_URL": "", "RAG_QDRANT_URL": "",
            "HF_HUB_OFFLINE": "1", "DO_NOT_TRACK": "1",
        })
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log_file = self.log_path.open("ab")
        # Its own session: a Ctrl-C in the terminal reaches only this process, and the
        # caller's finally block shuts the server down once, cleanly (shards flushed).
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rag_service.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=env, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        log_file.close()
        self.monitor = RssMonitor(self.proc.pid).start()

    def _wait_healthy(self, timeout_s: float) -> None:
        t0 = time.monotonic()
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=2).status_code == 200:
                    log(f"server pid {self.proc.pid} up in {time.monotonic() - t0:.1f}s (log {self.log_path})")
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() - t0 > timeout_s:
                raise RuntimeError(f"the server did not answer /healthz within {timeout_s:.0f}s:\n"
                                   f"{self.log_tail()}")
            time.sleep(0.25)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.monitor:
            self._seen_children = dict(self.monitor.child_start)
            self.monitor.stop()
            self.rss = self.monitor.report()
            self.cpu_s = sum(self.monitor.cpu.values())
        if self.proc.poll() is None:
            # SIGINT is uvicorn's graceful shutdown: the lifespan closes (flushes) the shards.
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        self._end_children()
        self.proc = None

    def _end_children(self) -> None:
        """The parser pool's processes notice the exit and leave within a second or two;
        end any that is still running after that, by pid (and only if that pid is still
        the process we saw)."""
        deadline = time.monotonic() + 10
        left = dict(self._seen_children)
        while left and time.monotonic() < deadline:
            left = {pid: st for pid, st in left.items() if st is not None and is_running(pid, st)}
            if left:
                time.sleep(0.2)
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
                log(f"ended server child {pid}, still running 10 s after the server exited")
            except (ProcessLookupError, PermissionError):
                pass

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
