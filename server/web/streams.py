"""Viewers' HLS streams: the growing playlist, the init segment and the segments (``server/streaming.py``).

A playlist changes while the stream grows, so it is never cached; a segment never changes once it exists.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Response
from fastapi.responses import FileResponse
from reelfork.generation.render.segments import INIT
from reelfork.server.streaming import PLAYLIST
from reelfork.server.web.dependencies import RuntimeDep
from reelfork.server.web.problems import ERRORS, NOT_FOUND

router = APIRouter(prefix="/v1/streams", tags=["streams"], responses={**ERRORS, **NOT_FOUND})

StreamId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="The viewer's stream, from a `stream` URL")]
PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
SEGMENT_TYPE = "video/iso.segment"
BINARY = {"type": "string", "format": "binary"}
IMMUTABLE = {"Cache-Control": "public, max-age=31536000, immutable"}


def content(media_type: str, schema: dict[str, str]) -> dict[int | str, dict[str, Any]]:
    return {200: {"content": {media_type: {"schema": schema}}}}


def missing(stream: str, what: str) -> HTTPException:
    return HTTPException(404, f"stream {stream} has no {what} (unknown stream, or not stored yet)")


@router.get(f"/{{stream}}/{PLAYLIST}", response_class=Response, responses=content(PLAYLIST_TYPE, {"type": "string"}))
async def stream_playlist(stream: StreamId, runtime: RuntimeDep) -> Response:
    """The stream's HLS media playlist: an ``EVENT`` playlist of the segments stored so far, ended once complete."""
    text = await runtime.streaming.playlist(stream)
    if text is None:
        raise missing(stream, "playlist")
    return Response(text, media_type=PLAYLIST_TYPE, headers={"Cache-Control": "no-cache"})


@router.get(f"/{{stream}}/{INIT}", response_class=FileResponse, responses=content("video/mp4", BINARY))
async def stream_init(stream: StreamId, runtime: RuntimeDep) -> FileResponse:
    """The stream's init segment (fragmented MP4: both tracks, the ``AIGC`` label)."""
    path = await runtime.streaming.file(stream, None)
    if path is None:
        raise missing(stream, "init segment")
    return FileResponse(path, media_type="video/mp4", headers=IMMUTABLE)


@router.get("/{stream}/{index}.m4s", response_class=FileResponse, responses=content(SEGMENT_TYPE, BINARY))
async def stream_segment(
    stream: StreamId, index: Annotated[int, Path(ge=0, le=100_000)], runtime: RuntimeDep
) -> FileResponse:
    """Segment ``index`` of the stream: the picture's segment with the viewer's voice."""
    path = await runtime.streaming.file(stream, index)
    if path is None:
        raise missing(stream, f"segment {index}")
    return FileResponse(path, media_type=SEGMENT_TYPE, headers=IMMUTABLE)
