"""`rag-service` commands that talk to a running service through
rag_service.client: indexes, ingest, search, jobs, status, mcp.

Every command takes `--url` (env RAG_URL, default http://127.0.0.1:8080) and
`--api-key` (env RAG_API_KEY), and gets its client from `make_client`, the one
place tests replace to bind the commands to an in-process app.
"""

from __future__ import annotations

import hashlib
import json
import re
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any, Iterator, Optional

import httpx
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from rag_service.cli_events import events_command, settle_queued
from rag_service.client import DEFAULT_URL, RagClient, RagError

UrlOpt = Annotated[Optional[str], typer.Option("--url", envvar="RAG_URL", help=f"service URL (default {DEFAULT_URL})")]
KeyOpt = Annotated[Optional[str], typer.Option("--api-key", envvar="RAG_API_KEY", help="API key", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="print the raw JSON answer")]

# Document names are labels without "/" (the service keeps only the last path
# part), so a file's path below the ingested folder is joined with this.
NAME_SEPARATOR = ":"
BOUNDARY_HELP = "computer | account_supercomputer_sync | private_supercomputer | global_public_only"


def make_client(url: str | None, api_key: str | None) -> RagClient:
    return RagClient(url or DEFAULT_URL, api_key)


def _out() -> Console:
    return Console()


def _err() -> Console:
    return Console(stderr=True)


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))


@contextmanager
def client_session(url: str | None, api_key: str | None) -> Iterator[RagClient]:
    """A client for one command; service errors become a message and exit code 1."""
    client = make_client(url, api_key)
    try:
        yield client
    except RagError as exc:
        _err().print(f"[red]error[/red] {exc.status} {exc.code}: {escape(exc.message)}")
        raise typer.Exit(1) from None
    except httpx.TransportError as exc:
        _err().print(f"[red]error[/red] cannot reach the service at {client.base_url}: {escape(str(exc))}")
        raise typer.Exit(1) from None
    finally:
        client.close()


def _index(client: RagClient, name_or_id: str) -> dict[str, Any]:
    index = client.find_index(name_or_id)
    if index is None:
        _err().print(f"[red]error[/red] no index named {escape(name_or_id)!r}")
        raise typer.Exit(1)
    return index


def _json_option(raw: str | None, what: str) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise typer.BadParameter(f"{what} must be a JSON object")
    return value


# -- indexes ---------------------------------------------------------------------
indexes_app = typer.Typer(help="Indexes of the project the API key belongs to.", no_args_is_help=True)


@indexes_app.command("list")
def indexes_list(url: UrlOpt = None, api_key: KeyOpt = None, as_json: JsonOpt = False) -> None:
    """List indexes."""
    with client_session(url, api_key) as client:
        items = list(client.iter_indexes())
    if as_json:
        return _print_json(items)
    table = Table("name", "id", "tier", "documents", "model")
    for i in items:
        table.add_row(escape(i["name"]), i["id"], i["privacy_tier"], str(i["document_count"]), i["embedding_model"])
    _out().print(table)


@indexes_app.command("create")
def indexes_create(
    name: str,
    privacy_tier: Annotated[Optional[str], typer.Option(help="public | mesh_safe | private | personal")] = None,
    description: Annotated[Optional[str], typer.Option()] = None,
    embedding_model: Annotated[Optional[str], typer.Option(help="sentence-transformers name or path")] = None,
    chunk_max_characters: Annotated[Optional[int], typer.Option()] = None,
    chunk_overlap: Annotated[Optional[int], typer.Option()] = None,
    url: UrlOpt = None, api_key: KeyOpt = None, as_json: JsonOpt = False,
) -> None:
    """Create an index."""
    with client_session(url, api_key) as client:
        index = client.create_index(name, privacy_tier=privacy_tier, description=description,
                                    embedding_model=embedding_model, chunk_max_characters=chunk_max_characters,
                                    chunk_overlap=chunk_overlap)
    if as_json:
        return _print_json(index)
    _out().print(f"created index [bold]{escape(index['name'])}[/bold] {index['id']} ({index['privacy_tier']})")


@indexes_app.command("delete")
def indexes_delete(name: str, yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
                   url: UrlOpt = None, api_key: KeyOpt = None) -> None:
    """Delete an index (by name or id) with all its documents and vectors."""
    with client_session(url, api_key) as client:
        index = _index(client, name)
        if not yes:
            typer.confirm(f"delete index {index['name']!r} and its {index['document_count']} documents?", abort=True)
        client.delete_index(index["id"])
    _out().print(f"deleted index {escape(index['name'])} {index['id']}")


