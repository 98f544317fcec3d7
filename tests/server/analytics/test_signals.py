"""Audience signals for generation, from the analytics counters in a real Redis: entries per scene over recent
versions (the warm-up's order, also through the director), and the characters whose scenes hold viewers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources

import redis.asyncio as aioredis
from reelfork.narrative.formats import load_story
from reelfork.narrative.story import Story
from reelfork.server.analytics.signals import Audience, holding, watched
from reelfork.server.queue import keys


def seed() -> Story:
    text = (resources.files("reelfork.narrative") / "stories" / "last-ferry.yaml").read_bytes()
    story, _ = load_story(text, source="last-ferry.yaml")
    return story


@asynccontextmanager
async def connected(url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


async def count(redis: aioredis.Redis, version: int, hour: int, fields: dict[str, int]) -> None:
    """Counters as the recorder keeps them: a hash per hour, locale and look, indexed by the hour."""
    bucket = keys.analytics_counters("last-ferry", version, "en", "default", hour)
    for field, value in fields.items():
        await redis.hset(bucket, field, value)
    await redis.zadd(keys.analytics_buckets("last-ferry", version), {bucket: hour})


async def test_watched_sums_entries_over_this_and_the_recent_versions(redis_server: str) -> None:
    async with connected(redis_server) as redis:
        await count(redis, 1, 10, {"enter:boarding": 100, "enter:heiress": 1})  # too old for version 4
        await count(redis, 2, 10, {"enter:boarding": 4, "enter:heiress": 9, "watch:heiress": 5000})
        await count(redis, 3, 10, {"enter:heiress": 2})
        await count(redis, 3, 11, {"enter:heiress": 1, "enter:blackout": 3})
        assert await watched(redis, "last-ferry", 4) == {"heiress": 12, "boarding": 4, "blackout": 3}
        assert await watched(redis, "last-ferry", 1) == {"boarding": 100, "heiress": 1}
        assert await watched(redis, "other", 4) == {}


def test_holding_ranks_characters_by_watch_per_entry_and_needs_enough_viewers() -> None:
    story = seed()
    speakers = {s.id: {line.speaker for line in s.lines} for s in story.scenes}
    assert {"celeste", "mara"} <= speakers["heiress"] and "celeste" not in speakers["boarding"]
    counts = {
        "enter:boarding": 10, "watch:boarding": 10 * 4000,  # mara (and others), 4 s per entry
        "enter:heiress": 10, "watch:heiress": 10 * 12000,   # celeste and mara, 12 s per entry
    }
    ranked = holding(story, counts)
    assert ranked[0] == "celeste" and "mara" in ranked and len(ranked) <= 3
    assert holding(story, {"enter:heiress": 2, "watch:heiress": 9000}) == []  # too few viewers to tell
    assert holding(story, {}) == []


async def test_the_audience_signal_is_read_from_the_story_version_s_counters(redis_server: str) -> None:
    async with connected(redis_server) as redis:
        story = seed()
        await count(redis, 1, 10, {"enter:boarding": 10, "watch:boarding": 40000,
                                   "enter:heiress": 10, "watch:heiress": 120000})
        audience = Audience(redis)
        assert (await audience.holding(story, 1))[0] == "celeste"
        assert await audience.holding(story, 2) == []
