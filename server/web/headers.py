"""Security headers on every HTTP response: no sniffing, no framing, no referrer, and a CSP for the pages."""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DOCS = ("/docs", "/redoc")
"""FastAPI's API explorer pages load their scripts from a CDN: the player's CSP would blank them."""


def content_security_policy(public_url: str | None) -> str:
    """The player's and the creator view's policy: their own scripts and styles, media from here or the CDN."""
    media, connect, images = "'self' blob:", "'self'", "'self' data: blob:"
    if public_url is not None:
        parts = urlsplit(public_url)
        media += f" {parts.scheme}://{parts.netloc}"
        connect += f" {parts.scheme}://{parts.netloc}"  # hls.js fetches a stream's playlist and segments
        images += f" {parts.scheme}://{parts.netloc}"  # a clip's poster, the cast's portraits
    return "; ".join([
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        f"img-src {images}",
        f"media-src {media}",
        f"connect-src {connect}",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ])


class SecurityHeaders:
    """Pure ASGI middleware adding the headers to each response's start."""

    def __init__(self, app: ASGIApp, public_url: str | None) -> None:
        self.app = app
        self.policy = content_security_policy(public_url)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        page = not str(scope["path"]).startswith(DOCS)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "no-referrer")
                if page:
                    headers.setdefault("Content-Security-Policy", self.policy)
                    headers.setdefault("X-Frame-Options", "DENY")
            await send(message)

        await self.app(scope, receive, with_headers)