# -- ingest ----------------------------------------------------------------------
@dataclass
class FileResult:
    path: str
    source: str  # the path below the ingested folder
    name: str
    outcome: str  # created | updated | unchanged | failed | skipped
    version: int | None = None
    document_id: str | None = None
    reason: str | None = None
    queued: bool = False  # uploaded with --async: its ingest job has not reported yet


def collect_files(root: Path) -> tuple[list[tuple[Path, str]], list[FileResult]]:
    """(files to upload as (path, path below root), files skipped). Hidden files and folders are ignored."""
    from pipelines.parse import MEDIA_TYPES  # the parsers' module: only for `ingest`, not every command

    if root.is_file():
        candidates = [(root, root.name)]
    else:
        candidates = [(p, p.relative_to(root).as_posix()) for p in sorted(root.rglob("*"))
                      if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)]
    files, skipped = [], []
    for path, source in candidates:
        if path.suffix.lower() in MEDIA_TYPES:
            files.append((path, source))
        else:
            reason = f"unsupported file type {path.suffix or '(none)'!r}"
            skipped.append(FileResult(str(path), source, document_name(source), "skipped", reason=reason))
    return files, skipped


def document_name(source: str) -> str:
    return source.replace("/", NAME_SEPARATOR)


# A batch request stays well inside the service's request limit and answers within a client timeout.
BATCH_MAX_FILES = 32
BATCH_MAX_BYTES = 16 * 1024 * 1024


def plan_batches(files: list[tuple[Path, str]]) -> list[list[tuple[Path, str]]]:
    """Files grouped into batch requests of at most BATCH_MAX_FILES files and BATCH_MAX_BYTES bytes."""
    batches, batch, size = [], [], 0
    for path, source in files:
        length = path.stat().st_size if path.exists() else 0
        if batch and (len(batch) >= BATCH_MAX_FILES or size + length > BATCH_MAX_BYTES):
            batches.append(batch)
            batch, size = [], 0
        batch.append((path, source))
        size += length
    return batches + ([batch] if batch else [])


def _read_new(path: Path, source: str, metadata: dict[str, Any],
              existing: dict[str, dict[str, Any]]) -> tuple[bytes | None, FileResult | None]:
    """(bytes to upload, None), or (None, the file's result when it needs no request)."""
    name = document_name(source)
    try:
        data = path.read_bytes()
    except OSError as exc:
        return None, FileResult(str(path), source, name, "failed", reason=f"cannot read: {exc}")
    known = existing.get(name)
    # Identical bytes and metadata as the served version: no need to send them at all.
    if (known and known["version"] == known["latest_version"] and known["status"] == "ready"
            and known["content_hash"] == hashlib.sha256(data).hexdigest() and known["metadata"] == metadata):
        return None, FileResult(str(path), source, name, "unchanged", version=known["version"], document_id=known["id"])
    return data, None


def upload_batch(client: RagClient, index_id: str, batch: list[tuple[Path, str]], extra: dict[str, Any],
                 existing: dict[str, dict[str, Any]], run_async: bool = False) -> list[FileResult]:
    """One POST .../documents/batch for the files of `batch` that changed; a file's failure is its own."""
    results, sending = [], []
    for path, source in batch:
        metadata = {"source_path": source, **extra}
        data, settled = _read_new(path, source, metadata, existing)
        if settled is not None:
            results.append(settled)
        else:
            sending.append((FileResult(str(path), source, document_name(source), "failed"), data, metadata))
    if not sending:
        return results
    try:
        answer = client.upload_batch(index_id, [{"file": data, "filename": Path(r.path).name, "name": r.name,
                                                 "metadata": metadata} for r, data, metadata in sending],
                                     run_async=run_async)
        items = answer["items"]
    except RagError as exc:  # the whole request was refused (auth, boundary, size)
        items = [{"status_code": exc.status, "code": exc.code, "message": exc.message}] * len(sending)
    except httpx.HTTPError as exc:
        items = [{"status_code": 0, "code": type(exc).__name__, "message": str(exc)}] * len(sending)
    for (result, _, _), item in zip(sending, items):
        if item["status_code"] == 0 or item["status_code"] >= 400:
            result.reason = f"{item['code']}: {item['message']}"
        elif item["status_code"] == 202:  # queued: an ingest job indexes it
            doc = item["document"]
            result.outcome = "created" if doc["version"] == 1 else "updated"
            result.version, result.document_id, result.queued = doc["version"], doc["id"], True
        else:
            result.outcome = "unchanged" if item.get("unchanged") else ("created" if item["version"] == 1 else "updated")
            result.version, result.document_id = item["version"], item["id"]
        results.append(result)
    return results


