"""A crash-safe job queue on Redis Streams with consumer groups, small enough to read in one sitting.

One stream per job kind and priority (``high`` for what a viewer will need next, ``low`` for
warming), so writers and renderers scale and fail apart; a job is
deduplicated by its content key while it is pending, acknowledged only after its result is
stored, and reclaimed from a consumer that stopped answering.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

Priority = Literal["high", "low"]
Kind = Literal["write", "render"]
PRIORITIES: tuple[Priority, ...] = ("high", "low")
KINDS: tuple[Kind, ...] = ("write", "render")
GROUP = "workers"
PENDING_TTL_S = 3600


@dataclass(frozen=True)
class Job:
    id: str
    """The stream entry id."""
    stream: str
    key: str
    """Content key: equal keys are the same work."""
    kind: Kind
    payload: dict[str, Any]
    attempt: int


def _stream(kind: str, priority: Priority) -> str:
    return f"rf:jobs:{kind}:{priority}"


def _streams(kinds: tuple[Kind, ...]) -> list[str]:
    return [_stream(kind, priority) for priority in PRIORITIES for kind in kinds]


class JobQueue:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    async def setup(self) -> None:
        for stream in _streams(KINDS):
            try:
                await self.redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def enqueue(self, kind: Kind, key: str, payload: dict[str, Any], priority: Priority = "high") -> bool:
        """Queue a job unless the same key is already pending. Returns whether it was queued."""
        claimed = await self.redis.set(f"rf:pending:{key}", priority, nx=True, ex=PENDING_TTL_S)
        if not claimed:
            if priority == "high" and (await self.redis.get(f"rf:pending:{key}")) == b"low":
                # Someone now needs warm-up work soon: queue it again at high priority.
                await self.redis.set(f"rf:pending:{key}", "high", ex=PENDING_TTL_S)
            else:
                return False
        fields = {"kind": kind, "key": key, "payload": json.dumps(payload), "attempt": "1"}
        await self.redis.xadd(_stream(kind, priority), fields)  # type: ignore[arg-type]
        return True

    async def retry(self, job: Job, priority: Priority = "low") -> None:
        fields = {"kind": job.kind, "key": job.key, "payload": json.dumps(job.payload), "attempt": str(job.attempt + 1)}
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(_stream(job.kind, priority), fields)  # type: ignore[arg-type]
            pipe.xack(job.stream, GROUP, job.id)
            pipe.xdel(job.stream, job.id)
            await pipe.execute()

    async def next(self, consumer: str, kinds: tuple[Kind, ...] = KINDS, block_ms: int = 1000) -> Job | None:
        """The next job of these kinds, high priority first; ``None`` after ``block_ms`` with nothing to do."""
        streams = _streams(kinds)
        for stream in streams:
            job = await self._read(consumer, {stream: ">"}, block_ms=None)
            if job is not None:
                return job
        return await self._read(consumer, dict.fromkeys(streams, ">"), block_ms=block_ms)

    async def reclaim(self, consumer: str, idle_ms: int, kinds: tuple[Kind, ...] = KINDS) -> list[Job]:
        """Take over jobs that another consumer read but did not finish within ``idle_ms``."""
        jobs: list[Job] = []
        for stream in _streams(kinds):
            _, entries, *_ = await self.redis.xautoclaim(stream, GROUP, consumer, min_idle_time=idle_ms, count=100)
            jobs.extend(_job(stream, entry_id, fields) for entry_id, fields in entries if fields)
        return jobs

    async def done(self, job: Job) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xack(job.stream, GROUP, job.id)
            pipe.xdel(job.stream, job.id)
            pipe.delete(f"rf:pending:{job.key}")
            await pipe.execute()

    async def is_pending(self, key: str) -> bool:
        return bool(await self.redis.exists(f"rf:pending:{key}"))

    async def depth(self) -> dict[str, int]:
        """Jobs queued or in progress, per stream (``write:high``, ``render:low``, ...)."""
        return {
            f"{kind}:{priority}": int(await self.redis.xlen(_stream(kind, priority)))
            for kind in KINDS
            for priority in PRIORITIES
        }

    async def _read(self, consumer: str, streams: dict[str, str], block_ms: int | None) -> Job | None:
        reply: Any = await self.redis.xreadgroup(GROUP, consumer, streams, count=1, block=block_ms)  # type: ignore[arg-type]
        for stream, entries in reply or []:
            for entry_id, fields in entries:
                return _job(stream.decode(), entry_id, fields)
        return None


def _job(stream: str, entry_id: bytes | str, fields: dict[bytes, bytes]) -> Job:
    decoded = {k.decode(): v.decode() for k, v in fields.items()}
    return Job(
        id=entry_id.decode() if isinstance(entry_id, bytes) else entry_id,
        stream=stream,
        key=decoded["key"],
        kind="write" if decoded["kind"] == "write" else "render",
        payload=json.loads(decoded["payload"]),
        attempt=int(decoded["attempt"]),
    )
