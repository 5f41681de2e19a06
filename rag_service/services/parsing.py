"""Parsing outside the request: a small process pool with a wall-clock timeout
and an address-space limit per worker, so a file that hangs or balloons the
parser costs one 422, not the service. One pool per process, shared by every
app in it (tests build many apps); it restarts itself after a timeout."""

from __future__ import annotations

import atexit
import concurrent.futures as cf
import ctypes
import multiprocessing as mp
import os
import signal
import sys
import threading
import time

from rag_service.errors import DocumentTooLarge, ParseTimeout
from rag_service.services.preparation import prepare_upload

_MB = 1024 * 1024


def _die_with(server_pid: int) -> None:
    """A parser worker must never outlive the service, however the service ends.

    Its parent is multiprocessing's forkserver, which exits as soon as the service
    process is gone (its alive-pipe closes), even on SIGKILL; PR_SET_PDEATHSIG turns
    that into a SIGKILL for the worker. The watchdog covers what the kernel signal
    can't: a forkserver that outlives the service, or a platform without prctl.
    """
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass

    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:  # the forkserver is gone: we were reparented
                os._exit(0)
            try:
                os.kill(server_pid, 0)
            except ProcessLookupError:
                os._exit(0)
            except PermissionError:  # exists, under another user: the service itself is alive
                pass

    threading.Thread(target=watch, name="parser-watchdog", daemon=True).start()


def _init_worker(memory_mb: int, server_pid: int) -> None:
    _die_with(server_pid)
    import resource

    if memory_mb > 0:
        limit = memory_mb * _MB
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    # Import the parsers (and load their models) once per worker, not inside the first
    # file's timeout.
    try:
        _prepare(b"# Warm-up\n\nOne short paragraph.", "warm-up.md", 1000, 0)
    except Exception:  # noqa: BLE001 - a real file will report the problem
        pass


def _ready() -> bool:
    return True


def _prepare(data: bytes, filename: str, max_characters: int, overlap: int):
    return prepare_upload(data, filename, max_characters, overlap)


class ParserPool:
    def __init__(self, timeout_s: float = 60.0, memory_mb: int = 4096, workers: int = 2,
                 seconds_per_mb: float = 2.0) -> None:
        self.timeout_s = timeout_s
        # Parsing is linear in the size: a fixed limit would refuse big valid files, so each MB
        # of input adds to it (a 50 MB text file gets 60 + 100 s by default).
        self.seconds_per_mb = seconds_per_mb
        self.memory_mb = memory_mb
        self.workers = workers
        self.target = _prepare  # what runs in the worker; tests swap in a misbehaving parser
        self._pool: cf.ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def _get(self) -> cf.ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                # forkserver: never fork a process that holds torch threads and DB connections.
                pool = cf.ProcessPoolExecutor(self.workers, mp_context=mp.get_context("forkserver"),
                                              initializer=_init_worker, initargs=(self.memory_mb, os.getpid()))
                # Start the workers and their imports now: a file's timeout covers parsing only.
                for f in [pool.submit(_ready) for _ in range(self.workers)]:
                    f.result()
                self._pool = pool
            return self._pool

    def limit_for(self, size_bytes: int) -> float:
        return self.timeout_s + self.seconds_per_mb * size_bytes / _MB

    def start(self) -> None:
        """Start the workers and their imports now (at service start-up, not inside an upload)."""
        self._get()

    def _restart(self, pool: cf.ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is pool:
                self._pool = None
        for proc in list(getattr(pool, "_processes", {}).values()):
            proc.kill()
        pool.shutdown(wait=False, cancel_futures=True)

    def prepare(self, data: bytes, filename: str, max_characters: int, overlap: int):
        pool = self._get()
        future = pool.submit(self.target, data, filename, max_characters, overlap)
        limit = self.limit_for(len(data))
        try:
            return future.result(timeout=limit)
        except cf.TimeoutError:
            self._restart(pool)
            raise ParseTimeout(f"parsing took longer than its {limit:g} s limit (RAG_PARSE_TIMEOUT_S "
                               f"{self.timeout_s:g} s + RAG_PARSE_SECONDS_PER_MB {self.seconds_per_mb:g} s a MB); "
                               "raise either to accept it", filename=filename, reason="parse_timeout",
                               limit=limit, setting="RAG_PARSE_TIMEOUT_S") from None
        except (cf.process.BrokenProcessPool, MemoryError):
            self._restart(pool)
            raise DocumentTooLarge(f"parsing needed more than the {self.memory_mb} MB parser memory limit (or "
                                   "crashed); RAG_PARSE_MEMORY_MB raises it", filename=filename,
                                   reason="document_too_large", limit=self.memory_mb,
                                   setting="RAG_PARSE_MEMORY_MB") from None

    def close(self) -> None:
        """Stop the workers now (a parse in flight is abandoned: its upload fails, nothing is half-written)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            processes = list(getattr(pool, "_processes", {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for proc in processes:
                proc.join(timeout=2)
                if proc.is_alive():
                    proc.kill()


_shared: dict[tuple, ParserPool] = {}


@atexit.register
def _close_shared() -> None:
    # Before the interpreter tears down modules the pool's manager thread still needs.
    for pool in _shared.values():
        pool.close()


def shared_pool(timeout_s: float, memory_mb: int, seconds_per_mb: float = 2.0) -> ParserPool:
    key = (timeout_s, memory_mb, seconds_per_mb)
    if key not in _shared:
        _shared[key] = ParserPool(timeout_s, memory_mb, seconds_per_mb=seconds_per_mb)
    return _shared[key]
