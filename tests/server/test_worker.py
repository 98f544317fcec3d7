"""A render job on a real Redis, run in-process by a worker with a real pool: part of a clip's stream, then the rest."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from reelfork.narrative.story import Story
from reelfork.server.components import renderer_names
from reelfork.server.director import Director
from reelfork.server.dubbing import STREAMS
from reelfork.server.pool import WorkerPool
from reelfork.server.queue.events import Events
from reelfork.server.queue.jobs import JobQueue
from reelfork.server.queue.notices import ClipReady
from reelfork.server.queue.payloads import render_job
from reelfork.server.runtime import connect
from reelfork.server.settings import Settings
from reelfork.server.store import Store
from reelfork.server.worker import Worker

from tests.helpers.stories import FERRY_LINES, ferry_story


def stored_files(folder: Path) -> dict[str, int]:
    """The segments in a stream's folder, with when each was last written."""
    return {path.name: path.stat().st_mtime_ns for path in sorted(folder.glob("*.m4s"))}


async def test_a_render_job_through_a_segment_stores_that_far_and_a_later_job_finishes_the_clip(
    redis_server: str, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path / "data", redis_url=redis_server)
    client = connect(redis_server)
    events = Events(client)
    await events.start()
    store, queue = Store(client), JobQueue(client)
    director = Director(store, queue, events, renderer_names(settings))
    pool = WorkerPool(1)
    worker = Worker(settings, store, queue, director, pool, ("render",))
    try:
        version, _ = await store.publish(Story.model_validate(ferry_story("part", "Part", ("deck", FERRY_LINES, []))))
        story = await store.story("part", version)
        assert story is not None
        key = director.clip_key(story, story.story.scene("deck"))
        folder, mp4 = settings.media_dir / STREAMS / key, settings.media_dir / "clips" / f"{key}.mp4"
        announced = events.subscribe(f"clip:{key}")

        # Speculating on a choice not made yet: the first two segments only.
        await queue.want("render", key, render_job(story, "deck", key, "animatic", through=1), time.time(), "a")
        job = await queue.claim("render", wait_s=0, worker=worker.name)
        assert job is not None
        await worker.handle(job)
        stream = await store.stream(key)
        assert stream is not None and stream.plan.count > 3, stream
        assert [segment.index for segment in stream.segments] == [0, 1]
        assert list(stored_files(folder)) == ["0.m4s", "1.m4s"]
        assert await store.clip(key) is None and not mp4.exists()
        assert not await queue.is_queued(key)
        await asyncio.sleep(0.2)
        assert not announced.done()
        first = stored_files(folder)

        # Chosen: the whole clip. The rest is rendered on the same timeline; the first two are never again.
        await queue.want("render", key, render_job(story, "deck", key, "animatic"), time.time(), "a")
        job = await queue.claim("render", wait_s=0, worker=worker.name)
        assert job is not None
        await worker.handle(job)
        notice = await asyncio.wait_for(announced, 10)
        assert isinstance(notice, ClipReady) and notice.file == f"clips/{key}.mp4"
        clip = await store.clip(key)
        assert clip is not None and mp4.exists()
        finished = await store.stream(key)
        assert finished is not None and finished.complete
        assert finished.segments[:2] == stream.segments
        assert {name: stored_files(folder)[name] for name in first} == first
        assert len(stored_files(folder)) == stream.plan.count
        assert not await queue.is_queued(key)
    finally:
        pool.close()
        await events.stop()
        await client.aclose()
