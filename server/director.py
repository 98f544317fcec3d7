"""The director: which scene comes next, the content addresses of what to write or render, and waiting for it.

What to queue ahead of each viewer, and when, is the lookahead scheduler's (``server/lookahead/engine.py``);
the director queues what is needed now (a scene to write for a choice just made, a clip just
written) and warms authored scenes at low priority. It never changes a viewer's state itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import cast

from reelfork.generation.render.profiles import PROFILES
from reelfork.narrative.state import ViewerState, generated_scene_id, is_generated
from reelfork.narrative.story import Choice, Scene, Story
from reelfork.server.analytics.signals import watched
from reelfork.server.lookahead.warmup import STEP_S as WARM_STEP_S
from reelfork.server.lookahead.warmup import warm_order
from reelfork.server.queue import keys as queue_keys
from reelfork.server.queue.events import Events
from reelfork.server.queue.jobs import JobKind, JobQueue, render_kind
from reelfork.server.queue.notices import RESUMED, ClipReady, Failed, topic
from reelfork.server.queue.payloads import render_job, write_job
from reelfork.server.store import Store, StoredClip, StoredStream, StoryVersion, clip_key

CLIP_KEYS_CACHED = 100_000
WARM_DELAY_S = 10_000_000.0
"""Warm-up work is scored as due far in the future: anything a viewer needs runs first."""


def warmer(story_id: str) -> str:
    """The wanter of a story's warm-up jobs in the queue."""
    return f"warm:{story_id}"


def default_look(story: Story, look: str | None) -> str | None:
    """``look``, or the persona's default look (None when the story's persona offers none)."""
    if look is not None:
        return look
    persona = story.persona
    default = persona.look(None) if persona is not None else None
    return default.id if default is not None else None


