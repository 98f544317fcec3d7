"""Each viewer's HLS stream: the shared picture's segments, as they are stored, with the viewer's voice.

How the stream carries the viewer's voice: per-segment assembly. The picture's stream (``media/streams/<clip
key>/``) is video only and shared by every viewer with the same look; a viewer's stream is a media playlist
of segments that each hold the picture's segment with their voice muxed in (:mod:`reelfork.generation.render.
dubbed_segments`), made on the first request and kept on disk by (picture, locale, name), like assembled clips.
One muxed playlist, rather than a master playlist with a per-viewer audio rendition, because every HLS player
(native or hls.js) plays one, and a segment costs milliseconds to assemble.

The playlist is an ``EVENT`` playlist that starts at the beginning (``#EXT-X-START:TIME-OFFSET=0``), lists the
segments stored so far, and is closed with ``#EXT-X-ENDLIST`` once the last one is.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from pathlib import Path

from pydantic import BaseModel, ConfigDict
from reelfork.generation.production.delivery import replace_text, webvtt_text
from reelfork.generation.render.dub import LineVoices, ViewerVoice, viewer_voice, voice_packets
from reelfork.generation.render.dubbed_segments import audio_range, dubbed_segment, segment_audio
from reelfork.generation.render.encoding import SAMPLE_RATE
from reelfork.generation.render.labels import AIGC_KEY, PRODUCER, aigc_label
from reelfork.generation.render.segments import INIT, segment_name, write_atomic
from reelfork.narrative.story import Scene, Story
from reelfork.server.dubbing import STREAMS, VIEWERS, Dubbing, Machine, with_machine
from reelfork.server.queue import keys
from reelfork.server.store import SESSION_TTL_S, Store, StoredStream, StreamPlan

PLAYLIST = "index.m3u8"
VOICES_KEPT = 256
OPENED_KEPT = 100_000
REFRESH_S = 3600.0
"""A viewer stream's record lives :data:`SESSION_TTL_S`; handed out again, it is renewed at most this often."""
"""Viewers' voice tracks (AAC packets) kept in memory, for the segments they will ask for next."""


class ViewerStream(BaseModel):
    """What one viewer's stream is made of: the picture's stream, and whose voice."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    picture: str
    """The clip key of the shared picture."""
    story: str
    version: int
    scene: str
    locale: str
    name: str
    opened: float = 0.0
    """When the stream was handed to the viewer (epoch seconds), in the message sent right after."""


def playlist(stream: StoredStream) -> str:
    """The HLS media playlist of the stream's segments stored so far (closed once the last one is)."""
    plan = stream.plan
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:7",
        f"#EXT-X-TARGETDURATION:{math.ceil(plan.segment_frames / plan.fps)}",
        "#EXT-X-PLAYLIST-TYPE:EVENT",
        "#EXT-X-START:TIME-OFFSET=0",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        f'#EXT-X-MAP:URI="{INIT}"',
    ]
    for segment in stream.segments:
        lines += [f"#EXTINF:{segment.frames / plan.fps:.6f},", segment_name(segment.index)]
    if stream.complete:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


