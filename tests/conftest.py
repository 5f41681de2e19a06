"""Shared test wiring: one loaded embedding model for the session, a fresh data
directory per test, and every API test run on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import uuid
from typing import Any, Callable

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
# Deterministic test apps: every Settings in the session (benchmark harnesses included) gets
# torch fp32 unless a test pins another variant; tests of `auto` build their own registries.
os.environ.setdefault("RAG_EMBEDDING_BACKEND", "torch")
os.environ.setdefault("RAG_EMBEDDING_PRECISION", "fp32")

from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from rag_service.app import create_app  # noqa: E402
from rag_service.config import Settings  # noqa: E402
from rag_service.context import build_context  # noqa: E402
from rag_service.services.auth import AuthService  # noqa: E402
from rag_service.stores.embedder import EmbedderRegistry  # noqa: E402

POSTGRES_URL = os.environ.get("RAG_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def embedders(tmp_path_factory) -> EmbedderRegistry:
    # One registry, so each encoder loads (and each ONNX variant is exported) once per session.
    return EmbedderRegistry(backend="torch", precision="fp32", cache_dir=tmp_path_factory.mktemp("encoders"))


def _postgres_available() -> bool:
    try:
        with create_engine(POSTGRES_URL).connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def postgres_ok() -> bool:
    ok = _postgres_available()
    if not ok and os.environ.get("CI"):
        pytest.fail(f"PostgreSQL is required in CI and is not reachable at {POSTGRES_URL}")
    return ok


def fresh_postgres_url() -> str:
    """A schema of its own per test, so tests never see each other's rows."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT").connect() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in POSTGRES_URL else "?"
    return f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, tmp_path, postgres_ok) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'rag.db'}"
    if not postgres_ok:
        pytest.skip("PostgreSQL not reachable (CI fails instead of skipping)")
    return fresh_postgres_url()


@pytest.fixture
def settings_factory(tmp_path, database_url) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values = {"data_dir": tmp_path / "data", "database_url": database_url, "bm25_avg_len_tolerance": 0.0}
        values.update(overrides)
        return Settings(**values)

    return make


class Api:
    """A TestClient bound to one project's key, with upload/search helpers."""

    def __init__(self, client: TestClient, key: str) -> None:
        self.client = client
        self.key = key
        self.headers = {"X-API-Key": key}

    def __getattr__(self, method: str):
        def call(url: str, **kw):
            headers = {**self.headers, **kw.pop("headers", {})}
            return getattr(self.client, method)(url, headers=headers, **kw)

        return call

    def create_index(self, name: str = "docs", **fields) -> dict:
        r = self.post("/v1/indexes", json={"name": name, **fields})
        assert r.status_code == 201, r.text
        return r.json()

    def upload(self, index_id: str, filename: str, content: bytes, **fields):
        data = {k: (str(v) if not isinstance(v, str) else v) for k, v in fields.items() if v is not None}
        return self.post(f"/v1/indexes/{index_id}/documents", files={"file": (filename, content)}, data=data)

    def search(self, query: str, index_id: str | None = None, **body):
        url = f"/v1/indexes/{index_id}/search" if index_id else "/v1/search"
        return self.post(url, json={"query": query, **body})


@pytest.fixture
def app_factory(settings_factory, embedders):
    clients: list[TestClient] = []

    def make(registry: EmbedderRegistry | None = None, **overrides: Any):
        # registry: an app-private EmbedderRegistry (e.g. with a stub model registered),
        # so a test that swaps the model never changes the session's shared one.
        settings = settings_factory(**overrides)
        ctx = build_context(settings, embedders=registry or embedders)
        client = TestClient(create_app(settings, ctx=ctx))
        client.__enter__()
        clients.append(client)
        # The startup warm-up (encoder, parser pool, one search) runs in a thread; tests that
        # count model calls or watch the parser pool start after it, as a client after /v1/ready would.
        client.app.state.readiness.wait(120)
        return client, ctx

    yield make
    for c in clients:
        c.__exit__(None, None, None)
        c.app.state.ctx.vectors.close()
        c.app.state.ctx.db.dispose()


def new_key(ctx, project: str = "acme", role: str = "admin") -> str:
    return AuthService(ctx.db).create_key(project, role)[0]


@pytest.fixture
def api(app_factory) -> Api:
    client, ctx = app_factory()
    return Api(client, new_key(ctx))
