"""The `rag-service` command line.

The local commands (serve, worker, keys) import the service inside their functions on purpose:
the remote commands (search, ingest, ...) must start without loading torch, the stores and the
parsers, and `rag-service --help` must answer at once."""

from __future__ import annotations

import sys

import typer

import rag_service  # noqa: F401  (offline environment defaults)
from rag_service.config import Settings

app = typer.Typer(help="RAG indexing and retrieval service with versioned documents.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys (touches only the metadata database: safe while the service runs).",
                       no_args_is_help=True)
app.add_typer(keys_app, name="keys")


def _auth(settings: Settings):
    from rag_service.db import Database
    from rag_service.services.auth import AuthService

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.effective_database_url)
    db.create_schema()
    return AuthService(db)


@app.command()
def serve(host: str = typer.Option(None, help="default RAG_HOST or 127.0.0.1"),
          port: int = typer.Option(None, help="default RAG_PORT or 8080"),
          workers: int = typer.Option(1, help="uvicorn workers (several need RAG_DATABASE_URL and RAG_QDRANT_URL)")) -> None:
    """Start the HTTP service."""
    import uvicorn

    from rag_service.logs import dict_config

    settings = Settings()
    if workers > 1 and not (settings.database_url and settings.qdrant_url):
        typer.echo("the embedded mode is one process: several workers need RAG_DATABASE_URL and RAG_QDRANT_URL", err=True)
        raise typer.Exit(2)
    auth = _auth(settings)
    if settings.bootstrap_key:
        auth.ensure_bootstrap_key(settings.bootstrap_key)
    elif not auth.has_any_key():
        key, _ = auth.create_key("default", "admin", name="first-start")
        typer.echo("=" * 72, err=True)
        typer.echo("First start: an admin API key for project 'default' (shown once):", err=True)
        typer.echo(f"  {key}", err=True)
        typer.echo("Use it as: X-API-Key: <key>   or   Authorization: Bearer <key>", err=True)
        typer.echo("=" * 72, err=True)
    uvicorn.run("rag_service.app:create_app", factory=True, host=host or settings.host, port=port or settings.port,
                workers=workers, log_config=dict_config(settings.log_level, settings.log_format), access_log=False)


@app.command()
def worker(lease: float = typer.Option(None, help="job lease in seconds (default RAG_JOB_LEASE_SECONDS)"),
           once: bool = typer.Option(False, help="run at most one job, then exit")) -> None:
    """Run jobs and webhook deliveries from the shared tables (claims with a lease; safe to run several)."""
    import signal

    from rag_service.context import build_context
    from rag_service.services.delivery import Deliverer
    from rag_service.services.job_handlers import build_job_runner

    import logging.config

    from rag_service.logs import dict_config

    settings = Settings()
    logging.config.dictConfig(dict_config(settings.log_level, settings.log_format))
    if not settings.qdrant_url:
        typer.echo("note: embedded vector store: run the worker only while no API process holds the shards "
                   "(the API runs jobs in-process in the embedded mode)", err=True)
    ctx = build_context(settings)
    runner = build_job_runner(ctx, lease_seconds=lease or settings.job_lease_seconds, concurrency=settings.job_concurrency)
    ctx.runner = runner
    ctx.deliverer = deliverer = Deliverer(ctx)
    typer.echo(f"worker {runner.owner} polling for jobs and webhook deliveries", err=True)
    if once:
        runner.run_once()
    else:
        import time

        signal.signal(signal.SIGTERM, lambda *_: runner.stop(timeout=0))
        runner.start()
        deliverer.start()
        try:
            while runner.alive():
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        deliverer.stop(timeout=15)  # an attempt in flight finishes (or is sent again after its lease)
        runner.stop(timeout=30)  # the jobs in flight finish (or are claimed again after their lease)
    deliverer.http.close()
    ctx.vectors.close()
    ctx.db.dispose()


@keys_app.command("create")
def keys_create(project: str = typer.Option(..., help="project name (created if needed)"),
                role: str = typer.Option("reader", help="reader | editor | admin"),
                name: str = typer.Option(None, help="a label for the key")) -> None:
    """Create a key and print only the key on stdout."""
    from rag_service.errors import ServiceError

    try:
        key, _ = _auth(Settings()).create_key(project, role, name)
    except ServiceError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2)
    sys.stdout.write(key + "\n")


@keys_app.command("list")
def keys_list(project: str = typer.Option(..., help="project name")) -> None:
    """List a project's keys (prefixes only: keys are stored hashed)."""
    from sqlmodel import select

    from rag_service.models import ApiKey, Project

    auth = _auth(Settings())
    with auth.db.session() as s:
        proj = s.exec(select(Project).where(Project.name == project)).first()
        if proj is None:
            typer.echo(f"no project {project!r}", err=True)
            raise typer.Exit(1)
        for k in s.exec(select(ApiKey).where(ApiKey.project_id == proj.id)).all():
            state = "revoked" if k.revoked_at else "active"
            typer.echo(f"{k.id}\t{k.prefix}…\t{k.role}\t{state}\t{k.name or ''}")


@keys_app.command("revoke")
def keys_revoke(key_id: str) -> None:
    """Revoke a key by its id."""
    from rag_service.models import ApiKey, utcnow

    auth = _auth(Settings())
    with auth.db.session() as s:
        k = s.get(ApiKey, key_id)
        if k is None:
            typer.echo(f"no key {key_id!r}", err=True)
            raise typer.Exit(1)
        k.revoked_at = k.revoked_at or utcnow()
        s.add(k)
        s.commit()
    typer.echo(f"revoked {key_id}")


from rag_service.cli_remote import register  # noqa: E402  (indexes, ingest, search, jobs, status, mcp)

register(app)


if __name__ == "__main__":
    app()
