"""A crash-safe job queue on Redis with priorities and leases, small enough to read in one sitting.

Per job kind (``write``, ``render``, ``diffuse``, ``produce``) there is a sorted set of queued job
keys scored by priority (lower runs sooner: the scheduler scores by deadline), a sorted set of
leases scored by expiry, and a sorted set of retries waiting out their back-off. A job's key is its
content address, so the same work asked for by many viewers is one job, and a job that runs twice
writes the same result.

A worker claims a job atomically (queue → lease), renews the lease while it works, and removes it
when the result is stored. A worker that dies (SIGKILL included) stops renewing; once its lease
expires, :meth:`JobQueue.reap` puts the job back in the queue for another worker.

Several server replicas may want the same job at different priorities. Each wish is a field of the
job's wants hash (:func:`keys.wants`: wanter → score) and the queued score is the lowest wish, so
one replica demoting or dropping a job never delays it for another. :meth:`JobQueue.want` and
:meth:`JobQueue.unwant` are the lookahead scheduler's; :meth:`JobQueue.enqueue` records a pinned
wish (``*``) that nothing withdraws. A job leaves the queue unrun only when its last wish is
withdrawn while it is still queued: a leased job always finishes.

A render job may ask for only the first segments of its clip's stream (:attr:`RenderJob.through`: the lookahead
speculating on a choice not made yet). The job hash keeps that bound beside the payload (``through``; a whole clip
is :data:`WHOLE`); a wish for more of the same clip (a larger bound) rewrites both, never a smaller one, whether
the job is queued or leased. A leased job whose bound rose while it ran is queued again when its worker is done
with the part it took (:meth:`JobQueue.done`), so the extension is never lost and the stream goes on from the
first segment not stored (by one worker at a time: one job per clip).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Literal, TypeVar, cast

import redis.asyncio as aioredis
from pydantic import ValidationError
from reelfork.server.queue import keys
from reelfork.server.queue.payloads import JobPayload, ProduceJob, RenderJob, WriteJob

JobKind = Literal["write", "render", "diffuse", "produce"]
JOB_KINDS: tuple[JobKind, ...] = ("write", "render", "diffuse", "produce")
"""``render`` draws animatic-tier clips (any CPU); ``diffuse`` renders with a diffusion model (a GPU
worker with the model folder): a render job goes to the queue its profile's renderer needs."""


def render_kind(tier: str) -> JobKind:
    """The queue of a clip rendered in a profile of ``tier``."""
    return "render" if tier == "animatic" else "diffuse"


PAYLOADS: dict[JobKind, type[JobPayload]] = {
    "write": WriteJob,
    "render": RenderJob,
    "diffuse": RenderJob,
    "produce": ProduceJob,
}
"""The payload model of each kind's jobs."""
Payload = TypeVar("Payload", WriteJob, RenderJob, ProduceJob)
log = logging.getLogger(__name__)

WHOLE = 1_000_000_000
"""The ``through`` field of a job that renders its whole clip (or is no render): more than any segment index."""

_EXTEND = """
local function extend(job, through, payload)
  -- a wish for more segments of a clip raises the job's bound (and its payload with it), never lowers it
  local was = redis.call('HGET', job, 'through')
  if was and tonumber(through) > tonumber(was) then
    redis.call('HSET', job, 'payload', payload, 'through', through)
  end
end
"""

_ENQUEUE = (
    _EXTEND
    + """
-- KEYS: queue, job, wake, wants   ARGV: score, kind, payload, key, ttl, through
local pinned = tonumber(redis.call('HGET', KEYS[4], '*') or ARGV[1])
redis.call('HSET', KEYS[4], '*', math.min(pinned, tonumber(ARGV[1])))
redis.call('EXPIRE', KEYS[4], ARGV[5])
if redis.call('EXISTS', KEYS[2]) == 1 then
  -- already queued or running: only ever move it earlier
  redis.call('ZADD', KEYS[1], 'XX', 'LT', ARGV[1], ARGV[4])
  redis.call('HSET', KEYS[2], 'score', math.min(tonumber(redis.call('HGET', KEYS[2], 'score')), tonumber(ARGV[1])))
  extend(KEYS[2], ARGV[6], ARGV[3])
  return 0
end
redis.call('HSET', KEYS[2], 'kind', ARGV[2], 'payload', ARGV[3], 'attempt', 1, 'score', ARGV[1], 'through', ARGV[6])
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
redis.call('LPUSH', KEYS[3], 1)
redis.call('LTRIM', KEYS[3], 0, 0)
return 1
"""
)

