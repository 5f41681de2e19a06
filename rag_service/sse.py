"""Reading a Server-Sent Events stream (the service's `GET /v1/events`) on the client side."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable, Iterator


@dataclass
class StreamEvent:
    type: str
    id: int | None
    data: dict[str, Any]


def parse_sse(lines: Iterable[str]) -> Iterator[StreamEvent]:
    """Events from the stream's lines (the text/event-stream format: fields, blank line ends one)."""
    kind, ident, data = "message", None, []
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data:
                text = "\n".join(data)
                try:
                    body = json.loads(text)
                except ValueError:
                    body = {"text": text}
                yield StreamEvent(kind, int(ident) if ident and ident.isdigit() else None,
                                  body if isinstance(body, dict) else {"value": body})
            kind, ident, data = "message", None, []
            continue
        if line.startswith(":"):
            continue  # a comment: the server's keep-alive ping
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            kind = value
        elif field == "id":
            ident = value
        elif field == "data":
            data.append(value)
