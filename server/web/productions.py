"""Linear productions: queue one on the workers, follow it, download its outputs."""

from __future__ import annotations

import time
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, JsonValue, ValidationError
from reelfork.generation.production.pipeline import Counters, ProductionError, read_json
from reelfork.narrative.ids import Identifier
from reelfork.narrative.story import Story
from reelfork.server.productions import (
    ProductionRecords,
    ProductionRequest,
    checked_spec,
    production_folder,
    production_id,
)
from reelfork.server.queue.payloads import ProduceJob
from reelfork.server.web.bodies import json_body, read_body
from reelfork.server.web.dependencies import RuntimeDep, creator
from reelfork.server.web.problems import CREATOR_ERRORS, ERRORS, NOT_FOUND, TOO_LARGE, Located, Refused, where

router = APIRouter(
    prefix="/v1/productions",
    tags=["productions"],
    dependencies=[Depends(creator)],
    responses={**ERRORS, **CREATOR_ERRORS},
)


class ProductionAccepted(BaseModel):
    id: str
    created: bool
    """False when the same request was already made: this is that production."""
    status: str
    """Where to follow it: ``/v1/productions/<id>``."""


class StageProgress(BaseModel):
    done: int
    total: int
    note: str


class ProductionStatus(BaseModel):
    id: str
    status: Literal["queued", "running", "retrying", "failed", "done"]
    error: str | None
    progress: dict[str, StageProgress]
    """Per stage (draft, translate, render, assemble): how far it is."""
    runs: list[Counters]
    """What each run (each attempt) did."""
    manifest: dict[str, JsonValue] | None = None
    """When done: the production's ``manifest.json`` (episodes, durations, locales, checksums, labels)."""
    files: str | None = None
    """When done: where the outputs are (``/v1/productions/<id>/files/``)."""


@router.post("", status_code=202, responses={**NOT_FOUND, **TOO_LARGE}, openapi_extra=json_body(ProductionRequest))
async def start_production(runtime: RuntimeDep, request: Request) -> ProductionAccepted:
    """Queue a linear production on the workers; the same request again returns the same production."""
    body = await read_body(request, ProductionRequest)  # here, after the router's creator check, not before it
    story: Story | None = None
    try:
        if body.story_id is not None:
            loaded = await runtime.store.story(body.story_id, body.version)
            if loaded is None:
                version = f" version {body.version}" if body.version else ""
                raise HTTPException(404, f"no story {body.story_id!r}{version}")
            story = loaded.story
        elif body.story is not None:
            story = Story.model_validate(body.story)
        spec = checked_spec(body, story)
    except ProductionError as exc:
        lines = str(exc).splitlines()
        raise Refused([Located(severity="error", where="body", message=line) for line in lines]) from None
    except ValidationError as exc:
        located = [Located(severity="error", where=where(("story", *e["loc"])), message=e["msg"]) for e in exc.errors()]
        raise Refused(located) from None
    production = production_id(spec)
    records = ProductionRecords(runtime.redis)
    created = await records.create(production, spec)
    record = await records.get(production)
    if created or (record is not None and record["status"] == "failed"):
        await records.update(production, status="queued", error="")
        job = ProduceJob(production=production)
        await runtime.queue.enqueue("produce", f"produce:{production}", job, time.time())
    return ProductionAccepted(id=production, created=created, status=f"/v1/productions/{production}")


@router.get("/{production}", responses=NOT_FOUND)
async def production_status(runtime: RuntimeDep, production: Identifier) -> ProductionStatus:
    """Status, per-stage progress, and (when done) the manifest with links to every output."""
    record = await ProductionRecords(runtime.redis).get(production)
    if record is None:
        raise HTTPException(404, f"no production {production!r}")
    folder = production_folder(runtime.settings, production)
    progress = read_json(folder / "progress.json")
    runs = read_json(folder / "runs.json")
    done = record["status"] == "done"
    return ProductionStatus(
        id=production,
        status=record["status"],
        error=record.get("error") or None,
        progress=progress["stages"] if isinstance(progress, dict) else {},
        runs=[run.get("counters", {}) for run in runs] if isinstance(runs, list) else [],
        manifest=read_json(folder / "manifest.json") if done else None,
        files=f"/v1/productions/{production}/files/" if done else None,
    )


FILE = {"schema": {"type": "string", "format": "binary"}}


@router.get(
    "/{production}/files/{path:path}",
    response_class=FileResponse,
    responses={
        **NOT_FOUND,
        200: {
            "description": "The file.",
            "content": {
                "application/json": FILE,
                "video/mp4": FILE,
                "text/vtt": FILE,
                "application/vnd.apple.mpegurl": FILE,
                "video/mp2t": FILE,
            },
        },
    },
)
async def production_file(runtime: RuntimeDep, production: Identifier, path: str) -> FileResponse:
    """Download one output (``manifest.json``, an episode MP4, a WebVTT, an HLS playlist or segment)."""
    folder = production_folder(runtime.settings, production).resolve()
    try:
        target = (folder / path).resolve()
        found = target.is_relative_to(folder) and target.is_file() and not target.name.startswith(".")
    except (ValueError, OSError):  # a NUL byte, a name too long for the file system
        found = False
    if not found:
        raise HTTPException(404, f"no file {path!r} in production {production!r}")
    return FileResponse(target)
