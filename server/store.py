"""Everything the server keeps, in Redis: story versions, viewer sessions, written scenes, clips.

Key names are in :mod:`reelfork.server.queue.keys`; a viewer's session is stored under a hash of its
token, so the token itself (the only proof of ownership) is never at rest. The client decodes replies
(``decode_responses``), which redis-py's types cannot know: hence the casts to ``str``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import pickle
import secrets
import zlib
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, cast

import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, Field
from reelfork.generation.render.stills import reference_keys
from reelfork.narrative.locales import localized
from reelfork.narrative.state import ViewerState
from reelfork.narrative.story import Scene, Story, collection_paused
from reelfork.server.entitlements import Unlocked
from reelfork.server.queue import keys

SESSION_TTL_S = 30 * 24 * 3600
CLIPS_REMEMBERED = 50_000
"""Rendered clips a store keeps in memory (a few hundred bytes each)."""


class StoredClip(BaseModel):
    key: str
    file: str
    """Path relative to the media dir."""
    duration: float
    last_frame: str | None = None
    slots: dict[str, float] | None = None
    """Seconds each line holds on the picture's timeline: what a viewer's voice is fitted into (a shared picture)."""


class StreamPlan(BaseModel):
    """What a clip's stream will be, saved before its first segment: its planned length and how it is cut."""

    model_config = ConfigDict(frozen=True)

    fps: int
    frames: int
    """Frames in the whole clip: its planned length."""
    segment_frames: int
    """Frames per segment; the last one holds what is left."""
    slots: dict[str, float]
    """The picture's line slots (as :attr:`StoredClip.slots`): what each viewer's voice is fitted into."""

    @property
    def duration(self) -> float:
        return self.frames / self.fps

    @property
    def count(self) -> int:
        """Segments in the whole clip."""
        return -(-self.frames // self.segment_frames)


class StoredSegment(BaseModel):
    model_config = ConfigDict(frozen=True)

    index: int
    frames: int
    worker: str
    """Who rendered it (a resumed stream has segments from several workers)."""
    stored_at: float = 0.0
    """When it was recorded (epoch seconds)."""


class StoredStream(BaseModel):
    """A clip's stream as stored so far: its plan and its segments, in order, from the first, without a gap."""

    model_config = ConfigDict(frozen=True)

    key: str
    plan: StreamPlan
    segments: list[StoredSegment]

    @property
    def complete(self) -> bool:
        return len(self.segments) == self.plan.count

    @property
    def duration(self) -> float:
        """The planned length, in seconds."""
        return self.plan.duration


class StoredScene(BaseModel):
    """What the writer produced for an open choice: a scene, or a redirect to an authored fallback."""

    scene: Scene | None = None
    redirect: str | None = None
    provenance: dict[str, Any] = {}


class Position(BaseModel):
    """The last playback position a viewer reported: seconds on the clip of ``scene``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    scene: str
    seconds: float


class SessionRecord(BaseModel):
    """One viewer's session: the story state, the public viewer id, where playback was, what is unlocked."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    state: ViewerState
    viewer: str
    position: Position | None = None
    """Only in sessions saved before positions were kept apart (:meth:`Store.save_position`)."""
    unlocked: Unlocked = Field(default_factory=list)
    """Episodes unlocked by entitlements the viewer sent; kept for the session's life."""
    locale: str | None = None
    """The viewer's locale; None: the story's own language."""
    name: str | None = None
    """The name the viewer gave the persona; None: the persona's default."""
    look: str | None = None
    """The persona's look the viewer picked; None: the default look."""


@dataclass(frozen=True)
class StoryVersion:
    story: Story
    version: int
    digest: str


PACK_ABOVE = 256 * 1024
"""Story JSON longer than this is stored compressed: Redis answers nobody while it takes in a 10 MB value."""
PACKED = "zlib+b64:"


def packed(document: str) -> str:
    """A story's JSON as stored: as is up to :data:`PACK_ABOVE` characters, else compressed (text, for Redis)."""
    if len(document) <= PACK_ABOVE:
        return document
    return PACKED + base64.b64encode(zlib.compress(document.encode(), 1)).decode("ascii")


def is_packed(stored: str) -> bool:
    """Whether :func:`packed` compressed this document (it is large: parsing it takes seconds)."""
    return stored.startswith(PACKED)


def unpacked(stored: str) -> str:
    """The story JSON :func:`packed` stored."""
    if not stored.startswith(PACKED):
        return stored
    return zlib.decompress(base64.b64decode(stored[len(PACKED) :])).decode()


def new_session_token() -> str:
    """128 bits from the OS's CSPRNG, URL-safe."""
    return secrets.token_urlsafe(16)


def new_viewer_id() -> str:
    """A public viewer id for a client that sets none: random, unrelated to the token."""
    return "v-" + secrets.token_urlsafe(12)


def legacy_viewer_id(token: str) -> str:
    """The viewer id of a session stored before viewers had ids: stable, and not the token's key digest."""
    return "v-" + hashlib.sha256(b"viewer\x1f" + token.encode()).hexdigest()[:16]


def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:32]


