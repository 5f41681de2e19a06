"""`rag-service events` (print the project's event stream) and the wait behind `ingest --wait`."""

from __future__ import annotations

import json
import time
from typing import Annotated, Callable, ContextManager, Optional

import typer

from rag_service.client import RagClient
from rag_service.sse import StreamEvent

OUTCOMES = ("document.version.ready", "document.version.failed")


def _line(event: StreamEvent) -> str:
    data = event.data.get("data", {})
    what = " ".join(f"{k}={data[k]}" for k in ("name", "version", "job_class", "status", "index_id", "error")
                    if data.get(k) is not None)
    return f"{event.id}\t{event.type}\t{what}"


def events_command(client_session: Callable[[str | None, str | None], ContextManager[RagClient]]) -> Callable:
    """The `events` command, opening its client with the CLI's `client_session` (errors -> exit 1)."""

    def events(
        since: Annotated[Optional[int], typer.Option(help="resume after this event id (Last-Event-ID); "
                                                          "default: from now")] = None,
        types: Annotated[Optional[str], typer.Option(help="comma-separated event types to show")] = None,
        count: Annotated[Optional[int], typer.Option(min=1, help="exit after this many events")] = None,
        timeout: Annotated[Optional[float], typer.Option(min=0.1, help="exit after this many seconds")] = None,
        url: Annotated[Optional[str], typer.Option("--url", envvar="RAG_URL", help="service URL")] = None,
        api_key: Annotated[Optional[str], typer.Option("--api-key", envvar="RAG_API_KEY", help="API key",
                                                       show_default=False)] = None,
        as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
    ) -> None:
        """Print the project's lifecycle events as they happen (reconnects and resumes by itself)."""
        wanted = [t.strip() for t in types.split(",") if t.strip()] if types else None
        deadline = time.monotonic() + timeout if timeout else None
        seen, after = 0, since
        with client_session(url, api_key) as client:
            if after is None:  # from now on: a reconnect resumes from here, not from a later "now"
                after = client.event_position()
            while deadline is None or time.monotonic() < deadline:
                left = 300.0 if deadline is None else max(0.1, min(300.0, deadline - time.monotonic()))
                for event in client.stream_events(after, types=wanted, timeout_s=left):
                    if event.type == "stream.truncated":
                        typer.echo(f"note: {event.data.get('message')}", err=True)
                        continue
                    after = event.id if event.id is not None else after
                    typer.echo(json.dumps({"id": event.id, "event": event.type, **event.data})
                               if as_json else _line(event))
                    seen += 1
                    if count is not None and seen >= count:
                        return

    return events


def wait_for_versions(client: RagClient, pending: set[tuple[str, int]], after: int,
                      timeout_s: float) -> dict[tuple[str, int], dict]:
    """Follow the stream from `after` until each (document_id, version) in `pending` is ready or
    failed; returns their outcome events' data (those still missing at the deadline are absent)."""
    done: dict[tuple[str, int], dict] = {}
    deadline = time.monotonic() + timeout_s
    while len(done) < len(pending) and time.monotonic() < deadline:
        # Short windows: a client that buffers whole responses (a test's in-process transport)
        # still sees each window's events promptly; on a real connection they stream as they come.
        left = max(0.1, min(2.0, deadline - time.monotonic()))
        for event in client.stream_events(after, types=list(OUTCOMES), timeout_s=left):
            after = event.id if event.id is not None else after
            data = event.data.get("data", {})
            key = (data.get("document_id"), data.get("version"))
            if key in pending:
                done[key] = {"type": event.type, **data}
                if len(done) == len(pending):
                    break
    return done




def settle_queued(client: RagClient, queued: list, position: int, timeout_s: float) -> None:
    """`ingest --async --wait`: each queued file's result (cli_remote.FileResult) takes its
    version's outcome; one still indexing at the deadline counts as failed."""
    by_version = {(r.document_id, r.version): r for r in queued}
    outcomes = wait_for_versions(client, set(by_version), position, timeout_s)
    for key, result in by_version.items():
        outcome = outcomes.get(key)
        result.queued = outcome is None
        if outcome is None:
            result.outcome, result.reason = "failed", f"neither ready nor failed within {timeout_s:g} s"
        elif outcome["type"] == "document.version.failed":
            result.outcome, result.reason = "failed", outcome.get("error") or "ingestion failed"
