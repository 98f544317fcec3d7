"""Cross-process notices over Redis pub/sub: "scene written", "clip ready".

Any server replica can wait for work done by any worker; a notice missed while nobody listened is
harmless because waiters always re-check the store after subscribing. Pub/sub does not queue: a
notice published while this process's subscription is down (Redis restarting) is lost, so when
notices flow again a :data:`RESUMED` notice tells every waiter and listener to look at the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis

CHANNEL = "rf:events"
RESUMED = "resumed"
"""The topic of the notice dispatched in this process (not published) when the subscription is back
after it was lost: whatever was announced meanwhile is in the store, not in the notices."""
log = logging.getLogger(__name__)


class Events:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self._waiters: dict[str, set[asyncio.Future[dict[str, Any]]]] = defaultdict(set)
        self._listeners: list[Callable[[dict[str, Any]], None]] = []
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="events-listener")
        await asyncio.wait_for(self._ready.wait(), timeout=10)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def publish(self, topic: str, **data: Any) -> None:
        await self.redis.publish(CHANNEL, json.dumps({"topic": topic, **data}))

    def subscribe(self, topic: str) -> asyncio.Future[dict[str, Any]]:
        """A future resolved by the next notice on ``topic``; cancel it when no longer needed."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters[topic].add(future)
        future.add_done_callback(lambda f: self._forget(topic, f))
        return future

    def listen(self, listener: Callable[[dict[str, Any]], None]) -> None:
        """Call ``listener`` with every notice from now on, :data:`RESUMED` included."""
        self._listeners.append(listener)

    def _forget(self, topic: str, future: asyncio.Future[dict[str, Any]]) -> None:
        waiters = self._waiters.get(topic)
        if waiters is not None:
            waiters.discard(future)
            if not waiters:
                del self._waiters[topic]

    async def _listen(self) -> None:
        while True:
            try:
                async with self.redis.pubsub() as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    # redis-py reconnects a pub/sub connection and subscribes again by itself: hear of it.
                    connection = pubsub.connection
                    if connection is not None:
                        connection.register_connect_callback(self._reconnected)
                    try:
                        if self._ready.is_set():
                            self._resume()
                        self._ready.set()
                        async for message in pubsub.listen():
                            if message["type"] == "message":
                                self._dispatch(json.loads(message["data"]))
                    finally:
                        if connection is not None:  # it goes back to the pool, for other uses
                            connection.deregister_connect_callback(self._reconnected)
            except asyncio.CancelledError:
                raise
            except Exception:  # a Redis restart: reconnect and go on
                log.warning("event listener lost Redis; reconnecting", exc_info=True)
                await asyncio.sleep(0.5)

    def _reconnected(self, connection: object) -> None:
        self._resume()

    def _resume(self) -> None:
        log.info("event subscription is back; notices sent meanwhile were lost")
        self._dispatch({"topic": RESUMED})

    def _dispatch(self, event: dict[str, Any]) -> None:
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                log.exception("event listener failed on %s", event.get("topic"))
        for future in list(self._waiters.get(event.get("topic", ""), ())):
            if not future.done():
                future.set_result(event)