def _session_key(token: str) -> str:
    return keys.session(_token_digest(token))


def _loaded(stored: str, version: int, digest: str | None) -> StoryVersion:
    """A stored version, parsed; its digest computed only when it was stored without one (before they were)."""
    with collection_paused(lasting=True):  # cached for the process's life
        story = Story.model_validate_json(unpacked(stored))
        story.scene_index()
        return StoryVersion(story=story, version=version, digest=digest or story.digest())


def pickled_story(stored: str, digest: str | None) -> tuple[bytes, str]:
    """A stored version parsed in another process (the parser's pool), pickled, with its digest.

    Parsing 15 MB of JSON holds the GIL for 0.15 s at a stretch (pydantic reads the whole text first), which
    stalls the server's event loop whichever thread does it; unpickling interleaves with it (at most ~20 ms)."""
    with collection_paused():
        story = Story.model_validate_json(unpacked(stored))
        return pickle.dumps(story, protocol=pickle.HIGHEST_PROTOCOL), digest or story.digest()


def _unpickled(pickled: bytes, version: int, digest: str) -> StoryVersion:
    with collection_paused(lasting=True):  # cached for the process's life
        story = cast(Story, pickle.loads(pickled))  # from :func:`pickled_story`, in our own pool's process
        story.scene_index()
        return StoryVersion(story=story, version=version, digest=digest)


