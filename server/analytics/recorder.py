"""The recorder: events buffered for a moment, then appended to a capped stream with their counters, in Redis.

Each event is one call of :data:`RECORD` (a Lua script, so the stream entry and every counter it moves change
together). Events wait in memory for at most :data:`FLUSH_S` and go in one pipeline: a ``progress`` costs the
play path no Redis round trip. What a session counts once (an episode started, the paywall seen) is decided
in Redis, in the session's analytics hash, so any replica may serve any message of a session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from reelfork.server.analytics.events import Event
from reelfork.server.queue import keys

log = logging.getLogger(__name__)

FLUSH_S = 0.1
MAX_BUFFERED = 100_000
"""Beyond this many unflushed events (Redis away), the oldest are dropped: analytics never holds play up."""
RETENTION_MAX_S = 600
"""Retention curves count whole seconds up to this far into a clip."""
SESSION_TTL_S = 30 * 24 * 3600
HOUR_S = 3600

# KEYS: stream, streams set, buckets, counters, session.
# ARGV: kind, scene, choice, defaulted, seconds, episode, arrival, hour, stream cap, session ttl, retention cap,
# then the stream entry's fields and values.
RECORD = """
local stream, streams, buckets, c, s = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local kind, scene, choice = ARGV[1], ARGV[2], ARGV[3]
local episode, arrival = tonumber(ARGV[6]), scene .. '#' .. ARGV[7]
redis.call('XADD', stream, 'MAXLEN', '~', ARGV[9], '*', unpack(ARGV, 12))
redis.call('SADD', streams, stream)
redis.call('ZADD', buckets, ARGV[8], c)
local function once(flag) return redis.call('HSETNX', s, flag, 1) == 1 end
local function count(field, by) redis.call('HINCRBY', c, field, by or 1) end
local function finished(number)
  if number >= 1 and once('finished:' .. number) then count('ep:' .. number .. ':finished') end
end
local function unleave()
  local left = redis.call('HGET', s, 'left')
  if left then
    local tab = string.find(left, '\\t', 1, true)
    redis.call('HINCRBY', string.sub(left, 1, tab - 1), 'left:' .. string.sub(left, tab + 1), -1)
    redis.call('HDEL', s, 'left')
  end
end
if kind == 'started' then
  count('sessions')
elseif kind == 'resumed' then
  unleave()
elseif kind == 'entered' then
  if redis.call('HGET', s, 'arrival') ~= arrival then
    redis.call('HSET', s, 'arrival', arrival, 'watched', 0)
    count('enter:' .. scene)
    if once('started:' .. episode) then
      count('ep:' .. episode .. ':started')
      if episode > 1 and redis.call('HEXISTS', s, 'started:' .. (episode - 1)) == 1 then
        if once('continued:' .. (episode - 1)) then count('ep:' .. (episode - 1) .. ':continued') end
        finished(episode - 1)
      end
    end
  end
elseif kind == 'ending' then
  if once('ending') then count('ending:' .. scene) end
  finished(episode)
elseif kind == 'progress' then
  if redis.call('HGET', s, 'arrival') == arrival then
    local ms = math.floor(tonumber(ARGV[5]) * 1000)
    local before = tonumber(redis.call('HGET', s, 'watched') or '0')
    if ms > before then
      redis.call('HSET', s, 'watched', ms)
      count('watch:' .. scene, ms - before)
      for second = math.floor(before / 1000) + 1, math.min(math.floor(ms / 1000), tonumber(ARGV[11])) do
        count('ret:' .. scene .. ':' .. second)
      end
    end
  end
elseif kind == 'chose' then
  count((ARGV[4] == '1' and 'default:' or 'chose:') .. scene .. '/' .. choice)
elseif kind == 'paywall' then
  if once('paywall:' .. episode) then
    count('paywall:' .. episode)
    finished(episode - 1)
  end
elseif kind == 'unlocked' then
  if once('unlocked:' .. episode) then count('unlocked:' .. episode) end
elseif kind == 'disconnected' then
  unleave()
  redis.call('HSET', s, 'left', c .. '\\t' .. scene)
  count('left:' .. scene)
end
redis.call('EXPIRE', s, ARGV[10])
return 1
"""


def counters_key(event: Event) -> str:
    return keys.analytics_counters(event.story, event.version, event.locale, event.look, int(event.at // HOUR_S))


class Recorder:
    """Takes events from the play path without waiting, and writes them to Redis in batches."""

    def __init__(self, redis: aioredis.Redis, *, enabled: bool = True, stream_max: int = 1_000_000) -> None:
        self.redis = redis
        self.enabled = enabled
        self.stream_max = stream_max
        self._script = redis.register_script(RECORD)
        self._buffer: list[Event] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def record(self, event: Event) -> None:
        """Queue ``event``; it reaches Redis within :data:`FLUSH_S`."""
        if not self.enabled:
            return
        if len(self._buffer) >= MAX_BUFFERED:
            del self._buffer[0]
        self._buffer.append(event)
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="analytics")

    async def close(self) -> None:
        """Stop the flusher and write what is still buffered."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(RedisError):
            await self.flush()

    async def flush(self) -> int:
        """Write the buffered events (one pipeline); returns how many."""
        batch, self._buffer = self._buffer, []
        if not batch:
            return 0
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for event in batch:
                    await self._script(keys=self._keys(event), args=self._args(event), client=pipe)
                await pipe.execute()
        except RedisError:
            self._buffer[:0] = batch  # kept for the next flush, in order
            raise
        return len(batch)

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
            except RedisError:
                log.warning("analytics events not written yet: Redis unavailable", exc_info=True)
            await asyncio.sleep(FLUSH_S)

    def _keys(self, event: Event) -> list[str]:
        return [
            keys.analytics_events(event.story, event.version),
            keys.ANALYTICS_STREAMS,
            keys.analytics_buckets(event.story, event.version),
            counters_key(event),
            keys.analytics_session(event.session),
        ]

    def _args(self, event: Event) -> list[str | int | float]:
        fields = [item for pair in event.fields().items() for item in pair]
        return [
            event.kind, event.scene, event.choice, "1" if event.defaulted else "0", event.seconds, event.episode,
            event.arrival, int(event.at // HOUR_S), self.stream_max, SESSION_TTL_S, RETENTION_MAX_S, *fields,
        ]
