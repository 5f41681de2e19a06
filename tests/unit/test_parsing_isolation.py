"""Parsing runs in a bounded process pool: a hang or a memory blow-up costs one
422 and the pool keeps serving."""

import io
import time
import zipfile

import pytest

from rag_service.errors import CorruptDocument, DocumentTooLarge, ParseTimeout
from rag_service.services.preparation import check_unzipped_size
from rag_service.services.parsing import ParserPool


def hang(data, filename, max_characters, overlap):
    time.sleep(60)


def balloon(data, filename, max_characters, overlap):
    blocks = []
    while True:
        blocks.append(bytearray(256 * 1024 * 1024))


@pytest.fixture
def pool():
    p = ParserPool(timeout_s=3, memory_mb=1024, workers=1)
    yield p
    p.close()


def test_real_parse_in_pool(pool):
    prepared = pool.prepare(b"# Title\n\nA paragraph parsed in another process.", "a.md", 1000, 0)
    assert prepared.chunks and "another process" in prepared.text


def test_hanging_parser_times_out_and_pool_recovers(pool):
    pool.target = hang
    started = time.time()
    with pytest.raises(ParseTimeout) as err:
        pool.prepare(b"x", "a.txt", 1000, 0)
    # A valid file that takes too long is not "corrupt": its own code, the limit, and what raises it.
    assert err.value.code == "parse_timeout" and time.time() - started < 20
    assert err.value.detail["setting"] == "RAG_PARSE_TIMEOUT_S" and "RAG_PARSE_TIMEOUT_S" in err.value.message


def test_the_parse_limit_grows_with_the_file():
    pool = ParserPool(timeout_s=60, seconds_per_mb=2.0, workers=1)
    assert pool.limit_for(0) == 60 and pool.limit_for(50 * 1024 * 1024) == 160
    from rag_service.services.parsing import _prepare

    pool.target = _prepare
    assert pool.prepare(b"still works afterwards", "b.txt", 1000, 0).chunks


def test_memory_limit_refuses_the_file(pool):
    pool.target = balloon
    with pytest.raises(DocumentTooLarge) as err:
        pool.prepare(b"x", "a.txt", 1000, 0)
    assert err.value.code == "document_too_large" and err.value.detail["setting"] == "RAG_PARSE_MEMORY_MB"


def test_zip_bomb_is_refused_before_parsing():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("word/document.xml", b"\0" * (20 * 1024 * 1024))
    with pytest.raises(CorruptDocument) as err:
        check_unzipped_size(buf.getvalue(), "bomb.docx", limit_mb=500)
    assert err.value.detail["reason"] == "decompression_bomb"
    check_unzipped_size(b"plain text, not a zip", "a.txt", 500)


_OWNER = """
import sys, time
from rag_service.services.parsing import ParserPool
pool = ParserPool(timeout_s=30, memory_mb=0, workers=2)
pool.prepare(b"warm the workers up", "a.txt", 1000, 0)
print("ready", flush=True)
time.sleep(120)
"""


def test_workers_die_with_a_killed_owner():
    """SIGKILL gives the owner no chance to clean up: its pool must still go."""
    import os
    import signal
    import subprocess
    import sys

    import psutil

    owner = subprocess.Popen([sys.executable, "-c", _OWNER], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "HF_HUB_OFFLINE": "1", "DO_NOT_TRACK": "1"})
    try:
        assert owner.stdout.readline().strip() == "ready"
        descendants = psutil.Process(owner.pid).children(recursive=True)
        assert len(descendants) >= 3  # forkserver (and resource tracker) and two workers
        owner.send_signal(signal.SIGKILL)
        owner.wait(10)
        gone, alive = psutil.wait_procs(descendants, timeout=10)
        assert not alive, [p.pid for p in alive]
    finally:
        owner.kill()
        owner.wait(10)