class Store:
    def __init__(self, redis: aioredis.Redis, parser: Executor | None = None) -> None:
        self.redis = redis
        self.parser = parser
        """Where large stories are parsed (:func:`pickled_story`); None: in a thread of this process."""
        self._stories: dict[tuple[str, int], StoryVersion] = {}
        self._clips: dict[str, StoredClip] = {}
        self._streams: dict[str, StoredStream] = {}
        """Complete streams: they never change again."""

    # -- stories: immutable versions -------------------------------------------------------

    async def publish(self, story: Story) -> tuple[int, bool]:
        """Store ``story`` as a new version unless identical content is already published.

        Returns ``(version, created)``.
        """
        return await self.publish_document(story.id, packed(story.model_dump_json()), story.digest())

    async def publish_document(self, story_id: str, document: str, digest: str) -> tuple[int, bool]:
        """:meth:`publish` for a story already serialised by :func:`packed` (``document``) and hashed."""
        key = keys.story(story_id)
        known = await self.redis.hget(key, f"digest:{digest}")
        if known is not None:
            return int(known), False
        version = int(await self.redis.hincrby(key, "latest", 1))
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={f"v{version}": document, f"v{version}:digest": digest, f"digest:{digest}": version})
            pipe.sadd(keys.STORIES, story_id)
            await pipe.execute()
        return version, True

    async def latest(self, story_id: str, version: int | None = None) -> int | None:
        """``version``, or the latest version's number when it is None (None: no such story)."""
        if version is not None:
            return version
        latest = await self.redis.hget(keys.story(story_id), "latest")
        return int(latest) if latest is not None else None

    async def document(self, story_id: str, version: int | None = None) -> tuple[int, str] | None:
        """A version's number and its JSON as stored (:func:`packed`: compressed when large), not parsed."""
        version = await self.latest(story_id, version)
        if version is None:
            return None
        raw = cast(str | None, await self.redis.hget(keys.story(story_id), f"v{version}"))  # decode_responses
        return (version, raw) if raw is not None else None

    async def republish(self, story_id: str, version: int) -> int | None:
        """Publish ``version``'s content again as the latest version (an experiment's arm, a promoted winner);
        its clips are shared, being content-addressed. ``None`` when there is no such version."""
        key = keys.story(story_id)
        document = cast(str | None, await self.redis.hget(key, f"v{version}"))
        loaded = await self.story(story_id, version) if document is not None else None
        if document is None or loaded is None:
            return None
        latest = int(await self.redis.hincrby(key, "latest", 1))
        digest = loaded.digest
        await self.redis.hset(
            key, mapping={f"v{latest}": document, f"v{latest}:digest": digest, f"digest:{digest}": latest}
        )
        return latest

    async def story(self, story_id: str, version: int | None = None) -> StoryVersion | None:
        version = await self.latest(story_id, version)
        if version is None:
            return None
        cached = self._stories.get((story_id, version))
        if cached is not None:
            return cached
        fields = [f"v{version}", f"v{version}:digest"]
        stored, digest = cast(list[str | None], await self.redis.hmget(keys.story(story_id), fields))
        if stored is None:
            return None
        if not is_packed(stored):
            loaded = _loaded(stored, version, digest)
        elif self.parser is None:  # a large story takes a second to parse: not on the event loop
            loaded = await asyncio.to_thread(_loaded, stored, version, digest)
        else:
            pickled, known = await asyncio.wrap_future(self.parser.submit(pickled_story, stored, digest))
            loaded = await asyncio.to_thread(_unpickled, pickled, version, known)
        self._stories[(story_id, version)] = loaded
        return loaded

    async def story_ids(self) -> list[str]:
        return sorted(cast(set[str], await self.redis.smembers(keys.STORIES)))

    async def versions(self, story_id: str) -> list[int]:
        latest = await self.redis.hget(keys.story(story_id), "latest")
        return list(range(1, int(latest) + 1)) if latest is not None else []

    # -- sessions ----------------------------------------------------------------------------

    async def save_session(self, token: str, record: SessionRecord) -> None:
        """Durable when it returns (the embedded Redis's fsync policy): save before acknowledging."""
        await self.redis.set(_session_key(token), record.model_dump_json(), ex=SESSION_TTL_S)

    async def load_session(self, token: str) -> SessionRecord | None:
        raw = await self.redis.get(_session_key(token))
        if raw is None:
            return None
        if '"state"' not in raw[:16]:  # stored before sessions had viewers: the bare story state
            return SessionRecord(state=ViewerState.model_validate_json(raw), viewer=legacy_viewer_id(token))
        return SessionRecord.model_validate_json(raw)

    async def save_position(self, token: str, position: Position) -> None:
        await self.redis.set(keys.playback(_token_digest(token)), position.model_dump_json(), ex=SESSION_TTL_S)

    async def load_position(self, token: str, record: SessionRecord) -> Position | None:
        """The last position kept for the session (sessions saved before positions were kept apart carry theirs)."""
        raw = await self.redis.get(keys.playback(_token_digest(token)))
        return Position.model_validate_json(raw) if raw is not None else record.position

    # -- audience -----------------------------------------------------------------------------

    async def count_choice(self, story: StoryVersion, scene_id: str, choice_id: str) -> None:
        await self.redis.hincrby(keys.choices(story.story.id, story.version), f"{scene_id}/{choice_id}", 1)

    async def choice_counts(self, story: StoryVersion) -> dict[tuple[str, str], int]:
        return await self.choice_counts_of(story.story.id, story.version)

    async def choice_counts_of(self, story_id: str, version: int) -> dict[tuple[str, str], int]:
        """``(scene, choice) -> viewers who took it`` in this story version."""
        raw = cast(dict[str, str], await self.redis.hgetall(keys.choices(story_id, version)))
        counts: dict[tuple[str, str], int] = {}
        for field, value in raw.items():
            scene_id, _, choice_id = field.partition("/")
            counts[(scene_id, choice_id)] = int(value)
        return counts

    # -- written scenes ------------------------------------------------------------------------

    async def save_written(
        self, scene_id: str, written: StoredScene, story: StoryVersion, parent: str, choice: str
    ) -> None:
        title = written.scene.title if written.scene is not None else f"fallback: {written.redirect}"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(keys.written(scene_id), written.model_dump_json())
            pipe.hset(
                keys.written_index(story.story.id, story.version),
                f"{parent}/{choice}",
                json.dumps({"scene": scene_id, "title": title}),
            )
            await pipe.execute()

    async def written_index(self, story: StoryVersion) -> list[tuple[str, str, str, str]]:
        return await self.written_index_of(story.story.id, story.version)

    async def written_index_of(self, story_id: str, version: int) -> list[tuple[str, str, str, str]]:
        """``(parent, choice, scene id, title)`` for every scene written in this story version."""
        raw = cast(dict[str, str], await self.redis.hgetall(keys.written_index(story_id, version)))
        found = []
        for field, value in raw.items():
            parent, _, choice = field.partition("/")
            entry = json.loads(value)
            found.append((parent, choice, entry["scene"], entry["title"]))
        return sorted(found)

    async def save_translation(self, scene_id: str, locale: str, texts: dict[str, str]) -> None:
        await self.redis.set(keys.translation(scene_id, locale), json.dumps(texts))

    async def translation(self, scene_id: str, locale: str) -> dict[str, str]:
        """A written scene's machine translation into ``locale`` (text key → text); empty while there is none."""
        raw = await self.redis.get(keys.translation(scene_id, locale))
        return cast(dict[str, str], json.loads(raw)) if raw is not None else {}

    async def written(self, scene_id: str) -> StoredScene | None:
        raw = await self.redis.get(keys.written(scene_id))
        return StoredScene.model_validate_json(raw) if raw is not None else None

    # -- clips -----------------------------------------------------------------------------------

    async def save_clip(self, clip: StoredClip) -> None:
        await self.redis.set(keys.clip(clip.key), clip.model_dump_json())

    async def clip(self, key: str) -> StoredClip | None:
        return (await self.clips([key]))[0]

    async def clips(self, clip_keys: list[str]) -> list[StoredClip | None]:
        """The rendered clips of ``clip_keys`` (None where not rendered yet). A clip never changes once stored (its
        key is its content address), so those seen before come from memory: the lookahead asks for the same few
        hundred clips on behalf of every viewer."""
        found: list[StoredClip | None] = [self._clips.get(key) for key in clip_keys]
        missing = [key for key, clip in zip(clip_keys, found, strict=True) if clip is None]
        if not missing:
            return found
        raws = iter(await self.redis.mget([keys.clip(key) for key in missing]))
        for index, (key, clip) in enumerate(zip(clip_keys, found, strict=True)):
            if clip is None:
                raw = next(raws)
                if raw is not None:
                    found[index] = self._remember_clip(key, StoredClip.model_validate_json(raw))
        return found

    async def best_clips(self, groups: list[list[str]]) -> list[tuple[int, StoredClip] | None]:
        """For each group (one picture's keys, best profile first), the first one rendered: its place in the group
        and the clip; None if none is. A group whose best clip is remembered costs no round trip (every viewer
        asks for the same few, and the fallbacks of a picture rendered in full are never rendered)."""
        asked = [key for group in groups if group[0] not in self._clips for key in group]
        stored = dict(zip(asked, await self.clips(asked), strict=True)) if asked else {}
        best: list[tuple[int, StoredClip] | None] = []
        for group in groups:
            clips = [self._clips[group[0]]] if group[0] not in stored else [stored[key] for key in group]
            best.append(next(((place, clip) for place, clip in enumerate(clips) if clip is not None), None))
        return best

    # -- streams -----------------------------------------------------------------------------------

    async def plan_stream(self, key: str, plan: StreamPlan) -> None:
        """Save a stream's plan before its first segment (a resumed render finds it there already)."""
        await self.redis.hsetnx(keys.stream(key), "plan", plan.model_dump_json())

    async def save_segment(self, key: str, segment: StoredSegment) -> bool:
        """Record a stored segment; False when it was recorded already (by a render killed after storing it)."""
        return bool(await self.redis.hsetnx(keys.stream(key), str(segment.index), segment.model_dump_json()))

    async def stream(self, key: str) -> StoredStream | None:
        """The clip's stream as far as it is stored; None until its plan is."""
        return (await self.streams([key]))[0]

    async def streams(self, stream_keys: list[str]) -> list[StoredStream | None]:
        """The streams of ``stream_keys`` as far as stored (None where not planned yet); complete ones from memory."""
        missing = list(dict.fromkeys(key for key in stream_keys if key not in self._streams))
        fetched: dict[str, StoredStream | None] = {}
        if missing:
            async with self.redis.pipeline(transaction=False) as pipe:
                for key in missing:
                    pipe.hgetall(keys.stream(key))
                raws = cast(list[dict[str, str]], await pipe.execute())
            fetched = {key: self._stream_of(key, raw) for key, raw in zip(missing, raws, strict=True)}
        return [self._streams[key] if key in self._streams else fetched[key] for key in stream_keys]

    async def best_streams(self, groups: list[list[str]]) -> list[StoredStream | None]:
        """For each group (one picture's keys, best profile first), the first stream with a segment stored. A group
        whose best stream is complete (remembered) costs no round trip."""
        asked = [key for group in groups if group[0] not in self._streams for key in group]
        stored = dict(zip(asked, await self.streams(asked), strict=True)) if asked else {}
        best: list[StoredStream | None] = []
        for group in groups:
            if group[0] not in stored:
                best.append(self._streams[group[0]])
                continue
            best.append(next((s for s in (stored[key] for key in group) if s is not None and s.segments), None))
        return best

    def _stream_of(self, key: str, raw: dict[str, str]) -> StoredStream | None:
        """A stream from its Redis hash (None before its plan is saved), remembered once complete."""
        plan = raw.pop("plan", None)
        if plan is None:
            return None
        stored = {int(index): StoredSegment.model_validate_json(value) for index, value in raw.items()}
        segments: list[StoredSegment] = []
        while len(segments) in stored:  # in order, up to the first one missing
            segments.append(stored[len(segments)])
        stream = StoredStream(key=key, plan=StreamPlan.model_validate_json(plan), segments=segments)
        if stream.complete:
            self._streams[key] = stream
            if len(self._streams) > CLIPS_REMEMBERED:
                self._streams.pop(next(iter(self._streams)))
        return stream

    def _remember_clip(self, key: str, clip: StoredClip) -> StoredClip:
        self._clips[key] = clip
        if len(self._clips) > CLIPS_REMEMBERED:
            self._clips.pop(next(iter(self._clips)))
        return clip


