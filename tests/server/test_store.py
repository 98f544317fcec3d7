"""Story versions in Redis: a large one is parsed off the event loop, in the parser's process when there is one."""

from __future__ import annotations

import redis.asyncio as aioredis
from reelfork.narrative.story import Story
from reelfork.server.pool import WorkerPool
from reelfork.server.queue import keys
from reelfork.server.store import Store, StoredClip, StoredSegment, StreamPlan, is_packed, packed

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


async def test_the_best_rendered_profile_of_each_picture_and_its_stream(redis_server: str) -> None:
    client = aioredis.Redis.from_url(redis_server, decode_responses=True)
    store = Store(client)
    plan = StreamPlan(fps=10, frames=40, segment_frames=20, slots={})
    try:
        await store.save_clip(StoredClip(key="b-low", file="clips/b-low.mp4", duration=4.0))
        await store.save_clip(StoredClip(key="c-full", file="clips/c-full.mp4", duration=4.0))
        groups = [["a-full", "a-low"], ["b-full", "b-low"], ["c-full", "c-low"]]
        best = await store.best_clips(groups)
        assert best[0] is None
        assert best[1] is not None and (best[1][0], best[1][1].key) == (1, "b-low")
        assert best[2] is not None and (best[2][0], best[2][1].key) == (0, "c-full")
        for key, count in (("a-full", 0), ("b-low", 1), ("c-full", 2)):
            await store.plan_stream(key, plan)
            for index in range(count):
                await store.save_segment(key, StoredSegment(index=index, frames=20, worker="w"))
        streams = await store.best_streams(groups)
        assert [s.key if s is not None else None for s in streams] == [None, "b-low", "c-full"]
        assert streams[1] is not None and not streams[1].complete
        assert streams[2] is not None and streams[2].complete
        # A complete best picture and stream are remembered: nothing else of their groups is asked for again.
        await client.delete(keys.clip("c-full"), keys.stream("c-full"))
        await store.save_clip(StoredClip(key="c-low", file="clips/c-low.mp4", duration=4.0))
        again = await store.best_clips([["c-full", "c-low"]])
        assert again[0] is not None and again[0][1].key == "c-full"
        assert [s.key for s in await store.best_streams([["c-full", "c-low"]]) if s is not None] == ["c-full"]
        assert [s is None for s in await store.streams(["a-full", "nothing"])] == [False, True]
    finally:
        await client.aclose()
