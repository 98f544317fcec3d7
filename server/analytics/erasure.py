"""Deleting one viewer's events from every stream, as privacy law expects.

The counters stay: they are anonymous sums, with no viewer in them.
"""

from __future__ import annotations

from typing import cast

import redis.asyncio as aioredis
from reelfork.server.queue import keys

CHUNK = 5000


async def forget(redis: aioredis.Redis, viewer: str) -> int:
    """Delete every kept event of ``viewer``; returns how many."""
    deleted = 0
    for stream in sorted(cast(set[str], await redis.smembers(keys.ANALYTICS_STREAMS))):
        low = "-"
        while True:
            entries = cast(list[tuple[str, dict[str, str]]], await redis.xrange(stream, low, "+", count=CHUNK))
            mine = [entry_id for entry_id, fields in entries if fields.get("viewer") == viewer]
            if mine:
                deleted += int(await redis.xdel(stream, *mine))
            if len(entries) < CHUNK:
                break
            low = f"({entries[-1][0]}"
    return deleted
