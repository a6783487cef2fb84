"""The request body limit (413), as ASGI middleware.

Hand-written because neither uvicorn nor Starlette bounds a request body; this one refuses a
too-large ``Content-Length`` before reading anything, and stops a chunked upload as soon as it
passes the limit, so memory stays bounded whatever a client sends.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse


class BodyTooLargeError(Exception):
    """The body passed the limit while being read (a chunked upload, or a lying length)."""


class BodyLimit:
    """Refuses request bodies over ``max_bytes`` with 413 and a one-line JSON error."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    def message(self) -> str:
        return f"request body over the limit of {self.max_bytes:,} bytes; send a smaller image"

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_bytes:
            response = JSONResponse({"error": self.message()}, status_code=413)
            return await response(scope, receive, send)
        received = 0

        async def limited_receive() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLargeError(self.message())
            return message

        await self.app(scope, limited_receive, send)
