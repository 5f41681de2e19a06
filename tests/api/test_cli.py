"""The remote CLI commands, run with typer's CliRunner against the app through
a RagClient bound to the TestClient (`cli_remote.make_client` is the seam)."""

from __future__ import annotations

import json

import httpx
import pytest
from typer.testing import CliRunner

from rag_service import cli_remote
from rag_service.cli import app as cli
from rag_service.client import RagClient
from tests.conftest import new_key
from tests.files import docx_bytes, sample_files

FACT = "The quokka is native to Rottnest Island."


@pytest.fixture
def run(app_factory, monkeypatch):
    client, ctx = app_factory()
    key = new_key(ctx)
    for name in ("RAG_URL", "RAG_API_KEY"):  # typer reads them as option defaults
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(cli_remote, "make_client", lambda url, api_key: RagClient(http=client, api_key=api_key or key))

    def invoke(*args: str, input: str | None = None):
        return CliRunner().invoke(cli, list(args), input=input)

    invoke.rag = RagClient(http=client, api_key=key)
    invoke.ctx = ctx
    return invoke


def mixed_folder(root):
    files = {k: v for k, v in sample_files(FACT).items() if not k.endswith(".pdf")}
    (root / "sub").mkdir(parents=True)
    for name, data in files.items():
        (root / ("sub" if name == "memo.docx" else "") / name).write_bytes(data)
    (root / "photo.png").write_bytes(b"\x89PNG not a document")
    (root / ".hidden").mkdir()
    (root / ".hidden" / "secret.txt").write_text("never uploaded")
    return root


def ingest_json(run, *args):
    result = run("ingest", *args, "--json")
    return result, json.loads(result.stdout)


def test_ingest_folder_counts_then_unchanged_then_updated(run, tmp_path):
    folder = mixed_folder(tmp_path / "docs")
    result, summary = ingest_json(run, str(folder), "--index", "kb", "--create")
    assert result.exit_code == 0, result.output
    assert {k: summary[k] for k in ("created", "updated", "unchanged", "failed", "skipped")} == \
        {"created": 6, "updated": 0, "unchanged": 0, "failed": 0, "skipped": 1}
    names = {f["name"] for f in summary["files"] if f["outcome"] == "created"}
    assert names == {"notes.txt", "guide.md", "page.html", "table.csv", "data.json", "sub:memo.docx"}
    assert [f["reason"] for f in summary["files"] if f["outcome"] == "skipped"] == ["unsupported file type '.png'"]

    rag = run.rag
    index = rag.find_index("kb")["id"]
    memo = rag.get_document_by_name(index, "sub:memo.docx")
    assert memo["metadata"] == {"source_path": "sub/memo.docx"} and memo["filename"] == "memo.docx"
    hits = rag.search("Which island is the quokka native to?", index_id=index, top_k=10)["results"]
    assert {h["document_name"] for h in hits} == names

    result, again = ingest_json(run, str(folder), "--index", "kb")
    assert result.exit_code == 0, result.output
    assert (again["created"], again["updated"], again["unchanged"], again["failed"]) == (0, 0, 6, 0)
    assert all(d["latest_version"] == 1 for d in rag.iter_documents(index))

    (folder / "notes.txt").write_text("Field notes, revised. The quokka eats leaves.")
    (folder / "sub" / "memo.docx").write_bytes(docx_bytes("Memo", ["A changed memo about quokkas."]))
    result = run("ingest", str(folder), "--index", "kb", "--workers", "2")
    assert result.exit_code == 0, result.output
    assert "0 created, 2 updated, 4 unchanged, 0 failed, 1 skipped" in result.stdout
    assert rag.get_document_by_name(index, "notes.txt")["version"] == 2


def test_ingest_reports_failures_with_reasons(run, tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "empty.txt").write_bytes(b"")
    (folder / "broken.docx").write_bytes(b"not really a zip")
    (folder / "fine.md").write_text("# Fine\n\nA fine document.")
    result, summary = ingest_json(run, str(folder), "--index", "kb", "--create", "--metadata", '{"team": "qa"}')
    assert result.exit_code == 1
    assert (summary["created"], summary["failed"]) == (1, 2)
    reasons = {f["name"]: f["reason"] for f in summary["files"] if f["outcome"] == "failed"}
    assert reasons["empty.txt"].startswith("empty_document:")
    assert reasons["broken.docx"].startswith("corrupt_document:")
    fine = run.rag.get_document_by_name(summary["index_id"], "fine.md")
    assert fine["metadata"] == {"source_path": "fine.md", "team": "qa"}

    text = run("ingest", str(folder), "--index", "kb", "--metadata", '{"team": "qa"}')
    assert text.exit_code == 1 and "1 unchanged, 2 failed" in text.stdout and "empty_document" in text.stdout
    assert run("ingest", str(folder), "--index", "missing").exit_code == 1
    assert run("ingest", str(folder), "--index", "kb", "--metadata", "[1]").exit_code == 2


