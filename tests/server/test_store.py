"""Story versions in Redis: a large one is parsed off the event loop, in the parser's process when there is one."""

from __future__ import annotations

import redis.asyncio as aioredis
from reelfork.narrative.story import Story
from reelfork.server.pool import WorkerPool
from reelfork.server.queue import keys
from reelfork.server.store import Store, is_packed, packed

from bench.publish import large_story


async def test_a_large_story_loads_the_same_through_the_parser_process_as_in_a_thread(redis_server: str) -> None:
    story = Story.model_validate_json(large_story(3_000))
    assert is_packed(packed(story.model_dump_json()))
    client = aioredis.Redis.from_url(redis_server, decode_responses=True)
    pool = WorkerPool(1, name="parser")
    try:
        version, created = await Store(client).publish(story)
        assert created and await client.hget(keys.story(story.id), f"v{version}:digest") == story.digest()
        in_thread = await Store(client).story(story.id, version)
        elsewhere = await Store(client, parser=pool).story(story.id, version)
        assert in_thread is not None and elsewhere is not None
        assert elsewhere.story == in_thread.story == story
        assert elsewhere.digest == in_thread.digest == story.digest()
        assert elsewhere.story.scene("s2990").id == "s2990"
    finally:
        pool.close()
        await client.aclose()


async def test_a_version_stored_before_digests_were_kept_gets_its_digest_computed(redis_server: str) -> None:
    story = Story.model_validate_json(large_story(3_000))
    client = aioredis.Redis.from_url(redis_server, decode_responses=True)
    pool = WorkerPool(1, name="parser")
    try:
        await client.hset(keys.story(story.id), mapping={"latest": 1, "v1": packed(story.model_dump_json())})
        for store in (Store(client), Store(client, parser=pool)):
            loaded = await store.story(story.id)
            assert loaded is not None and loaded.digest == story.digest() and loaded.version == 1
        republished = await Store(client).republish(story.id, 1)
        assert republished == 2
        assert await client.hget(keys.story(story.id), "v2:digest") == story.digest()
        assert await Store(client).story(story.id, 3) is None and await Store(client).republish(story.id, 9) is None
    finally:
        pool.close()
        await client.aclose()