def ingest(
    path: Annotated[Path, typer.Argument(exists=True, help="a file, or a folder (read recursively)")],
    index: Annotated[str, typer.Option("--index", "-i", help="index name or id")],
    create: Annotated[bool, typer.Option("--create", help="create the index if it does not exist")] = False,
    metadata: Annotated[Optional[str], typer.Option(help="JSON object of metadata for every file")] = None,
    workers: Annotated[int, typer.Option(min=1, max=32, help="batch requests in flight (each up to 32 files)")] = 2,
    run_async: Annotated[bool, typer.Option("--async", help="queue ingest jobs instead of waiting for each request")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="with --async: wait until every uploaded version is ready "
                                                     "or failed (follows the event stream)")] = False,
    wait_timeout: Annotated[float, typer.Option(help="seconds --wait waits at most")] = 3600.0,
    url: UrlOpt = None, api_key: KeyOpt = None, as_json: JsonOpt = False,
) -> None:
    """Upload a file, or a folder's files, into an index.

    Files whose bytes and metadata equal the latest version are left alone. A
    file's document name is its path below the folder with the parts joined by
    ':'; its metadata records that path as `source_path`. Exits 1 if any failed."""
    extra = _json_option(metadata, "--metadata") or {}
    files, results = collect_files(path)
    with client_session(url, api_key) as client:
        target = client.find_index(index)
        if target is None and create:
            target = client.create_index(index)
        elif target is None:
            _err().print(f"[red]error[/red] no index named {escape(index)!r} (use --create to make it)")
            raise typer.Exit(1)
        existing = {d["name"]: d for d in client.iter_documents(target["id"])}
        position = client.event_position() if wait and run_async else 0
        progress = Progress(TextColumn("ingesting"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            console=_err(), disable=as_json)
        with progress, ThreadPoolExecutor(max_workers=workers) as pool:
            task = progress.add_task("ingest", total=len(files))
            futures = [pool.submit(upload_batch, client, target["id"], batch, extra, existing, run_async)
                       for batch in plan_batches(files)]
            for future in as_completed(futures):
                done = future.result()
                results.extend(done)
                progress.advance(task, len(done))
        if wait and run_async:
            settle_queued(client, [r for r in results if r.queued], position, wait_timeout)
    results.sort(key=lambda r: r.source)
    counts = {k: sum(r.outcome == k for r in results) for k in ("created", "updated", "unchanged", "failed", "skipped")}
    if as_json:
        _print_json({"index_id": target["id"], "index": target["name"], **counts, "files": [asdict(r) for r in results]})
    else:
        _print_summary(target["name"], counts, results)
    if counts["failed"]:
        raise typer.Exit(1)


def _print_summary(index_name: str, counts: dict[str, int], results: list[FileResult]) -> None:
    console = _out()
    console.print(f"[bold]{escape(index_name)}[/bold]: " + ", ".join(f"{n} {k}" for k, n in counts.items()))
    problems = [r for r in results if r.outcome in ("failed", "skipped")]
    if problems:
        table = Table("file", "outcome", "reason")
        for r in problems:
            table.add_row(escape(r.source), "[red]failed[/red]" if r.outcome == "failed" else "skipped", escape(r.reason or ""))
        console.print(table)


# -- search ----------------------------------------------------------------------
def _highlight_markup(snippet: str) -> str:
    parts = re.split(r"(</?em>)", snippet)
    out, inside = [], False
    for part in parts:
        if part in ("<em>", "</em>"):
            inside = part == "<em>"
            continue
        out.append(f"[bold yellow]{escape(part)}[/bold yellow]" if inside else escape(part))
    return "".join(out)


def search(
    query: str,
    index: Annotated[Optional[list[str]], typer.Option("--index", "-i", help="index name or id (repeatable)")] = None,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, max=100)] = 10,
    mode: Annotated[str, typer.Option(help="hybrid | dense | lexical")] = "hybrid",
    result_type: Annotated[str, typer.Option(help="chunk | document")] = "chunk",
    filters: Annotated[Optional[str], typer.Option("--filter", help='metadata filters as JSON: {"year": {"gte": 2025}}')] = None,
    data_boundary: Annotated[Optional[str], typer.Option(help=BOUNDARY_HELP)] = None,
    url: UrlOpt = None, api_key: KeyOpt = None, as_json: JsonOpt = False,
) -> None:
    """Search, and show the hits with highlights and citations."""
    parsed_filters = _json_option(filters, "--filter")
    with client_session(url, api_key) as client:
        index_ids = [_index(client, i)["id"] for i in index] if index else None
        body = client.search(query, top_k=top_k, mode=mode, result_type=result_type, filters=parsed_filters,
                             data_boundary=data_boundary, index_ids=index_ids)
    if as_json:
        return _print_json(body)
    table = Table("#", "score", "document", "passage", show_lines=True)
    for n, row in enumerate(body["results"], 1):
        hit = row.get("best_chunk") or row
        passage = _highlight_markup(hit["highlights"][0]) if hit.get("highlights") else escape(hit["text"][:240])
        where = f"chunk {hit['ordinal']}" + (f", p. {hit['page']}" if hit.get("page") is not None else "")
        if hit.get("section"):
            where += f", § {escape(str(hit['section']))}"
        meta = ", ".join(f"{k}={v}" for k, v in (hit.get("metadata") or {}).items())
        document = (f"[bold]{escape(hit['document_name'])}[/bold] v{hit['version']}\n{where}\n"
                    f"[dim]{escape(hit['index_name'])}[/dim]")
        if meta:
            document += f"\n[dim]{escape(meta)}[/dim]"
        table.add_row(str(n), f"{row['score']:.4f}", document, passage)
    console = _out()
    console.print(table)
    ev = body["evidence"]
    excluded = f", {len(ev['indexes_excluded'])} excluded by the boundary" if ev.get("indexes_excluded") else ""
    console.print(f"[dim]{len(body['results'])} results · {ev['mode']} · boundary {ev['data_boundary']}{excluded} · "
                  f"{ev['latency_ms']:.1f} ms · evidence {ev['evidence_id']}[/dim]")


