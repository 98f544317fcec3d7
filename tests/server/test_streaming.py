"""A worker killed mid-stream: another worker resumes the stream from its last stored segment.

A real redis-server, a server, and worker hosts as separate processes (as in test_fleet.py); the first worker
is killed with SIGKILL while it renders a clip in segments.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import websockets
import yaml
from reelfork.generation.render.segments import decode_times, fragment_samples, timescales
from reelfork.server.queue import keys

from tests.helpers.processes import ServerProcess, WorkerProcess
from tests.helpers.stories import FERRY_LINES, ferry_story
from tests.helpers.viewer import Viewer, ws_url

STORY_ID = "night-ferry"


def story() -> dict[str, Any]:
    return ferry_story(STORY_ID, "Night Ferry", ("deck", FERRY_LINES[:6] * 3, []))


def streams(client: redis.Redis) -> dict[str, dict[str, str]]:
    return {key: client.hgetall(key) for key in client.scan_iter(keys.stream("*"))}  # type: ignore[misc]


@pytest.mark.slow
async def test_a_stream_killed_mid_render_resumes_on_another_worker_without_a_gap_or_a_repeat(
    redis_server: str, tmp_path: Path
) -> None:
    stories = tmp_path / "stories"
    stories.mkdir()
    (stories / "story.yaml").write_text(yaml.safe_dump(story()))
    data_dir = tmp_path / "shared-data"  # one folder for all: a shared volume in a real fleet
    client = redis.Redis.from_url(redis_server, decode_responses=True)
    settings: dict[str, Any] = {"REELFORK_RENDER_PROFILE": "animatic"}
    server = ServerProcess(
        data_dir, REELFORK_REDIS_URL=redis_server, REELFORK_RENDER_WORKERS="0", REELFORK_WRITE_WORKERS="0",
        REELFORK_PRODUCE_WORKERS="0", REELFORK_WARM_AUTHORED="false", REELFORK_STORIES_DIR=str(stories),
        REELFORK_SEED_STORIES="false", **settings,
    )
    first = WorkerProcess(data_dir, redis_server, tmp_path / "worker-0.log", kinds="render", **settings)
    second: WorkerProcess | None = None
    try:
        async with websockets.connect(ws_url(server.url)) as websocket:
            viewer = Viewer(websocket)
            await viewer.send({"type": "start", "story": STORY_ID})
            await viewer.expect("session")
            scene = await viewer.expect("scene")
            assert scene["stream"] is not None and scene["clip"] is None, scene

            # Kill the first worker once it has stored two segments of the clip, well before its last.
            deadline = time.monotonic() + 120
            while True:
                found = [fields for fields in streams(client).values() if len(fields) - 1 >= 2]
                if found:
                    break
                assert time.monotonic() < deadline, "the first worker stored no segments"
                await asyncio.sleep(0.02)
            first.kill()
            killed_at = time.time()
            (key,) = [key for key, fields in streams(client).items() if len(fields) - 1 >= 2]
            before = streams(client)[key]
            plan = json.loads(before["plan"])
            stored = len(before) - 1
            count = -(-plan["frames"] // plan["segment_frames"])
            assert stored < count - 2, (stored, count)
            folder = data_dir / "media" / "streams" / key.removeprefix(keys.stream(""))
            kept = {index: (folder / f"{index}.m4s").stat().st_mtime_ns for index in range(stored)}

            second = WorkerProcess(data_dir, redis_server, tmp_path / "worker-1.log", kinds="render", **settings)
            url = await viewer.clip_for(scene)  # the complete MP4 comes once the second worker is done
            assert url.endswith(".mp4")

        after = streams(client)[key]
        segments = sorted((json.loads(v) for k, v in after.items() if k != "plan"), key=lambda s: s["index"])
        assert [segment["index"] for segment in segments] == list(range(count))
        workers = [segment["worker"] for segment in segments]
        # The ones stored before the kill are the first worker's, kept as they were; the second rendered the rest.
        assert len(set(workers[:stored])) == 1 and set(workers[stored:]).isdisjoint(workers[:stored])
        assert all(segment["stored_at"] > killed_at for segment in segments[stored + 1 :])
        assert {index: (folder / f"{index}.m4s").stat().st_mtime_ns for index in range(stored)} == kept
        resumed = re.findall(r"resumes at segment (\d+) of (\d+)", (tmp_path / "worker-1.log").read_text())
        assert resumed and int(resumed[0][0]) >= stored and int(resumed[0][1]) == count, resumed

        # The viewer's stream plays every segment once, end to end: in order, each starting where the last ended.
        async with httpx.AsyncClient() as http:
            playlist = (await http.get(scene["stream"])).text
            names = re.findall(r"^(\d+)\.m4s$", playlist, re.MULTILINE)
            assert names == [str(index) for index in range(count)] and playlist.rstrip().endswith("#EXT-X-ENDLIST")
            base = scene["stream"].rsplit("/", 1)[0]
            init = (await http.get(f"{base}/init.mp4")).content
            ticks = timescales(init)[1] // plan["fps"]
            position = 0
            for name in names:
                fragment = (await http.get(f"{base}/{name}.m4s")).content
                assert decode_times(fragment)[1] == position * ticks, name
                position += fragment_samples(fragment, 1)
        assert position == plan["frames"]
        assert abs(sum(float(v) for v in re.findall(r"#EXTINF:([0-9.]+),", playlist)) - scene["duration"]) < 1e-3
    finally:
        for worker in (first, second):
            if worker is not None:
                worker.stop(timeout=10)
        server.stop()
