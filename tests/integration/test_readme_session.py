"""The README's "A first session" block, run verbatim with bash and curl against a live server.

Only the key line (`KEY=rag_...`) and the address are put in; every other line is the README's
own. So a newcomer who copies it gets what this test sees: the index made by name, the upload
landing in it through its name, and the search finding it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.test_stress import live_server  # noqa: F401  (a uvicorn server on loopback)

README = Path(__file__).resolve().parents[2] / "README.md"


def first_session_block() -> str:
    text = README.read_text()
    section = text.split("## A first session", 1)[1]
    match = re.search(r"```bash\n(.*?)```", section, re.S)
    assert match, "README has no bash block under 'A first session'"
    return match.group(1)


def json_values(stdout: str) -> list:
    decoder, values, pos = json.JSONDecoder(), [], 0
    while pos < len(stdout):
        if stdout[pos].isspace():
            pos += 1
            continue
        value, pos = decoder.raw_decode(stdout, pos)
        values.append(value)
    return values


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_readme_first_session_runs_verbatim(live_server, tmp_path):  # noqa: F811
    url, key = live_server
    block = first_session_block()
    assert re.search(r"^KEY=rag_\.\.\.", block, re.M), "the key line changed: update this test"
    script = re.sub(r"^KEY=rag_\.\.\..*$", f"KEY={key}", block, flags=re.M).replace("localhost:8080", url)
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    answers = json_values(done.stdout)
    index, upload, search = answers[0], answers[1], answers[-1]
    assert index["name"] == "handbook" and index["id"] != "handbook"
    assert upload["name"] == "policy.md" and upload["version"] == 1 and upload["index_id"] == index["id"]
    hits = search["results"]
    assert hits and hits[0]["document_id"] == upload["id"] and hits[0]["version"] == 1
    assert "sixteen weeks" in hits[0]["text"]
