"""Creators' analytics: a story version's audience report, its raw events, and erasing a viewer's events."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from reelfork.server.analytics import erasure, export
from reelfork.server.analytics.report import AnalyticsReport, report
from reelfork.server.store import StoryVersion
from reelfork.server.web.dependencies import RuntimeDep, creator
from reelfork.server.web.problems import CREATOR_ERRORS, ERRORS, NOT_FOUND
from reelfork.server.web.protocol import VIEWER_PATTERN

router = APIRouter(prefix="/v1", tags=["analytics"], dependencies=[Depends(creator)],
                   responses={**ERRORS, **CREATOR_ERRORS})

class ErasedEvents(BaseModel):
    viewer: str
    deleted: int
    """Events deleted. The aggregate counters stay: they hold no viewer id."""


async def loaded(runtime: RuntimeDep, story_id: str, version: int | None) -> StoryVersion:
    found = await runtime.store.story(story_id, version)
    if found is None:
        raise HTTPException(404, f"no story {story_id!r}" + (f" version {version}" if version else ""))
    return found


@router.get("/stories/{story_id}/analytics", responses=NOT_FOUND)
async def story_analytics(
    runtime: RuntimeDep,
    story_id: str,
    version: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    locale: str | None = None,
    look: str | None = None,
) -> AnalyticsReport:
    """The audience of a story version (default: the latest): sessions, scenes, choices, episodes, paywall,
    endings and retention, over ``[since, until)`` by the hour, for one ``locale`` or ``look`` if given."""
    story = await loaded(runtime, story_id, version)
    return await report(runtime.redis, story, since=since, until=until, locale=locale, look=look)


EVENTS_CONTENT = {
    "text/csv": {"schema": {"type": "string"}},
    "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
}


@router.get(
    "/stories/{story_id}/analytics/events",
    response_class=Response,
    responses={**NOT_FOUND, 200: {"description": "The kept events, oldest first.", "content": EVENTS_CONTENT}},
)
async def story_events(
    runtime: RuntimeDep,
    story_id: str,
    version: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    format: Literal["csv", "parquet"] = "csv",
) -> Response:
    """A story version's raw playback events, as CSV or Parquet, for pandas, DuckDB and the like."""
    story = await loaded(runtime, story_id, version)
    source = export.events(runtime.redis, story.story.id, story.version, since, until)
    name = f"{story.story.id}-v{story.version}-events"
    if format == "parquet":
        body = await export.parquet(source)
        return Response(body, media_type="application/vnd.apache.parquet",
                        headers={"Content-Disposition": f'attachment; filename="{name}.parquet"'})
    return StreamingResponse(export.csv_lines(source), media_type="text/csv",
                             headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})


@router.delete("/viewers/{viewer}/events")
async def forget_viewer(
    runtime: RuntimeDep, viewer: Annotated[str, Path(pattern=VIEWER_PATTERN)]
) -> ErasedEvents:
    """Delete every kept event of a viewer (their public id), in every story."""
    await runtime.analytics.flush()  # events still buffered here would otherwise outlive the request
    return ErasedEvents(viewer=viewer, deleted=await erasure.forget(runtime.redis, viewer))