_LOWEST = """
local function lowest(wants)
  local best = nil
  for _, score in ipairs(redis.call('HVALS', wants)) do
    if best == nil or tonumber(score) < best then best = tonumber(score) end
  end
  return best
end
"""

_WANT = (
    _LOWEST
    + _EXTEND
    + """
-- KEYS: queue, job, wake, wants   ARGV: score, kind, payload, key, wanter, ttl, through
local exists = redis.call('EXISTS', KEYS[2]) == 1
if exists and redis.call('EXISTS', KEYS[4]) == 0 then
  -- queued before wishes were recorded: keep its score as a pinned wish
  redis.call('HSET', KEYS[4], '*', redis.call('HGET', KEYS[2], 'score'))
end
redis.call('HSET', KEYS[4], ARGV[5], ARGV[1])
redis.call('EXPIRE', KEYS[4], ARGV[6])
local best = lowest(KEYS[4])
if exists then
  redis.call('HSET', KEYS[2], 'score', best)
  redis.call('ZADD', KEYS[1], 'XX', best, ARGV[4])
  extend(KEYS[2], ARGV[7], ARGV[3])
  return 0
end
redis.call('HSET', KEYS[2], 'kind', ARGV[2], 'payload', ARGV[3], 'attempt', 1, 'score', best, 'through', ARGV[7])
redis.call('ZADD', KEYS[1], best, ARGV[4])
redis.call('LPUSH', KEYS[3], 1)
redis.call('LTRIM', KEYS[3], 0, 0)
return 1
"""
)

_UNWANT = (
    _LOWEST
    + """
-- KEYS: queue, job, wants   ARGV: key, wanter
if redis.call('HDEL', KEYS[3], ARGV[2]) == 0 then return 0 end
local best = lowest(KEYS[3])
if best == nil then
  -- nobody wants it any more: drop it if still queued; a leased job finishes
  if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
    redis.call('DEL', KEYS[2])
    return 1
  end
  return 0
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('HSET', KEYS[2], 'score', best)
  redis.call('ZADD', KEYS[1], 'XX', best, ARGV[1])
end
return 0
"""
)

_DONE = """
-- KEYS: leases, job, wants, queue, wake   ARGV: key, the bound the worker took it with, requeue (1/0)
local now = redis.call('HGET', KEYS[2], 'through')
redis.call('ZREM', KEYS[1], ARGV[1])
if ARGV[3] == '1' and now and tonumber(now) > tonumber(ARGV[2]) then
  -- more of the clip was asked for while it ran: on it goes, from the first segment not stored
  redis.call('ZADD', KEYS[4], redis.call('HGET', KEYS[2], 'score'), ARGV[1])
  redis.call('LPUSH', KEYS[5], 1)
  redis.call('LTRIM', KEYS[5], 0, 0)
  return 0
end
redis.call('DEL', KEYS[2], KEYS[3])
return 1
"""

WANT_TTL_S = 3600
"""How long a job's wishes outlive their last update: a replica that died never withdraws its own."""

_CLAIM = """
-- KEYS: queue, leases   ARGV: lease expiry (ms), job key prefix, worker name
local popped = redis.call('ZPOPMIN', KEYS[1])
if #popped == 0 then return false end
redis.call('ZADD', KEYS[2], ARGV[1], popped[1])
if redis.call('EXISTS', ARGV[2] .. popped[1]) == 1 then
  redis.call('HSET', ARGV[2] .. popped[1], 'worker', ARGV[3])
end
return popped[1]
"""

