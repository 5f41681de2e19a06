"""The project's wheel, installed by pip alone into a clean venv, is a working service:
it parses every kind of file it accepts (PDF and DOCX included) and serves its docs
with no internet.

Why a clean venv: the dev venv (scripts/setup.sh) holds the test and bench extras and
whatever was once installed by hand, so a runtime dependency missing from pyproject.toml,
or one that needs a manual step (unstructured-inference once did), passes every other
test and breaks `pip install .` and the Docker image. The install follows the Dockerfile:
torch 2.13.0 first, then the wheel under constraints.txt, from pip's configured indexes
and its cache. It takes minutes (the slow marker selects or deselects it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.files import sample_files
from tests.processes import free_port, stop, wait_ready

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
# the Dockerfile's build context: all that `pip install .` sees there
BUILD_CONTEXT = ("pyproject.toml", "rag_service", "pipelines", "benchmarks")
FACT = "The quokka is native to Rottnest Island."
# one of each parser family: unstructured's pdfminer path, unstructured's DOCX, the linear HTML reader
FORMATS = ("report.pdf", "memo.docx", "page.html")
KEY = "rag_wheel-install-test-key"
PIP_TIMEOUT_S = 900


def _run(*cmd: str | Path, **kw) -> None:
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=PIP_TIMEOUT_S, **kw)
    assert done.returncode == 0, f"{' '.join(map(str, cmd))}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    tmp_path = tmp_path_factory.mktemp("wheel")
    source = tmp_path / "src"
    source.mkdir()
    for name in BUILD_CONTEXT:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
        else:
            shutil.copy2(path, source / name)
    # built from a copy: setuptools writes build/ and *.egg-info into the tree it builds
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", source, "-w", tmp_path / "dist")
    (built,) = (tmp_path / "dist").glob("rag_service-*.whl")
    return built


@pytest.fixture
def clean_venv(tmp_path):
    """A venv that sees no site-packages but its own; removed afterwards (it is ~2 GB)."""
    path = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, system_site_packages=False, clear=True).create(path)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _service_env(tmp_path: Path) -> dict[str, str]:
    # nothing of the test run's own interpreter or settings leaks into the installed service
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "PYTHON", "VIRTUAL_ENV"))}
    return env | {"RAG_DATA_DIR": str(tmp_path / "data"), "RAG_BOOTSTRAP_KEY": KEY, "HF_HUB_OFFLINE": "1",
                  "DO_NOT_TRACK": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def test_the_wheel_carries_the_console_and_the_encoder_gate(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    console = [p.relative_to(ROOT).as_posix() for p in (ROOT / "rag_service" / "console").rglob("*")
               if p.is_file() and "__pycache__" not in p.parts]
    assert "rag_service/console/index.html" in console  # the page itself, not only its vendored libraries
    assert any(name.count("/") > 2 for name in console)  # and nested folders (vendor/<lib>/...)
    assert sorted(set(console) - names) == []
    assert "rag_service/stores/encoder_gate.json" in names


def test_pip_install_of_the_wheel_gives_a_service_that_parses_every_format(wheel, clean_venv, tmp_path):
    python = clean_venv / "bin" / "python"
    env = _service_env(tmp_path)
    # as in the Dockerfile: the CPU torch first, then the wheel pinned to it. --no-compile: the
    # service compiles what it imports; byte-compiling all of torch and transformers is a minute.
    _run(python, "-m", "pip", "install", "-q", "--no-compile", "torch==2.13.0", env=env)
    _run(python, "-m", "pip", "install", "-q", "--no-compile", "-c", ROOT / "constraints.txt", wheel, env=env)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "service.log"
    with log.open("w") as out:
        server = subprocess.Popen([clean_venv / "bin" / "rag-service", "serve", "--host", "127.0.0.1", "--port", str(port)],
                                  cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_ready(url, server, log, timeout_s=300)
        with httpx.Client(base_url=url, headers={"X-API-Key": KEY}, timeout=120) as client:
            docs = client.get("/docs")
            assert docs.status_code == 200 and "https://" not in docs.text
            assert client.get("/static-offline-docs/swagger-ui-bundle.js").status_code == 200

            index = client.post("/v1/indexes", json={"name": "formats"}).json()["id"]
            files = sample_files(FACT)
            for name in FORMATS:
                r = client.post(f"/v1/indexes/{index}/documents", files={"file": (name, files[name])})
                assert r.status_code == 201, (name, r.text)
                assert r.json()["status"] == "ready", (name, r.text)
                version = client.get(f"/v1/documents/{r.json()['id']}/versions/1").json()
                assert FACT in version["text"], (name, version["text"])
                if name.endswith(".pdf"):
                    assert [c["page"] for c in version["chunks"]][:1] == [1]
            hits = client.post(f"/v1/indexes/{index}/search", json={"query": "Where does the quokka live?"}).json()
            assert {h["document_name"] for h in hits["results"]} >= set(FORMATS), hits
    finally:
        stop(server)