def clip_key(
    scene: Scene,
    story: Story,
    profile_name: str,
    renderer: str = "animatic",
    look: str | None = None,
    locale: str | None = None,
) -> str:
    """Content address of a scene's shared picture: what is drawn, in which look, on which timeline, how rendered,
    and the locale its lips move to (None: the story's language).

    Never the viewer's name: every viewer with the same look and locale shares it. The line slots depend on
    the longest text over the story's locales, so those texts are in the key too. A renderer named
    ``tier:model+portraitist`` conditions on cast references (portraits, the place's plate): their keys are in
    the key, and never the path that led to the scene."""
    speakers = {line.speaker for line in scene.lines}
    bible = story.bible_for(look)
    cast = [c.model_dump(mode="json") for c in bible.characters if c.id in speakers]
    texts = [localized(story, scene, locale)[0].model_dump(mode="json", include={"title", "lines"})
             for locale in story.offered_locales()]
    payload = {
        "scene": scene.model_dump(mode="json", exclude={"choices", "ending", "id", "default", "choice_window"}),
        "cast": cast,
        "language": story.language,
        "texts": texts,
        "slot_name": story.persona.slot_name() if story.persona is not None else "",
        "profile": profile_name,
        "mouths": locale or story.language,
        "renderer": f"{renderer}-picture-2",  # bump when a renderer's output changes for the same input
    }
    portraitist = renderer.partition("+")[2]
    if portraitist:
        payload["references"] = reference_keys(scene, bible, portraitist)
    encoded = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()[:32]
