"""Raw events for creators' own tools: CSV (streamed) or Parquet, read from a story version's stream."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import datetime
from typing import cast

import redis.asyncio as aioredis
from reelfork.server.analytics.events import COLUMNS, Event
from reelfork.server.queue import keys

CHUNK = 2000


async def events(
    redis: aioredis.Redis, story_id: str, version: int, since: datetime | None = None, until: datetime | None = None
) -> AsyncIterator[Event]:
    """The story version's kept events, oldest first, arrived in ``[since, until)``."""
    low = f"{int(since.timestamp() * 1000)}-0" if since is not None else "-"
    high = f"({int(until.timestamp() * 1000)}-0" if until is not None else "+"
    stream = keys.analytics_events(story_id, version)
    while True:
        entries = cast(list[tuple[str, dict[str, str]]], await redis.xrange(stream, low, high, count=CHUNK))
        for _, fields in entries:
            yield Event.from_fields(fields)
        if len(entries) < CHUNK:
            return
        low = f"({entries[-1][0]}"


async def csv_lines(source: AsyncIterator[Event]) -> AsyncIterator[str]:
    """The events as CSV, a header row first."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    async for event in source:
        writer.writerow(event.fields().values())
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


async def parquet(source: AsyncIterator[Event]) -> bytes:
    """The events as one Parquet file (typed columns)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [event.model_dump() async for event in source]
    schema = pa.schema([
        ("kind", pa.string()), ("at", pa.float64()), ("story", pa.string()), ("version", pa.int64()),
        ("session", pa.string()), ("viewer", pa.string()), ("locale", pa.string()), ("look", pa.string()),
        ("scene", pa.string()), ("episode", pa.int64()), ("arrival", pa.int64()), ("choice", pa.string()),
        ("defaulted", pa.bool_()), ("seconds", pa.float64()),
    ])
    table = pa.Table.from_pylist(rows, schema=schema)
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()