# -- jobs and status -------------------------------------------------------------
jobs_app = typer.Typer(help="Jobs of the project (the /v1/rag/jobs contract).", no_args_is_help=True)


@jobs_app.command("list")
def jobs_list(status: Annotated[Optional[str], typer.Option(help="only jobs in this state")] = None,
              url: UrlOpt = None, api_key: KeyOpt = None, as_json: JsonOpt = False) -> None:
    """List jobs."""
    with client_session(url, api_key) as client:
        body = client.list_jobs(status=status, per_page=200)
    if as_json:
        return _print_json(body)
    jobs = body.get("jobs") or {}
    items = jobs.get("items", []) if isinstance(jobs, dict) else jobs
    table = Table("id", "class", "status", "progress", "boundary", "created")
    for j in items:
        progress = j.get("progress")
        table.add_row(j["id"], str(j.get("job_class")), str(j.get("status")), "" if progress is None else f"{progress:.0f}%",
                      str(j.get("data_boundary") or ""), str(j.get("created_at") or ""))
    _out().print(table)


@jobs_app.command("show")
def jobs_show(job_id: str, url: UrlOpt = None, api_key: KeyOpt = None) -> None:
    """Show one job as JSON."""
    with client_session(url, api_key) as client:
        _print_json(client.get_job(job_id))


@jobs_app.command("cancel")
def jobs_cancel(job_id: str, url: UrlOpt = None, api_key: KeyOpt = None, as_json: JsonOpt = False) -> None:
    """Ask a job to stop."""
    with client_session(url, api_key) as client:
        job = client.cancel_job(job_id)
    if as_json:
        return _print_json(job)
    note = " (cancel requested)" if job.get("cancel_requested") else ""
    _out().print(f"job {job.get('id', job_id)}: {job.get('status')}{note}")


def status(url: UrlOpt = None, api_key: KeyOpt = None, as_json: JsonOpt = False) -> None:
    """What is live: component health and retrieval modes."""
    with client_session(url, api_key) as client:
        body = client.status()
    if as_json:
        return _print_json(body)
    console = _out()
    console.print(f"status: [bold]{escape(str(body.get('status')))}[/bold]")
    components = Table("component", "reachable", "detail")
    for name, c in (body.get("components") or {}).items():
        detail = ", ".join(f"{k}={v}" for k, v in c.items() if k != "reachable")
        components.add_row(name, "[green]yes[/green]" if c.get("reachable") else "[red]no[/red]", escape(detail))
    console.print(components)
    modes = Table("retrieval mode", "state")
    for name, state in (body.get("retrieval_modes") or {}).items():
        modes.add_row(name, state)
    console.print(modes)


def mcp(url: UrlOpt = None, api_key: KeyOpt = None) -> None:
    """Serve the agent tools over MCP on stdio.

    search, get_document and list_indexes, proxied to the running service."""
    import anyio

    from rag_service.client.mcp_stdio import serve_stdio  # the MCP SDK: only for this command

    anyio.run(serve_stdio, url or DEFAULT_URL, api_key)


def register(app: typer.Typer) -> None:
    app.add_typer(indexes_app, name="indexes")
    app.add_typer(jobs_app, name="jobs")
    app.command("ingest")(ingest)
    app.command("search")(search)
    app.command("status")(status)
    app.command("mcp")(mcp)
    app.command("events")(events_command(client_session))
