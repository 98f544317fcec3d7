"""Cross-process notices over Redis pub/sub: "scene written", "clip ready" (:mod:`reelfork.server.queue.notices`).

Any server replica can wait for work done by any worker; a notice missed while nobody listened is
harmless because waiters always re-check the store after subscribing. Pub/sub does not queue: a
notice published while this process's subscription is down (Redis restarting) is lost, so when
notices flow again a :class:`Resumed` notice tells every waiter and listener to look at the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable

import redis.asyncio as aioredis
from pydantic import ValidationError
from reelfork.server.queue import keys
from reelfork.server.queue.notices import AnyNotice, Notice, Resumed, parse_notice

log = logging.getLogger(__name__)


class Events:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self._waiters: dict[str, set[asyncio.Future[AnyNotice]]] = defaultdict(set)
        self._listeners: list[Callable[[AnyNotice], None]] = []
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

    async def publish(self, notice: Notice) -> None:
        await self.redis.publish(keys.EVENTS, notice.wire())

    def subscribe(self, topic: str) -> asyncio.Future[AnyNotice]:
        """A future resolved by the next notice on ``topic`` (:func:`reelfork.server.queue.notices.topic`);
        cancel it when no longer needed."""
        future: asyncio.Future[AnyNotice] = asyncio.get_running_loop().create_future()
        self._waiters[topic].add(future)
        future.add_done_callback(lambda f: self._forget(topic, f))
        return future

    def listen(self, listener: Callable[[AnyNotice], None]) -> None:
        """Call ``listener`` with every notice from now on, :class:`Resumed` included."""
        self._listeners.append(listener)

    def _forget(self, topic: str, future: asyncio.Future[AnyNotice]) -> None:
        waiters = self._waiters.get(topic)
        if waiters is not None:
            waiters.discard(future)
            if not waiters:
                del self._waiters[topic]

    async def _listen(self) -> None:
        while True:
            try:
                async with self.redis.pubsub() as pubsub:
                    await pubsub.subscribe(keys.EVENTS)
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
                                self._received(message["data"])
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
        self._dispatch(Resumed())

    def _received(self, data: str) -> None:
        try:
            notice = parse_notice(data)
        except (ValueError, ValidationError):  # from another version, or not ours: nobody here can use it
            log.warning("ignoring a notice this version cannot read: %s", data[:200], exc_info=True)
            return
        self._dispatch(notice)

    def _dispatch(self, notice: AnyNotice) -> None:
        for listener in self._listeners:
            try:
                listener(notice)
            except Exception:
                log.exception("event listener failed on %s", notice.topic)
        for future in list(self._waiters.get(notice.topic, ())):
            if not future.done():
                future.set_result(notice)
