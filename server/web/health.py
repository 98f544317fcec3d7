"""Liveness for load balancers (``/healthz``) and Prometheus metrics (``/metrics``)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, HTTPException, Response
from pydantic import BaseModel
from reelfork.server.metrics import render as render_metrics
from reelfork.server.web.dependencies import RuntimeDep

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok"]
    queue: dict[str, int]
    """Jobs per kind and state: ``render:queued``, ``render:running``, ``render:retrying``, ..."""


@router.get("/healthz")
async def healthz(runtime: RuntimeDep) -> Health:
    """OK once Redis answers; with the queue's depth."""
    await runtime.redis.ping()
    return Health(status="ok", queue=await runtime.queue.depth())


@router.get("/metrics", include_in_schema=False)
async def metrics(runtime: RuntimeDep) -> Response:
    if not runtime.settings.expose_metrics:
        raise HTTPException(404, "Not Found")
    body = render_metrics(await runtime.queue.depth())
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")
