"""The FastAPI application: creators' REST API, the play websocket, media and the web player."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from reelfork.server.runtime import Runtime
from reelfork.server.settings import Settings
from reelfork.server.web import analytics, asyncapi, cast, demo, experiments, health, productions, stories, streams
from reelfork.server.web.headers import SecurityHeaders
from reelfork.server.web.limits import BodyLimit
from reelfork.server.web.play import Connection
from reelfork.server.web.problems import Refused, invalid_request, refused

CLIENT_DEMO = Path(str(resources.files("reelfork.client_demo")))
"""The web player and creator view: package data of ``reelfork.client_demo`` (the ``client-demo/`` folder)."""
CHARTS = CLIENT_DEMO / "vendor" / "chart.umd.min.js"
"""Chart.js for the creator's analytics page: npm's ``chart.js``, copied there by ``scripts/dev`` (git-ignored)."""

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    runtime = Runtime(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        # Everything loaded so far (the libraries, the renderers, the seeded stories) lives as long as the server.
        # Frozen, the collector stops walking it: unfrozen, its full collections paused play for 0.4-0.5 s at
        # 1,000 viewers (bench/play.py), long enough to miss a choice window's close. What play allocates mostly
        # dies young (messages, frames), so the young generation is collected less often, and the full
        # collections, which still pause 0.1-0.2 s at 1,000 viewers, come a fifth as often.
        gc.freeze()
        gc.set_threshold(10_000, 10, 50)
        try:
            yield
        finally:
            await runtime.stop()

    docs, redoc = ("/docs", "/redoc") if settings.api_docs else (None, None)
    app = FastAPI(title="reelfork", version="0.1.0", lifespan=lifespan, docs_url=docs, redoc_url=redoc)
    app.state.runtime = runtime
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(SecurityHeaders, public_url=settings.public_url)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(Refused, refused)
    app.include_router(health.router)
    app.include_router(stories.router)
    app.include_router(cast.router)
    app.include_router(productions.router)
    app.include_router(analytics.router)
    app.include_router(experiments.router)
    app.include_router(asyncapi.router)
    app.include_router(demo.router)
    app.include_router(streams.router)

    @app.websocket("/v1/play")
    async def play(websocket: WebSocket) -> None:
        await Connection(websocket, runtime).serve()

    if not CHARTS.is_file():
        log.warning("%s is missing: the analytics page cannot draw its charts; scripts/dev serve installs it "
                    "(npm ci, then a copy of node_modules/chart.js/dist/chart.umd.min.js)", CHARTS)
    settings.media_dir.mkdir(parents=True, exist_ok=True)
    app.mount("/media", StaticFiles(directory=settings.media_dir), name="media")
    app.mount("/", StaticFiles(directory=CLIENT_DEMO, html=True), name="player")
    return app
