"""The running parts of one server process, started and stopped together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Coroutine
from importlib import resources
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from reelfork.narrative.formats import StoryError, load_story
from reelfork.server import metrics
from reelfork.server.analytics.experiments import Experiments
from reelfork.server.analytics.recorder import Recorder
from reelfork.server.components import renderer_names
from reelfork.server.director import Director
from reelfork.server.dubbing import Dubbing
from reelfork.server.embedded import EmbeddedRedis
from reelfork.server.lookahead.engine import Lookahead
from reelfork.server.lookahead.tuning import METERED
from reelfork.server.pool import WorkerPool
from reelfork.server.queue.events import Events
from reelfork.server.queue.jobs import JobKind, JobQueue
from reelfork.server.settings import Settings
from reelfork.server.store import Store
from reelfork.server.streaming import Streaming
from reelfork.server.worker import Worker

log = logging.getLogger(__name__)


def seed_story_files() -> list[Path]:
    folder = resources.files("reelfork.narrative") / "stories"
    return sorted(Path(str(item)) for item in folder.iterdir() if item.name.endswith((".yaml", ".yml", ".json")))


def creator_token(settings: Settings) -> tuple[str, bool]:
    """The creators' bearer token: from settings, or generated once and kept in the data dir."""
    if settings.creator_token is not None:
        return settings.creator_token.get_secret_value(), False
    path = settings.data_dir / "creator-token"
    if path.exists():
        return path.read_text().strip(), False
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    path.touch(mode=0o600)
    path.write_text(token + "\n")
    return token, True


def connect(url: str) -> aioredis.Redis:
    """A Redis client that rides out a restart: broken connections are retried with back-off for ~3 s."""
    # Retries belong to the pool's connections: given to Redis() beside a pool, they would be ignored.
    retry = Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=8)
    # A blocking pool: under a burst, a request waits for a free connection instead of failing.
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=256,
        timeout=10,
        health_check_interval=30,
        retry=retry,
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        decode_responses=True,  # everything kept in Redis is text (JSON, ids, numbers)
    )
    return aioredis.Redis(connection_pool=pool)


async def run_workers(settings: Settings, kinds: tuple[JobKind, ...], processes: int) -> None:
    """A worker host: ``processes`` loops per kind, on the shared Redis, until cancelled or killed.

    A killed worker loses nothing: its leases expire and another worker takes the jobs over.
    """
    if settings.redis_url is None:
        raise ValueError("a separate worker needs the shared Redis: set REELFORK_REDIS_URL (redis://host:6379/0)")
    if settings.metrics_port is not None:
        metrics.serve(settings.host, settings.metrics_port)
    redis = connect(settings.redis_url)
    await redis.ping()
    store = Store(redis)
    queue = JobQueue(redis, lease_s=settings.job_lease_s)
    director = Director(store, queue, Events(redis), renderer_names(settings))
    tasks = []
    pools = []
    for kind in kinds:
        pool = WorkerPool(processes, name=f"{kind} pool")
        pools.append(pool)
        for _ in range(processes):
            worker = Worker(settings, store, queue, director, pool, (kind,))
            tasks.append(asyncio.create_task(worker.run(), name=f"{kind}-worker"))
    log.info("worker host running %s x%d on %s", ",".join(kinds), processes, settings.redis_url)
    try:
        await asyncio.gather(*tasks)
    finally:
        for pool in pools:
            pool.close()
        await redis.aclose()


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.embedded: EmbeddedRedis | None = None
        self.creator_token, self.creator_token_created = creator_token(settings)
        self._tasks: list[asyncio.Task[None]] = []
        self._pools: list[WorkerPool] = []
        self.publisher = WorkerPool(1, name="publish pool")
        """Parses and validates published stories off the event loop (:mod:`reelfork.server.publishing`)."""
        self._pools.append(self.publisher)
        self.variant_writer = WorkerPool(1, name="variant writer")
        """Writes the variants an experiment asks the writer for, in a process of its own (the model loads once)."""
        self._pools.append(self.variant_writer)

    async def start(self) -> None:
        self.settings.media_dir.mkdir(parents=True, exist_ok=True)
        url = self.settings.redis_url
        if url is None:
            self.embedded = EmbeddedRedis(self.settings.data_dir, self.settings.redis_fsync)
            url = self.embedded.url
        self.redis = connect(url)
        await self.redis.ping()
        self.store = Store(self.redis, parser=self.publisher)
        self.analytics = Recorder(
            self.redis, enabled=self.settings.analytics, stream_max=self.settings.analytics_stream_max
        )
        self.analytics.start()
        self.experiments = Experiments(self.redis, self.store)
        self.queue = JobQueue(self.redis, lease_s=self.settings.job_lease_s)
        self.events = Events(self.redis)
        await self.events.start()
        self.director = Director(self.store, self.queue, self.events, renderer_names(self.settings))
        self.dubbing = Dubbing(self.settings)
        self.streaming = Streaming(self.store, self.dubbing)
        replica = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.lookahead = Lookahead(
            self.director,
            self.queue,
            replica,
            self.settings.render_workers,
            segment_s=self.settings.segment_seconds,
            tuning=METERED if self.settings.gpu_billing == "metered" else None,
        )
        self.events.listen(self.lookahead.on_event)
        self._tasks.append(asyncio.create_task(self.lookahead.run(), name="lookahead"))
        await self.publish_seed_stories()
        diffusion = any(profile.tier != "animatic" for profile in self.settings.ladder)
        self.start_workers(("render", "diffuse") if diffusion else ("render",), self.settings.render_workers)
        self.start_workers(("write",), self.settings.write_workers)
        self.start_workers(("produce",), self.settings.produce_workers)

    def spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """Run ``work`` in the background until it ends or the server stops."""
        self._tasks.append(asyncio.create_task(work, name=name))

    def start_workers(self, kinds: tuple[JobKind, ...], count: int) -> None:
        """``count`` worker loops taking jobs of ``kinds``, sharing a pool of as many processes."""
        if count == 0:
            return
        pool = WorkerPool(count, name=f"{'+'.join(kinds)} pool")
        self._pools.append(pool)
        for _ in range(count):
            worker = Worker(self.settings, self.store, self.queue, self.director, pool, kinds)
            self._tasks.append(asyncio.create_task(worker.run(), name=f"{'+'.join(kinds)}-worker"))

    async def publish_seed_stories(self) -> None:
        files = seed_story_files() if self.settings.seed_stories else []
        if self.settings.stories_dir is not None:
            files += sorted(p for p in self.settings.stories_dir.iterdir() if p.suffix in {".yaml", ".yml", ".json"})
        for path in files:
            try:
                story, warnings = load_story(path.read_bytes(), source=path.name)
            except StoryError as exc:
                log.error("not publishing %s: %s", path, exc)
                continue
            for warning in warnings:
                log.warning("%s: %s", path.name, warning)
            version, created = await self.store.publish(story)
            log.info("story %s v%d %s", story.id, version, "published" if created else "already published")
            if self.settings.warm_authored:
                loaded = await self.store.story(story.id, version)
                if loaded is not None:
                    await self.director.warm(loaded, self.settings.warm_budget)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.analytics.close()
        await self.events.stop()
        await self.redis.aclose()
        for pool in self._pools:
            pool.close()
        if self.embedded is not None:
            self.embedded.close()
