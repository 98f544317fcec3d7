"""Streams end to end: a viewer chooses a scene nobody rendered ahead and plays it from its first segment.

A real server and render worker, the protocol over a websocket, and the stream played in headless Chromium.
"""

from __future__ import annotations

import io
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest
import redis
import yaml
from playwright.sync_api import Page
from reelfork.generation.render.c2pa import read_provenance
from reelfork.generation.render.labels import read_aigc
from reelfork.server.queue import keys
from websockets.sync.client import ClientConnection, connect

from tests.helpers.media import assert_labelled, assert_vertical_h264_aac
from tests.helpers.processes import ServerProcess
from tests.helpers.render import assert_badge_shown
from tests.helpers.stories import FERRY_LINES, ferry_story
from tests.helpers.viewer import ws_url

pytestmark = [pytest.mark.browser, pytest.mark.slow]

STORY_ID = "long-hall"


def long_story() -> dict[str, Any]:
    return ferry_story(
        STORY_ID, "Long Hall",
        ("deck", FERRY_LINES[:6], [{"id": "ask", "label": "Ask him", "target": "railing"},
                                   {"id": "wait", "label": "Wait", "target": "horn"}]),
        ("railing", FERRY_LINES * 12, []),
        ("horn", FERRY_LINES[:2], []),
    )


@pytest.fixture
def streaming_server(redis_server: str, tmp_path: Path) -> Iterator[ServerProcess]:
    stories = tmp_path / "stories"
    stories.mkdir()
    (stories / "story.yaml").write_text(yaml.safe_dump(long_story()))
    server = ServerProcess(
        tmp_path / "data",
        REELFORK_REDIS_URL=redis_server,
        REELFORK_STORIES_DIR=str(stories),
        REELFORK_SEED_STORIES="false",
        REELFORK_WARM_AUTHORED="false",
        REELFORK_WRITE_WORKERS="0",
        REELFORK_PRODUCE_WORKERS="0",
        # The animatic at 540x960: the long clip (96 lines, minutes of picture) renders for seconds even on a quiet
        # machine, where the animatic runs far faster than real time, so the player starts before its last segment
        # is stored.
        REELFORK_RENDER_PROFILE="animatic",
    )
    yield server
    server.stop()


def expect(websocket: ClientConnection, kind: str) -> dict[str, Any]:
    """The next frame of ``kind``, past any ``clip`` frame."""
    while True:
        message: dict[str, Any] = json.loads(websocket.recv(timeout=120))
        if message["type"] != "clip" or kind == "clip":
            assert message["type"] == kind, message
            return message


def choose_cold(websocket: ClientConnection) -> tuple[dict[str, Any], float, dict[str, Any]]:
    """Start, and choose ``ask`` as soon as the first scene arrives: its own render is still running, so the
    scene chosen is not rendered ahead. The first scene, when the choice was sent, and the scene chosen."""
    websocket.send(json.dumps({"type": "start", "story": STORY_ID}))
    expect(websocket, "session")
    first = expect(websocket, "scene")
    assert first["stream"] is not None and first["choices"][0]["stream"] is None
    chose = time.time()
    websocket.send(json.dumps({"type": "choose", "choice": "ask"}))
    return first, chose, expect(websocket, "scene")


def stream_record(client: redis.Redis, stream_url: str) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """What the server keeps of a viewer's stream: the viewer stream, its picture stream's plan and segments."""
    stream_id = re.findall(r"/v1/streams/([0-9a-f]{32})/", stream_url)[0]
    viewer = json.loads(client.get(keys.viewer_stream(stream_id)))  # type: ignore[arg-type]
    raw: dict[str, str] = client.hgetall(keys.stream(viewer["picture"]))  # type: ignore[assignment]
    plan = json.loads(raw.pop("plan"))
    return viewer, plan, sorted((json.loads(value) for value in raw.values()), key=lambda s: s["index"])


# Plays a stream with hls.js (Chromium's native HLS starts an EVENT playlist at its live edge, skipping what came
# before, whatever EXT-X-START says), recording wall-clock times on this machine's clock, which the server shares.
PLAYER = """
async (url) => {
  const video = document.createElement("video");
  video.muted = true;
  document.body.append(video);
  const times = {playing: null, ended: null, waiting: 0, error: null, position: null, played: []};
  window.__times = times;
  video.addEventListener("timeupdate", () => {
    if (video.currentTime > 0 && !times.playing) times.playing = Date.now() / 1000;
  });
  video.addEventListener("waiting", () => { times.waiting += 1; });
  video.addEventListener("ended", () => {
    times.ended = Date.now() / 1000;
    times.position = video.currentTime;
    for (let i = 0; i < video.played.length; i++) times.played.push([video.played.start(i), video.played.end(i)]);
  });
  video.addEventListener("error", () => { times.error = video.error && video.error.message; });
  const hls = new Hls({enableWorker: false, startPosition: 0});
  hls.on(Hls.Events.ERROR, (event, data) => { if (data.fatal) times.error = data.details; });
  hls.loadSource(url);
  hls.attachMedia(video);
  video.playbackRate = 16;
  await video.play();
}
"""