class Streaming:
    """Opens viewers' streams (from the play side) and serves their playlists and segments (from the web side)."""

    def __init__(self, store: Store, dubbing: Dubbing) -> None:
        self.store = store
        self.dubbing = dubbing
        self.media = dubbing.media
        self.voices: OrderedDict[str, list[tuple[int, bytes]]] = OrderedDict()
        self.opened: OrderedDict[str, float] = OrderedDict()
        """Viewer streams this process kept in Redis lately, and ``time.monotonic()`` then."""
        self._locks: dict[str, asyncio.Lock] = {}

    async def open(
        self,
        story: Story,
        version: int,
        scene: Scene,
        stream: StoredStream,
        locale: str,
        name: str,
        machine: Machine,
        subtitles: bool = True,
    ) -> tuple[str, str]:
        """The viewer's stream id (the key their assembled clip will have) and their WebVTT (relative to the media
        dir), written now unless ``subtitles`` is false."""
        paths = self.dubbing.paths(stream.key, locale, name, machine)
        stream_id = Path(paths.file).stem
        record = ViewerStream(picture=stream.key, story=story.id, version=version, scene=scene.id, locale=locale,
                              name=name, opened=time.time())
        # The first opening stands (``opened`` is when the viewer first had it); later ones keep it alive. Viewers
        # with the same picture, locale and name share a stream: one kept here lately needs no round trip.
        now = time.monotonic()
        if now - self.opened.get(stream_id, -REFRESH_S) >= REFRESH_S:
            key = keys.viewer_stream(stream_id)
            if not await self.store.redis.set(key, record.model_dump_json(), ex=SESSION_TTL_S, nx=True):
                await self.store.redis.expire(key, SESSION_TTL_S)
            self.opened[stream_id] = now
            self.opened.move_to_end(stream_id)
            if len(self.opened) > OPENED_KEPT:
                self.opened.popitem(last=False)
        vtt = self.media / paths.subtitles
        if subtitles and not vtt.exists():
            cues = await asyncio.to_thread(self._cues, story, scene, stream.plan, locale, name, machine)
            vtt.parent.mkdir(parents=True, exist_ok=True)
            replace_text(vtt, webvtt_text(cues))
        return stream_id, paths.subtitles

    def _viewer_voice(
        self, story: Story, scene: Scene, plan: StreamPlan, locale: str, name: str, machine: Machine
    ) -> tuple[ViewerVoice, int]:
        length = round(plan.frames / plan.fps * SAMPLE_RATE)
        voices: LineVoices = self.dubbing.voices
        text = with_machine(story, locale, machine)
        return viewer_voice(text, scene, locale, name, plan.slots, voices, length), length

    def _cues(
        self, story: Story, scene: Scene, plan: StreamPlan, locale: str, name: str, machine: Machine
    ) -> list[tuple[str, float, float, str, str]]:
        """The viewer's subtitle cues (their speech is synthesised, or found on disk; not encoded yet)."""
        return self._viewer_voice(story, scene, plan, locale, name, machine)[0].cues

    def _voice(
        self, story: Story, scene: Scene, plan: StreamPlan, locale: str, name: str, machine: Machine
    ) -> list[tuple[int, bytes]]:
        """The viewer's voice track as AAC packets, on the picture's timeline."""
        voice, length = self._viewer_voice(story, scene, plan, locale, name, machine)
        return voice_packets(voice.spoken, length, self.dubbing.voices)

    async def viewer(self, stream_id: str) -> ViewerStream | None:
        raw = await self.store.redis.get(keys.viewer_stream(stream_id))
        return ViewerStream.model_validate_json(raw) if raw is not None else None

    async def playlist(self, stream_id: str) -> str | None:
        viewer = await self.viewer(stream_id)
        stream = await self.store.stream(viewer.picture) if viewer is not None else None
        return playlist(stream) if stream is not None else None

    async def file(self, stream_id: str, index: int | None) -> Path | None:
        """The viewer's init segment (``index`` None) or segment ``index``: made now unless made before; None when
        there is no such stream or the segment is not stored yet."""
        folder = self.media / VIEWERS / STREAMS / stream_id
        path = folder / (INIT if index is None else segment_name(index))
        if path.exists():
            return path
        viewer = await self.viewer(stream_id)
        stream = await self.store.stream(viewer.picture) if viewer is not None else None
        if viewer is None or stream is None or not stream.segments:
            return None
        made = 0 if index is None else index
        if made >= len(stream.segments):
            return None
        lock = self._locks.setdefault(stream_id, asyncio.Lock())
        async with lock:
            if not path.exists():
                packets = await self._packets(stream_id, viewer, stream)
                await asyncio.to_thread(self._make, folder, stream, viewer, made, packets)
        if not lock.locked():
            self._locks.pop(stream_id, None)
        return path

    async def _packets(
        self, stream_id: str, viewer: ViewerStream, stream: StoredStream
    ) -> list[tuple[int, bytes]]:
        found = self.voices.get(stream_id)
        if found is not None:
            self.voices.move_to_end(stream_id)
            return found
        story = await self.store.story(viewer.story, viewer.version)
        if story is None:
            raise LookupError(f"story {viewer.story!r} v{viewer.version} is gone")
        scene = story.story.scene_index().get(viewer.scene)
        machine: Machine = None
        if scene is None:
            written = await self.store.written(viewer.scene)
            scene = written.scene if written is not None else None
            machine = await self.store.translation(viewer.scene, viewer.locale)
        if scene is None:
            raise LookupError(f"scene {viewer.scene!r} is gone")
        packets = await asyncio.to_thread(
            self._voice, story.story, scene, stream.plan, viewer.locale, viewer.name, machine
        )
        self._keep(stream_id, packets)
        return packets

    def _keep(self, stream_id: str, packets: list[tuple[int, bytes]]) -> None:
        self.voices[stream_id] = packets
        if len(self.voices) > VOICES_KEPT:
            self.voices.popitem(last=False)

    def _make(
        self, folder: Path, stream: StoredStream, viewer: ViewerStream, index: int, packets: list[tuple[int, bytes]]
    ) -> None:
        """Write the viewer's segment ``index`` (and their init segment, the first time)."""
        plan = stream.plan
        source = self.media / STREAMS / stream.key
        first = index * plan.segment_frames
        frames = stream.segments[index].frames
        start, end = audio_range(first, frames, plan.fps)
        audio = segment_audio(packets, start, end, last=index == plan.count - 1)
        # The stream's own content ID: the same picture, locale and name give the same one.
        metadata = {AIGC_KEY: aigc_label(folder.name, producer=PRODUCER).to_json(), "title": viewer.scene}
        init, fragment = dubbed_segment(
            (source / INIT).read_bytes(), (source / segment_name(index)).read_bytes(), first, plan.fps, audio,
            viewer.locale, metadata,
        )
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / INIT).exists():
            write_atomic(folder / INIT, init, self.dubbing.signer)  # what C2PA covers of a stream: segments.py
        write_atomic(folder / segment_name(index), fragment)