_REAP = """
-- KEYS: queue, leases, delayed   ARGV: now (ms), job key prefix
local moved = 0
for _, set in ipairs({KEYS[2], KEYS[3]}) do
  local due = redis.call('ZRANGEBYSCORE', set, '-inf', ARGV[1], 'LIMIT', 0, 100)
  for _, key in ipairs(due) do
    redis.call('ZREM', set, key)
    local score = redis.call('HGET', ARGV[2] .. key, 'score')
    if score then
      redis.call('ZADD', KEYS[1], score, key)
      moved = moved + 1
    end
  end
end
return moved
"""


@dataclass(frozen=True)
class ClaimedJob:
    key: str
    """Content key: equal keys are the same work."""
    kind: JobKind
    payload: JobPayload
    """Of the kind's model (:data:`PAYLOADS`)."""
    attempt: int
    due: float
    """When the job's result is needed (epoch seconds): its priority score."""

    def payload_as(self, model: type[Payload]) -> Payload:
        """The payload, which the caller knows to be a ``model``: a worker's handler for the job's kind."""
        if not isinstance(self.payload, model):
            raise TypeError(f"{self.kind} job {self.key} carries a {type(self.payload).__name__}, not {model.__name__}")
        return self.payload


def _payload_json(kind: JobKind, payload: JobPayload) -> str:
    if not isinstance(payload, PAYLOADS[kind]):
        raise TypeError(f"a {kind} job takes a {PAYLOADS[kind].__name__}, not a {type(payload).__name__}")
    return payload.model_dump_json()


def _through(payload: JobPayload) -> int:
    """The job hash's ``through``: the last segment a render job asks for, :data:`WHOLE` for anything else."""
    if isinstance(payload, RenderJob) and payload.through is not None:
        return payload.through
    return WHOLE


def _now_ms() -> int:
    return int(time.time() * 1000)


