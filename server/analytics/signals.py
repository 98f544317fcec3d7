"""Audience signals fed back into generation, read from the analytics counters (cheap: a few hashes per story
version): which scenes viewers enter, for the warm-up's order, and which characters' scenes hold viewers longest,
for the writer's brief."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping

import redis.asyncio as aioredis
from reelfork.narrative.story import NARRATOR, Story
from reelfork.server.analytics.report import version_counters

VERSIONS = 3
"""Versions read back, this one and the ones before it: scene ids carry over from version to version."""
MIN_ENTRIES = 5
"""A character needs this many entries into their scenes before their scenes' hold counts."""
HELD = 3
"""At most this many characters named to the writer."""
CACHE_S = 60.0


async def watched(redis: aioredis.Redis, story_id: str, version: int) -> Counter[str]:
    """Entries per scene id over this version and the :data:`VERSIONS` ``- 1`` before it."""
    entries: Counter[str] = Counter()
    for earlier in range(max(1, version - VERSIONS + 1), version + 1):
        counts = await version_counters(redis, story_id, earlier)
        entries.update({field[len("enter:"):]: n for field, n in counts.items() if field.startswith("enter:")})
    return entries


def holding(story: Story, counts: Mapping[str, int]) -> list[str]:
    """Characters (ids) whose scenes viewers watch longest per entry, longest first; only those with at least
    :data:`MIN_ENTRIES` entries, and only when there are two to compare."""
    watch: Counter[str] = Counter()
    entries: Counter[str] = Counter()
    for scene in story.scenes:
        entered = counts.get(f"enter:{scene.id}", 0)
        if not entered:
            continue
        for speaker in {line.speaker for line in scene.lines} - {NARRATOR}:
            watch[speaker] += counts.get(f"watch:{scene.id}", 0)
            entries[speaker] += entered
    held = {c: watch[c] / entries[c] for c in entries if entries[c] >= MIN_ENTRIES}
    if len(held) < 2:
        return []
    return sorted(held, key=lambda c: (-held[c], c))[:HELD]


class Audience:
    """The writer's audience signal per story version, kept for :data:`CACHE_S` (a write costs seconds; this
    costs a few Redis reads, but not on every write)."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self._cached: dict[tuple[str, int], tuple[float, list[str]]] = {}

    async def holding(self, story: Story, version: int) -> list[str]:
        key = (story.id, version)
        cached = self._cached.get(key)
        if cached is not None and time.monotonic() - cached[0] < CACHE_S:
            return cached[1]
        found = holding(story, await version_counters(self.redis, story.id, version))
        self._cached[key] = (time.monotonic(), found)
        return found
