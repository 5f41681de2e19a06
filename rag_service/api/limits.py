"""Request-size limits enforced while the body streams in.

The Content-Length check in the app refuses a declared oversized body at once;
this middleware covers bodies that declare nothing (chunked transfer) or lie: it
counts bytes as the server hands them over and stops the request at the limit,
so the service never holds more than one over-limit body's worth of a request.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rag_service.api.errors import BodyTooLarge, error_response


class StreamingBodyLimit:
    def __init__(self, app: ASGIApp, limit_bytes: int) -> None:
        self.app = app
        self.limit_bytes = limit_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit_bytes:
                    raise BodyTooLarge(self.limit_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge as exc:
            # Normally the app's handler already answered; this covers a body read
            # outside a route (a middleware), where no handler is in the way.
            if started:
                raise
            response = error_response("payload_too_large", exc.detail, limit_bytes=exc.limit_bytes)
            await response(scope, receive, send)