def until(page: Page, event: str, timeout: float) -> dict[str, Any]:
    """The player's record once ``event`` happened (the page's CSP forbids ``wait_for_function``'s eval)."""
    deadline = time.monotonic() + timeout
    while True:
        times: dict[str, Any] = page.evaluate("() => window.__times")
        if times[event] is not None or times["error"] is not None or time.monotonic() > deadline:
            return times
        time.sleep(0.1)


def test_a_cold_choice_plays_from_its_first_segment_before_the_last_is_stored(
    page: Page, streaming_server: ServerProcess, redis_server: str, tmp_path: Path
) -> None:
    # The page is ready first (the animatic renders many times faster than real time: a page loaded after the
    # choice could find the clip complete); the stream starts as soon as the scene names it.
    page.goto(f"{streaming_server.url}/")
    page.set_content("<html><body></body></html>")
    page.add_script_tag(url="/vendor/hls.light.min.js")
    websocket = connect(ws_url(streaming_server.url))
    _, chose, chosen = choose_cold(websocket)
    page.evaluate(PLAYER, chosen["stream"])
    assert chosen["scene"] == "railing"
    assert chosen["stream"] is not None and chosen["clip"] is None, chosen
    playing = until(page, "playing", 60)
    assert playing["playing"] is not None, playing
    poster = httpx.get(chosen["poster"])
    assert poster.status_code == 200 and poster.content[:3] == b"\xff\xd8\xff"  # a JPEG
    ended = until(page, "ended", 180)
    assert ended["ended"] is not None and ended["error"] is None, ended

    client = redis.Redis.from_url(redis_server, decode_responses=True)
    viewer, plan, segments = stream_record(client, chosen["stream"])
    # Not rendered ahead: its first segment was stored after the choice; and the server handed out the stream,
    # and the player played it, before its last segment was stored.
    assert segments[0]["stored_at"] > chose
    last = segments[-1]["stored_at"]
    assert viewer["opened"] < last and playing["playing"] < last, (viewer["opened"], playing["playing"], last)

    # The complete playlist: closed, every segment in order, their lengths adding up to the planned duration.
    playlist = httpx.get(chosen["stream"]).text
    assert playlist.startswith("#EXTM3U") and "#EXT-X-PLAYLIST-TYPE:EVENT" in playlist
    assert "#EXT-X-START:TIME-OFFSET=0" in playlist and playlist.rstrip().endswith("#EXT-X-ENDLIST")
    lengths = [float(value) for value in re.findall(r"#EXTINF:([0-9.]+),", playlist)]
    assert re.findall(r"^(\d+)\.m4s$", playlist, re.MULTILINE) == [str(n) for n in range(len(lengths))]
    assert len(lengths) == len(segments) > 5
    assert abs(sum(lengths) - chosen["duration"]) < 1e-3
    assert chosen["duration"] == plan["frames"] / plan["fps"]
    # Played to the end without a gap: one played range, from the start to the duration.
    (played,) = ended["played"]
    assert played[0] < 0.1 and abs(played[1] - chosen["duration"]) < 0.2, ended

    # The labels on the stream: AIGC and a C2PA manifest in its init segment, the visible mark on its first seconds.
    base = chosen["stream"].rsplit("/", 1)[0]
    init, first = (httpx.get(f"{base}/{name}").content for name in ("init.mp4", "0.m4s"))
    (tmp_path / "init.mp4").write_bytes(init)
    assert read_aigc(tmp_path / "init.mp4") is not None
    provenance = read_provenance(tmp_path / "init.mp4")
    assert provenance is not None and provenance.valid and provenance.created_by_ai, provenance
    with av.open(io.BytesIO(init + first), "r", format="mp4") as container:
        assert sorted(stream.type for stream in container.streams) == ["audio", "video"]
        frame = next(iter(container.decode(video=0)))
        assert_badge_shown(np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8))

    # Then the complete MP4 follows in a clip frame, with the stream again; the same planned duration; all labels.
    clip = expect(websocket, "clip")
    while clip["url"] is None:
        clip = expect(websocket, "clip")
    assert clip["scene"] == "railing" and clip["stream"] == chosen["stream"] and clip["duration"] == chosen["duration"]
    (tmp_path / "railing.mp4").write_bytes(httpx.get(clip["url"]).content)
    assert abs(assert_vertical_h264_aac(tmp_path / "railing.mp4") - chosen["duration"]) < 0.1
    assert_labelled(tmp_path / "railing.mp4")
    websocket.close()