def test_server_side_unchanged_is_reported_without_the_precheck(run, tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("Same bytes twice.")
    index = run.rag.create_index("kb")["id"]
    [first] = cli_remote.upload_batch(run.rag, index, [(path, "a.txt")], {}, existing={})
    [second] = cli_remote.upload_batch(run.rag, index, [(path, "a.txt")], {}, existing={})
    assert (first.outcome, second.outcome, second.version) == ("created", "unchanged", 1)


def test_ingest_sends_batches_and_keeps_each_files_outcome(run, tmp_path, monkeypatch):
    folder = tmp_path / "many"
    folder.mkdir()
    for n in range(7):
        (folder / f"n{n}.txt").write_text(f"Note {n} about the tern colony on the spit.")
    (folder / "empty.txt").write_text("")
    monkeypatch.setattr(cli_remote, "BATCH_MAX_FILES", 3)
    calls = []
    real = type(run.rag).upload_batch
    monkeypatch.setattr(type(run.rag), "upload_batch", lambda self, *a, **kw: calls.append(a) or real(self, *a, **kw))
    result = run("ingest", str(folder), "--index", "kb", "--create", "--json")
    assert result.exit_code == 1  # the empty file failed, alone
    summary = json.loads(result.stdout)
    assert (summary["created"], summary["failed"]) == (7, 1) and len(calls) == 3
    failed = [f for f in summary["files"] if f["outcome"] == "failed"]
    assert failed[0]["source"] == "empty.txt" and failed[0]["reason"].startswith("empty_document:")


def test_search_table_and_json(run, tmp_path):
    folder = mixed_folder(tmp_path / "docs")
    assert run("ingest", str(folder), "--index", "kb", "--create").exit_code == 0
    result = run("search", "quokka island", "--index", "kb", "--top-k", "3")
    assert result.exit_code == 0, result.output
    assert "quokka" in result.stdout.lower() and " v1" in result.stdout and "chunk 0" in result.stdout
    assert "evidence" in result.stdout and "boundary computer" in result.stdout
    raw = run("search", "quokka island", "--index", "kb", "--json")
    body = json.loads(raw.stdout)
    expected = run.rag.search("quokka island", index_ids=[run.rag.find_index("kb")["id"]])["results"]
    # Six files carry the same sentence, so fused scores tie: compare the hits, not the order among ties.
    assert sorted(h["chunk_id"] for h in body["results"]) == sorted(h["chunk_id"] for h in expected)
    assert body["evidence"]["query"] == "quokka island" and body["evidence"]["result_count"] == len(expected)
    docs = json.loads(run("search", "quokka", "--result-type", "document", "--json").stdout)["results"]
    assert len({d["document_id"] for d in docs}) == len(docs) == 6
    filtered = json.loads(run("search", "quokka", "--filter", '{"source_path": "sub/memo.docx"}', "--json").stdout)
    assert {h["document_name"] for h in filtered["results"]} == {"sub:memo.docx"}
    refused = run("search", "quokka", "--index", "kb", "--data-boundary", "global_public_only")
    assert refused.exit_code == 1 and "data_boundary_violation" in refused.output


def test_indexes_commands(run):
    created = run("indexes", "create", "handbook", "--privacy-tier", "public", "--description", "HR")
    assert created.exit_code == 0 and "created index handbook" in created.stdout
    listed = json.loads(run("indexes", "list", "--json").stdout)
    assert [(i["name"], i["privacy_tier"]) for i in listed] == [("handbook", "public")]
    assert "handbook" in run("indexes", "list").stdout
    assert run("indexes", "create", "handbook").exit_code == 1
    assert run("indexes", "delete", "handbook", input="n\n").exit_code == 1  # aborted at the prompt
    assert run("indexes", "delete", "handbook", "--yes").exit_code == 0
    assert json.loads(run("indexes", "list", "--json").stdout) == []
    missing = run("indexes", "delete", "handbook", "--yes")
    assert missing.exit_code == 1 and "no index named" in missing.output


def test_bad_key_and_unreachable_service(run, monkeypatch):
    bad = run("indexes", "list", "--api-key", "rag_wrong")
    assert bad.exit_code == 1 and "401 unauthorized" in bad.output

    def refuse(request):
        raise httpx.ConnectError("connection refused", request=request)

    monkeypatch.setattr(cli_remote, "make_client", lambda url, key: RagClient(
        url, key, transport=httpx.MockTransport(refuse), sleep=lambda s: None))
    down = run("status", "--url", "http://127.0.0.1:1")
    assert down.exit_code == 1 and "cannot reach the service" in down.output


def test_jobs_and_status_render_the_service_answers(run, monkeypatch):
    job = {"id": "j1", "job_class": "eval", "status": "running", "progress": 40.0, "data_boundary": "computer",
           "created_at": "2026-11-01T10:00:00Z", "cancel_requested": False}
    answers = {
        ("GET", "/v1/rag/jobs"): {"contract": {"job_classes": []},
                                  "jobs": {"items": [job], "total": 1, "page": 1, "per_page": 200}},
        ("GET", "/v1/rag/jobs/j1"): job,
        ("POST", "/v1/rag/jobs/j1/cancel"): {**job, "cancel_requested": True},
        ("GET", "/v1/rag/status"): {"status": "ok", "components": {"vector_store": {"reachable": True, "kind": "edge"}},
                                    "retrieval_modes": {"hybrid": "live", "graph": "planned"}},
    }
    transport = httpx.MockTransport(lambda r: httpx.Response(200, json=answers[(r.method, r.url.path)]))
    monkeypatch.setattr(cli_remote, "make_client", lambda url, key: RagClient(url, key, transport=transport))
    listed = run("jobs", "list")
    assert listed.exit_code == 0 and "j1" in listed.stdout and "running" in listed.stdout and "40%" in listed.stdout
    assert json.loads(run("jobs", "show", "j1").stdout)["job_class"] == "eval"
    assert "cancel requested" in run("jobs", "cancel", "j1").stdout
    status = run("status")
    assert status.exit_code == 0 and "vector_store" in status.stdout and "planned" in status.stdout
    assert json.loads(run("status", "--json").stdout)["status"] == "ok"


def test_jobs_and_status_against_the_app(run):
    assert run("status", "--json").exit_code == 0
    listed = json.loads(run("jobs", "list", "--json").stdout)
    assert "contract" in listed and "jobs" in listed
    assert run("jobs", "show", "missing").exit_code == 1


def test_ingest_async_wait_reports_each_versions_outcome(run, tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("Avocets sweep the mud for food.")
    (folder / "b.md").write_text("# Bitterns\n\nBitterns boom at dusk.")
    (folder / "broken.docx").write_bytes(b"PK\x03\x04 not really a docx")
    result, summary = ingest_json(run, str(folder), "--index", "kb", "--create", "--async", "--wait",
                                  "--wait-timeout", "120")
    assert result.exit_code == 1  # one file failed, and --wait knows it
    outcomes = {f["name"]: (f["outcome"], f["reason"]) for f in summary["files"]}
    assert outcomes["a.txt"] == ("created", None) and outcomes["b.md"] == ("created", None)
    assert outcomes["broken.docx"][0] == "failed" and "corrupt_document" in outcomes["broken.docx"][1]
    # When the command returns, what it reported created is searchable.
    index = run.rag.find_index("kb")
    statuses = {d["name"]: d["status"] for d in run.rag.iter_documents(index["id"])}
    assert statuses == {"a.txt": "ready", "b.md": "ready", "broken.docx": "failed"}


def test_events_command_prints_the_stream(run, tmp_path):
    index = run.rag.create_index("kb")
    run.rag.upload(index["id"], b"Dunlins gather on the shore.", filename="d.txt")
    result = run("events", "--since", "0", "--timeout", "1", "--json")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(e["event"], e["data"]["name"]) for e in lines] == [("document.version.ready", "d.txt")]
    text = run("events", "--since", "0", "--timeout", "1", "--types", "document.version.ready")
    assert "document.version.ready" in text.stdout and "name=d.txt" in text.stdout
    bad = run("events", "--types", "nope", "--timeout", "1")
    assert bad.exit_code == 1 and "validation_error" in bad.output
