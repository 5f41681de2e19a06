"""Engine and sessions for the metadata database (SQLite by default, PostgreSQL by URL)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from sqlalchemy import event, inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlmodel import Session, SQLModel, create_engine

from rag_service import models  # noqa: F401  (registers the tables)
from rag_service.errors import RetrievalUnavailable


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            # WAL lets readers run beside the one writer; busy_timeout makes a
            # second writer wait for the lock instead of failing at once.
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def create_schema(engine: Engine) -> None:
    existed = set(inspect(engine).get_table_names())
    SQLModel.metadata.create_all(engine)
    # Tables create_all just made have every column: only older ones are reflected (a column
    # reflection is a few queries per table, most of a fresh PostgreSQL schema's start-up).
    add_missing_columns(engine, existed)


def add_missing_columns(engine: Engine, tables: set[str] | None = None) -> list[str]:
    """create_all makes new tables but never alters old ones: a column added to a model since a
    database was created is added here, with its server default (every added column has one, or
    is nullable). Only additions: a renamed or retyped column needs a real migration.
    `tables`: the names to check (default: every existing table)."""
    added = []
    existing_tables = set(inspect(engine).get_table_names()) if tables is None else tables
    with engine.begin() as conn:
        for table in SQLModel.metadata.sorted_tables:
            if table.name not in existing_tables:
                continue
            have = {c["name"] for c in inspect(conn).get_columns(table.name)}
            for column in table.columns:
                if column.name in have:
                    continue
                ddl = f"ALTER TABLE {conn.dialect.identifier_preparer.quote(table.name)} ADD COLUMN " \
                      f"{conn.dialect.identifier_preparer.quote(column.name)} {column.type.compile(conn.dialect)}"
                if column.server_default is not None:
                    ddl += f" DEFAULT '{column.server_default.arg}'"
                conn.execute(text(ddl))
                added.append(f"{table.name}.{column.name}")
    return added


class Database:
    """Owns the engine; services open short sessions through it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)

    def create_schema(self) -> None:
        create_schema(self.engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        try:
            with Session(self.engine, expire_on_commit=False) as session:
                yield session
        except OperationalError as exc:
            if _is_unreachable(exc):
                raise RetrievalUnavailable("metadata database unreachable", component="database") from exc
            raise

    def ping(self) -> None:
        from sqlalchemy import text

        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()


def _is_unreachable(exc: DBAPIError) -> bool:
    msg = str(exc).lower()
    return any(s in msg for s in ("connection", "could not connect", "server closed", "unable to open", "terminating"))
