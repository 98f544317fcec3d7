"""The job queue on a real Redis: payloads go in as models and come back as the same models."""

from __future__ import annotations

import json

import pytest
import redis.asyncio as aioredis
from reelfork.server.queue import keys
from reelfork.server.queue.jobs import JobQueue
from reelfork.server.queue.payloads import ProduceJob, RenderJob, WriteJob


async def test_a_claimed_job_carries_the_model_it_was_queued_with(redis_server: str) -> None:
    client = aioredis.Redis.from_url(redis_server, decode_responses=True)
    queue = JobQueue(client)
    write = WriteJob(story="s", version=2, path=["a", "b"], choice="c", scene="g-1", must_end=True)
    render = RenderJob(story="s", version=2, scene="b", clip="k", profile="full")
    try:
        assert await queue.enqueue("write", "g-1", write, 1.0)
        assert await queue.want("diffuse", "k", render, 1.0, "replica")
        assert await queue.enqueue("produce", "produce:p", ProduceJob(production="p"), 1.0)
        # The wire form is the payload's fields, as before the models.
        assert json.loads(await client.hget(keys.job("g-1"), "payload") or "") == write.model_dump()
        claimed = [await queue.claim(kind, wait_s=0) for kind in ("write", "diffuse", "produce")]
        assert [job.payload if job else None for job in claimed] == [write, render, ProduceJob(production="p")]
        job = claimed[0]
        assert job is not None and job.payload_as(WriteJob) is job.payload
        with pytest.raises(TypeError, match="not RenderJob"):
            job.payload_as(RenderJob)
        with pytest.raises(TypeError, match="a render job takes a RenderJob"):
            await queue.enqueue("render", "x", write, 1.0)
    finally:
        await client.aclose()


async def test_a_job_whose_payload_this_version_cannot_read_is_given_up_on(redis_server: str) -> None:
    client = aioredis.Redis.from_url(redis_server, decode_responses=True)
    queue = JobQueue(client)
    try:
        await queue.enqueue("render", "old", RenderJob(story="s", version=1, scene="a", clip="old", profile="x"), 1.0)
        await client.hset(keys.job("old"), "payload", json.dumps({"clip": "old"}))  # as an older version wrote it
        assert await queue.claim("render", wait_s=0) is None
        assert not await client.exists(keys.job("old"))
        assert await client.zcard(keys.leases("render")) == 0
        assert "invalid payload" in (await client.hget(keys.FAILED, "old") or "")
    finally:
        await client.aclose()


async def test_a_wish_for_more_segments_raises_a_render_jobs_through_and_a_running_job_goes_on_for_them(
    redis_server: str,
) -> None:
    client = aioredis.Redis.from_url(redis_server, decode_responses=True)
    queue = JobQueue(client)

    def part(through: int | None) -> RenderJob:
        return RenderJob(story="s", version=1, scene="n", clip="k", profile="animatic", through=through)

    async def payload() -> RenderJob:
        return RenderJob.model_validate_json(await client.hget(keys.job("k"), "payload") or "")

    try:
        assert await queue.want("render", "k", part(1), 10.0, "a")
        assert not await queue.want("render", "k", part(0), 5.0, "b")  # less asked: the bound stays
        assert (await payload()).through == 1
        assert await client.zscore(keys.queued("render"), "k") == 5.0
        assert not await queue.want("render", "k", part(3), 5.0, "b")
        assert (await payload()).through == 3

        job = await queue.claim("render", wait_s=0)
        assert job is not None and job.payload == part(3)
        # While it runs, a viewer chooses: the whole clip is wanted. The worker's part done, it is queued again.
        assert not await queue.want("render", "k", part(None), 1.0, "a")
        assert (await payload()).through is None
        assert not await queue.done(job)
        assert await client.zscore(keys.queued("render"), "k") == 1.0
        again = await queue.claim("render", wait_s=0)
        assert again is not None and again.payload == part(None)
        assert await queue.done(again)
        assert not await client.exists(keys.job("k"), keys.wants("k"))

        # A pinned enqueue of the whole clip (a viewer waiting for it) raises it too; a job given up stays gone.
        assert await queue.want("render", "k", part(0), 10.0, "a")
        job = await queue.claim("render", wait_s=0)
        assert job is not None and job.payload == part(0)
        assert not await queue.enqueue("render", "k", part(None), 20.0)
        assert (await payload()).through is None
        assert await queue.done(job, requeue=False)
        assert not await client.exists(keys.job("k"))
    finally:
        await client.aclose()
