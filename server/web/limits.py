"""The request-body limit: refused from ``content-length`` before a byte is read, or counted while it streams."""

from __future__ import annotations

from fastapi import HTTPException
from fastapi.responses import JSONResponse
from reelfork.server.web.problems import Message as Refusal
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once a streamed body passes the limit: an ``HTTPException``, so FastAPI's body reading
    passes it on unchanged and the app answers 413 in the usual ``{"detail": ...}`` shape."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes (REELFORK_MAX_BODY_BYTES)")


class BodyLimit:
    """Pure ASGI middleware: an HTTP request whose body passes ``limit`` bytes gets 413, never a parse."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            status = 413 if declared.isdigit() else 400
            message = str(BodyTooLarge(self.limit).detail) if status == 413 else "content-length is not a number"
            await JSONResponse(Refusal(detail=message).model_dump(), status_code=status)(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        await self.app(scope, counted, send)
