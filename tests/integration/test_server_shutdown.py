"""However the service is stopped, nothing it started outlives it: a real
`rag-service serve` (uvicorn, parser pool) stopped with SIGTERM, SIGINT or SIGKILL."""

import os
import signal
import subprocess
import sys

import httpx
import psutil
import pytest

from tests.processes import free_port, wait_ready


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL], ids=["SIGTERM", "SIGINT", "SIGKILL"])
def test_stopping_the_server_ends_every_process_it_started(tmp_path, sig):
    port = free_port()
    env = {**os.environ, "RAG_DATA_DIR": str(tmp_path / "data"), "RAG_PORT": str(port), "RAG_BOOTSTRAP_KEY": "rag_shutdown",
           "RAG_DATABASE_URL": "", "HF_HUB_OFFLINE": "1", "DO_NOT_TRACK": "1"}
    log = open(tmp_path / "server.log", "wb")
    server = subprocess.Popen([sys.executable, "-m", "rag_service.cli", "serve"], env=env,
                              stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        ready = wait_ready(base, server)
        assert ready.json()["components"]["encoder"]["ok"] is True
        headers = {"X-API-Key": "rag_shutdown"}
        index = httpx.post(f"{base}/v1/indexes", json={"name": "kb"}, headers=headers, timeout=30).json()
        up = httpx.post(f"{base}/v1/indexes/{index['id']}/documents", headers=headers, timeout=120,
                        files={"file": ("a.md", b"# Herons\n\nHerons nest by the river.")})
        assert up.status_code == 201, (up.text, (tmp_path / "server.log").read_text()[-3000:])
        descendants = psutil.Process(server.pid).children(recursive=True)
        assert descendants, "the parser pool should be running"
        server.send_signal(sig)
        server.wait(30)
        _, alive = psutil.wait_procs(descendants, timeout=10)
        assert not alive, [(p.pid, p.name()) for p in alive]
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
        log.close()
