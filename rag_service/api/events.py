"""GET /v1/events: the project's lifecycle events as Server-Sent Events (any role)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Header, Query
from sse_starlette.sse import EventSourceResponse

from rag_service.api.deps import boundary, get_ctx, reader
from rag_service.api.schemas.common import KEYED, errors_for
from rag_service.context import ServiceContext
from rag_service.services.access import Boundary
from rag_service.services.common import Principal
from rag_service.services.stream import EventStream, parse_position, parse_types

router = APIRouter(tags=["events"])


@router.get("/v1/events", response_class=EventSourceResponse,
            responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
                             "description": "`event: <type>`, `id: <seq>`, `data: <JSON body, as webhooks get it>`"}}
            | errors_for(*KEYED))
def stream_events(last_event_id: str | None = Header(None, alias="Last-Event-ID", max_length=40),
                  last_event_id_query: int | None = Query(None, alias="last_event_id", ge=0),
                  types: str | None = Query(None, max_length=1000, description="comma-separated event types"),
                  timeout_s: float | None = Query(None, gt=0, le=86400,
                                                  description="end the stream after this many seconds (polling clients)"),
                  p: Principal = Depends(reader), under: Boundary = Depends(boundary),
                  ctx: ServiceContext = Depends(get_ctx)) -> EventSourceResponse:
    """Resumes after Last-Event-ID (header or `last_event_id`); without one, starts at now."""
    stream = EventStream(ctx, p, under, parse_position(last_event_id, last_event_id_query), parse_types(types),
                         timeout_s)
    # X-Event-Position: the id the stream starts after (a client that connects without
    # Last-Event-ID learns where "now" is, and can resume from there later).
    return EventSourceResponse(stream.events(), ping=15,
                               headers={"Cache-Control": "no-store", "X-Event-Position": str(stream.position)})
