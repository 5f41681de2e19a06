"""Parsing outside the request: a small process pool with a wall-clock timeout
and an address-space limit per worker, so a file that hangs or balloons the
parser costs one 422, not the service. One pool per process, shared by every
app in it (tests build many apps); it restarts itself after a timeout."""

from __future__ import annotations

import atexit
import concurrent.futures as cf
import multiprocessing as mp
import threading

from rag_service.errors import CorruptDocument

_MB = 1024 * 1024


def _limit_memory(memory_mb: int) -> None:
    import resource

    if memory_mb > 0:
        limit = memory_mb * _MB
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    # Import the parsers once per worker, not once per file.
    import pipelines.parse  # noqa: F401
    from unstructured.partition import text  # noqa: F401


def _ready() -> bool:
    return True


def _prepare(data: bytes, filename: str, max_characters: int, overlap: int):
    from rag_service.services.ingestion import prepare_upload

    return prepare_upload(data, filename, max_characters, overlap)


class ParserPool:
    def __init__(self, timeout_s: float = 60.0, memory_mb: int = 4096, workers: int = 2) -> None:
        self.timeout_s = timeout_s
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
                                              initializer=_limit_memory, initargs=(self.memory_mb,))
                # Start the workers and their imports now: a file's timeout covers parsing only.
                for f in [pool.submit(_ready) for _ in range(self.workers)]:
                    f.result()
                self._pool = pool
            return self._pool

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
        try:
            return future.result(timeout=self.timeout_s)
        except cf.TimeoutError:
            self._restart(pool)
            raise CorruptDocument(f"parsing took longer than {self.timeout_s:g} s; the file was refused",
                                  filename=filename, reason="parse_timeout") from None
        except (cf.process.BrokenProcessPool, MemoryError):
            self._restart(pool)
            raise CorruptDocument(f"parsing needed more than {self.memory_mb} MB or crashed; the file was refused",
                                  filename=filename, reason="parse_crashed") from None

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


_shared: dict[tuple, ParserPool] = {}


@atexit.register
def _close_shared() -> None:
    # Before the interpreter tears down modules the pool's manager thread still needs.
    for pool in _shared.values():
        pool.close()


def shared_pool(timeout_s: float, memory_mb: int) -> ParserPool:
    key = (timeout_s, memory_mb)
    if key not in _shared:
        _shared[key] = ParserPool(timeout_s, memory_mb)
    return _shared[key]