class JobQueue:
    def __init__(self, redis: aioredis.Redis, lease_s: float = 30.0) -> None:
        self.redis = redis
        self.lease_s = lease_s
        self._enqueue = redis.register_script(_ENQUEUE)
        self._want = redis.register_script(_WANT)
        self._unwant = redis.register_script(_UNWANT)
        self._claim = redis.register_script(_CLAIM)
        self._reap = redis.register_script(_REAP)
        self._done = redis.register_script(_DONE)

    async def enqueue(self, kind: JobKind, key: str, payload: JobPayload, score: float) -> bool:
        """Queue a job, or move an already queued one earlier (and raise its ``through``). Returns whether it is new."""
        names = [keys.queued(kind), keys.job(key), keys.wake(kind), keys.wants(key)]
        args = [score, kind, _payload_json(kind, payload), key, WANT_TTL_S, _through(payload)]
        return bool(await self._enqueue(keys=names, args=args))

    async def want(self, kind: JobKind, key: str, payload: JobPayload, score: float, wanter: str) -> bool:
        """Set ``wanter``'s score for a job, queueing it if new; it runs at the lowest score anyone wants.
        A render job already there whose ``through`` is lower takes this payload's. Returns whether it is new."""
        names = [keys.queued(kind), keys.job(key), keys.wake(kind), keys.wants(key)]
        args = [score, kind, _payload_json(kind, payload), key, wanter, WANT_TTL_S, _through(payload)]
        return bool(await self._want(keys=names, args=args))

    async def unwant(self, kind: JobKind, key: str, wanter: str) -> bool:
        """Withdraw ``wanter``'s wish; returns whether that dropped the job (queued and wanted by nobody else)."""
        names = [keys.queued(kind), keys.job(key), keys.wants(key)]
        return bool(await self._unwant(keys=names, args=[key, wanter]))

    async def claim(self, kind: JobKind, wait_s: float = 1.0, worker: str = "") -> ClaimedJob | None:
        """The most urgent job of this kind, leased to the caller; ``None`` after ``wait_s`` with none.

        A job whose payload does not parse (queued by an incompatible version) is given up on at once:
        it is recorded in :data:`keys.FAILED` and never handed out."""
        names = [keys.queued(kind), keys.leases(kind)]
        key: str | None = await self._claim(keys=names, args=[self._expiry(), keys.JOB_PREFIX, worker])
        if key is None and wait_s > 0:
            await self.redis.blpop([keys.wake(kind)], timeout=wait_s)
            key = await self._claim(keys=names, args=[self._expiry(), keys.JOB_PREFIX, worker])
        if key is None:
            return None
        fields = cast(dict[str, str], await self.redis.hgetall(keys.job(key)))  # decode_responses: text
        if not fields:  # finished by a worker whose lease had expired; nothing left to do
            await self.redis.zrem(keys.leases(kind), key)
            return None
        try:
            payload = PAYLOADS[kind].model_validate_json(fields["payload"])
        except ValidationError as exc:
            log.error("%s job %s has a payload this version cannot read; dropping it: %s", kind, key, exc)
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.zrem(keys.leases(kind), key)
                pipe.delete(keys.job(key), keys.wants(key))
                pipe.hset(keys.FAILED, key, f"invalid payload: {exc}"[:500])
                await pipe.execute()
            return None
        attempt, due = int(fields["attempt"]), float(fields["score"])
        return ClaimedJob(key=key, kind=kind, payload=payload, attempt=attempt, due=due)

    async def renew(self, job: ClaimedJob) -> None:
        await self.redis.zadd(keys.leases(job.kind), {job.key: self._expiry()}, xx=True)

    async def done(self, job: ClaimedJob, requeue: bool = True) -> bool:
        """The job is finished: it leaves the queue, unless (with ``requeue``) a wish raised its ``through`` while
        it ran; then it is queued again for the rest. Returns whether it left."""
        kind, key = job.kind, job.key
        names = [keys.leases(kind), keys.job(key), keys.wants(key), keys.queued(kind), keys.wake(kind)]
        return bool(await self._done(keys=names, args=[job.key, _through(job.payload), 1 if requeue else 0]))

    async def retry(self, job: ClaimedJob, delay_s: float) -> None:
        """Back off, then queue the job again with its priority."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(keys.leases(job.kind), job.key)
            pipe.hincrby(keys.job(job.key), "attempt", 1)
            pipe.zadd(keys.delayed(job.kind), {job.key: _now_ms() + int(delay_s * 1000)})
            await pipe.execute()

    async def cancel(self, kind: JobKind, key: str) -> bool:
        """Drop a queued job nobody needs any more; a running one is left to finish."""
        removed = await self.redis.zrem(keys.queued(kind), key)
        if removed:
            await self.redis.delete(keys.job(key), keys.wants(key))
        return bool(removed)

    async def reap(self) -> int:
        """Requeue jobs whose lease expired (their worker died) and retries whose back-off ended."""
        moved = 0
        for kind in JOB_KINDS:
            names = [keys.queued(kind), keys.leases(kind), keys.delayed(kind)]
            moved += int(await self._reap(keys=names, args=[_now_ms(), keys.JOB_PREFIX]))
        return moved

    async def is_queued(self, key: str) -> bool:
        return bool(await self.redis.exists(keys.job(key)))

    async def depth(self) -> dict[str, int]:
        """Jobs waiting, running and backing off, per kind."""
        depth: dict[str, int] = {}
        for kind in JOB_KINDS:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.zcard(keys.queued(kind))
                pipe.zcard(keys.leases(kind))
                pipe.zcard(keys.delayed(kind))
                queued, running, delayed = await pipe.execute()
            depth[f"{kind}:queued"], depth[f"{kind}:running"], depth[f"{kind}:retrying"] = queued, running, delayed
        return depth

    def _expiry(self) -> int:
        return _now_ms() + int(self.lease_s * 1000)
