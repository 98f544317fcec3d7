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
