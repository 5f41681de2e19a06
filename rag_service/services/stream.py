"""The live event stream of a project (`GET /v1/events`): the outbox read back in order.

Each reader polls the event table from its position; a client that reconnects with
Last-Event-ID continues where it stopped and loses nothing within the retention
(RAG_EVENT_RETENTION_HOURS). Events of indexes the reader's data boundary may not read are
left out, as a listing leaves those indexes out.
"""

from __future__ import annotations

import json
import time
from typing import Any, AsyncIterator

import anyio
from sqlalchemy import func
from sqlmodel import select

from rag_service.context import ServiceContext
from rag_service.models import Event
from rag_service.services.access import AccessService, Boundary
from rag_service.services.common import Principal
from rag_service.services.events import body_of, check_event_types, oldest_seq, read_after
from rag_service.services.values import parse_int64

POLL_S = 0.25
BOUNDARY_REFRESH_S = 5.0


def parse_types(raw: str | None) -> set[str] | None:
    if not raw:
        return None
    return check_event_types((t.strip() for t in raw.split(",") if t.strip()), "types")


def parse_position(header: str | None, query: int | None) -> int | None:
    """Last-Event-ID (header, or the query parameter for clients that cannot set headers)."""
    if header is not None and header.strip():
        return parse_int64(header, "Last-Event-ID", minimum=0)
    return query


class EventStream:
    def __init__(self, ctx: ServiceContext, principal: Principal, boundary: Boundary, after: int | None,
                 types: set[str] | None, timeout_s: float | None = None) -> None:
        self.ctx, self.principal, self.boundary = ctx, principal, boundary
        self.after, self.types, self.timeout_s = after, types, timeout_s
        self.access = AccessService(ctx)
        self.access.require_role(principal, "read")
        self.position, self.notice = self._start()

    def _start(self) -> tuple[int, dict[str, Any] | None]:
        """(position, a notice when events after the client's position are past retention)."""
        with self.ctx.db.session() as s:
            if self.after is None:  # a new reader starts at the head: what happens from now on
                return int(s.exec(select(func.max(Event.seq))).one() or 0), None
            oldest = oldest_seq(s)
        if oldest is not None and self.after < oldest - 1:
            return self.after, {"last_event_id": self.after, "oldest_available": oldest,
                                "message": "events between these ids may be past retention (RAG_EVENT_RETENTION_HOURS)"}
        return self.after, None

    def _excluded(self) -> list[str]:
        return [e["index_id"] for e in self.access.partition(self.principal, "read", self.boundary)[1]]

    def _read(self, after: int, excluded: list[str]) -> tuple[list[Event], int]:
        with self.ctx.db.session() as s:
            return read_after(s, self.principal.project_id, after, types=self.types, excluded_indexes=excluded)

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        after = self.position
        if self.notice is not None:
            yield {"event": "stream.truncated", "data": json.dumps(self.notice)}
        excluded, refreshed = [], float("-inf")
        ends = time.monotonic() + self.timeout_s if self.timeout_s else float("inf")
        while time.monotonic() < ends:
            if time.monotonic() - refreshed > BOUNDARY_REFRESH_S:
                excluded, refreshed = await anyio.to_thread.run_sync(self._excluded), time.monotonic()
            rows, after = await anyio.to_thread.run_sync(self._read, after, excluded)
            for event in rows:
                yield {"event": event.type, "id": str(event.seq), "data": body_of(event)}
            if not rows:
                await anyio.sleep(min(POLL_S, max(0.0, ends - time.monotonic())))