class Director:
    def __init__(self, store: Store, queue: JobQueue, events: Events, renderers: Mapping[str, str]) -> None:
        if not renderers:
            raise ValueError("the director needs at least one render profile")
        self.store = store
        self.queue = queue
        self.events = events
        self.renderers = dict(renderers)
        """Render profile → renderer and model name, best profile first. The names go into clip keys, so a
        new model never reuses an old model's clips; the later profiles are the fallbacks."""
        self.profiles: tuple[str, ...] = tuple(self.renderers)
        self.tiers = {name: PROFILES[name].tier for name in self.profiles}
        self.profile_name = self.profiles[0]
        self._clip_keys: dict[tuple[str, str, str, str | None, str], str] = {}

    async def scene(self, story: StoryVersion, scene_id: str) -> Scene | None:
        """An authored scene, or a written one (following a fallback redirect)."""
        if not is_generated(scene_id):
            return story.story.scene_index().get(scene_id)
        written = await self.store.written(scene_id)
        if written is None:
            return None
        if written.redirect is not None:
            return story.story.scene_index().get(written.redirect)
        return written.scene

    def target(self, story: StoryVersion, state: ViewerState, choice: Choice) -> str:
        """Where a choice leads: an authored scene, or the content address of the scene to write."""
        if choice.target is not None:
            return choice.target
        return generated_scene_id(story.digest, state.current, choice.id)

    async def resolved_target(self, story: StoryVersion, state: ViewerState, choice: Choice) -> str | None:
        """Like :meth:`target`, with written redirects followed; ``None`` while the scene is unwritten."""
        target = self.target(story, state, choice)
        if not is_generated(target):
            return target
        written = await self.store.written(target)
        if written is None:
            return None
        return written.redirect or target

    def clip_key(
        self,
        story: StoryVersion,
        scene: Scene,
        profile: str | None = None,
        look: str | None = None,
        locale: str | None = None,
    ) -> str:
        """The content address of the scene's shared picture in ``profile`` (default: the best), the persona's
        ``look`` (default: the first) and the ``locale`` its lips move to (default: the story's language)."""
        profile = profile or self.profile_name
        look = default_look(story.story, look)
        locale = locale or story.story.language
        # A scene id names one content within a story version (written scenes are content-addressed),
        # so the hash of its JSON is computed once: the lookahead asks for it on every observation.
        cached = (story.digest, scene.id, profile, look, locale)
        key = self._clip_keys.get(cached)
        if key is None:
            key = clip_key(scene, story.story, profile, self.renderers[profile], look, locale)
            self._clip_keys[cached] = key
            if len(self._clip_keys) > CLIP_KEYS_CACHED:
                del self._clip_keys[next(iter(self._clip_keys))]
        return key

    def clip_keys(
        self, story: StoryVersion, scene: Scene, look: str | None = None, locale: str | None = None
    ) -> list[str]:
        """The scene's picture in each profile, best first: any of them can be shown, the first is wanted."""
        return [self.clip_key(story, scene, profile, look, locale) for profile in self.profiles]

    async def best_clip(self, keys: Sequence[str]) -> StoredClip | None:
        """The first of ``keys`` that is rendered."""
        best = (await self.store.best_clips([list(keys)]))[0]
        return best[1] if best is not None else None

    # -- queueing --------------------------------------------------------------------------------

    async def warm(self, story: StoryVersion, budget: int) -> int:
        """Queue up to ``budget`` authored scenes' clips at low priority: first those the analytics show viewers of
        this story's recent versions entered (most first), then the rest, earliest from the start first.

        Returns how many were queued.

        A warm-up is a wish of the story's (``warm:<story>``), withdrawn when a later publish of the story warms
        other clips or :meth:`cool` is called: a clip no version needs any more leaves the queue unrendered,
        unless a viewer's lookahead wants it too.
        """
        seen = await watched(self.store.redis, story.story.id, story.version)
        scenes = warm_order(story.story, budget, seen)
        keys = [self.clip_key(story, scene) for scene in scenes]
        existing = await self.store.clips(keys)
        kind = render_kind(self.tiers[self.profile_name])
        wanted: dict[str, str] = {key: kind for key, clip in zip(keys, existing, strict=True) if clip is None}
        await self.cool(story.story.id, keep=set(wanted))
        if wanted:
            await self.store.redis.hset(queue_keys.warming(story.story.id), mapping={k: v for k, v in wanted.items()})
        queued = 0
        due = time.time() + WARM_DELAY_S
        for rank, (scene, key) in enumerate(zip(scenes, keys, strict=True)):
            if key in wanted:
                queued += await self.ensure_clip(story, scene, due + rank * WARM_STEP_S, wanter=warmer(story.story.id))
        return queued

    async def cool(self, story_id: str, keep: set[str] | None = None) -> int:
        """Withdraw the story's warm-up wishes (but those for ``keep``); returns how many jobs that dropped."""
        name = queue_keys.warming(story_id)
        recorded = cast(dict[str, str], await self.store.redis.hgetall(name))  # decode_responses: text
        dropped = 0
        for key, kind in recorded.items():
            if keep is not None and key in keep:
                continue
            dropped += await self.queue.unwant(cast(JobKind, kind), key, warmer(story_id))
            await self.store.redis.hdel(name, key)
        return dropped

    async def ensure_clip(
        self, story: StoryVersion, scene: Scene, due: float, look: str | None = None, locale: str | None = None,
        wanter: str | None = None,
    ) -> bool:
        """Queue the scene's picture in ``look`` and ``locale``, due at ``due`` (epoch seconds), unless it exists.
        With ``wanter``, as that wanter's wish, which :meth:`JobQueue.unwant` withdraws; else pinned."""
        key = self.clip_key(story, scene, look=look, locale=locale)
        if await self.store.clip(key) is not None:
            return False
        locale = locale if locale is not None and locale != story.story.language else None
        payload = render_job(story, scene.id, key, self.profile_name, default_look(story.story, look), locale)
        kind = render_kind(self.tiers[self.profile_name])
        if wanter is not None:
            return await self.queue.want(kind, key, payload, due, wanter)
        return await self.queue.enqueue(kind, key, payload, due)

    async def ensure_written(
        self, story: StoryVersion, state: ViewerState, choice: Choice, target: str, due: float
    ) -> bool:
        return await self.queue.enqueue("write", target, write_job(story, state, choice.id, target), due)

    # -- waiting ---------------------------------------------------------------------------------

    async def wait_written(self, scene_id: str, timeout: float) -> bool:
        written, resumed = self.events.subscribe(topic("written", scene_id)), self.events.subscribe(RESUMED)
        deadline = time.monotonic() + timeout
        try:
            while True:
                if await self.store.written(scene_id) is not None:
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                done, _ = await asyncio.wait([written, resumed], timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
                if resumed not in done:  # the notice came, or the time is up
                    return await self.store.written(scene_id) is not None
                resumed = self.events.subscribe(RESUMED)  # notices were lost: look at the store again
        finally:
            written.cancel()
            resumed.cancel()

    async def wait_clip(self, keys: Sequence[str], timeout: float) -> StoredClip | None:
        """The best of ``keys`` (one clip in several profiles, best first) once any is rendered; ``None``
        after ``timeout``, or when a render gave up (or, after notices were lost, is gone from the queue)
        and no other profile's render is still on the way."""
        topics = [topic(kind, key) for kind in ("clip", "failed") for key in keys]
        waiting = {name: self.events.subscribe(name) for name in topics}
        deadline = time.monotonic() + timeout
        try:
            while True:
                if RESUMED not in waiting:  # notices lost while Redis was away: look at the store again
                    waiting[RESUMED] = self.events.subscribe(RESUMED)
                clip = await self.best_clip(keys)
                remaining = deadline - time.monotonic()
                if clip is not None or remaining <= 0:
                    return clip
                done, _ = await asyncio.wait(waiting.values(), timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
                heard = {name for name, future in waiting.items() if future in done}
                if not heard or any(isinstance(waiting[name].result(), ClipReady) for name in heard):
                    return await self.best_clip(keys)
                for name in heard:
                    del waiting[name]
                if not any([await self.queue.is_queued(key) for key in keys]):
                    return await self.best_clip(keys)
        finally:
            for future in waiting.values():
                future.cancel()

    async def playable(self, keys: Sequence[str]) -> tuple[StoredClip | None, StoredStream | None]:
        """The best complete clip of ``keys`` and its stream; else, while none is complete, the best stream with a
        segment stored."""
        clip = await self.best_clip(keys)
        if clip is not None:
            return clip, await self.store.stream(clip.key)
        return None, (await self.store.best_streams([list(keys)]))[0]

    async def wait_playable(
        self, keys: Sequence[str], timeout: float
    ) -> tuple[StoredClip | None, StoredStream | None]:
        """:meth:`playable` once anything is: a complete clip, or a stream's first segment; ``(None, None)`` after
        ``timeout``, or when every render of ``keys`` gave up."""
        topics = [topic(kind, key) for kind in ("clip", "segment", "failed") for key in keys]
        waiting = {name: self.events.subscribe(name) for name in topics}
        deadline = time.monotonic() + timeout
        try:
            while True:
                if RESUMED not in waiting:
                    waiting[RESUMED] = self.events.subscribe(RESUMED)
                clip, stream = await self.playable(keys)
                remaining = deadline - time.monotonic()
                if clip is not None or stream is not None or remaining <= 0:
                    return clip, stream
                done, _ = await asyncio.wait(waiting.values(), timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
                heard = {name for name, future in waiting.items() if future in done}
                for name in heard:
                    notice = waiting.pop(name).result()
                    if not isinstance(notice, Failed):
                        waiting[name] = self.events.subscribe(name)
                if any(name.startswith("failed:") for name in heard) and not any(
                    [await self.queue.is_queued(key) for key in keys]
                ):
                    return await self.playable(keys)
        finally:
            for future in waiting.values():
                future.cancel()
