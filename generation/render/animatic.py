"""The CPU animatic: a scene as a voiced, subtitled storyboard clip.

Per scene the backdrop (from ``place`` and ``mood``) and the character cards are
drawn once onto a canvas slightly larger than the frame, one canvas per
highlight state, and converted once to yuv420p (the encoder's format). Per frame
the camera only slices that canvas (a slow integer pan), then blends the small
overlays: title, subtitles, the AI mark. Nothing is converted per frame, and a
frame identical to the previous one is not even composed, which is what keeps
the renderer well under real time on one core.
"""

from __future__ import annotations

import logging
import math
from functools import lru_cache

import numpy as np
from PIL import Image
from reelfork.generation.render.captions import Subtitle, page_ends, subtitle_pages, title_overlay
from reelfork.generation.render.drawing import Overlay, Picture, rgb_to_yuv420, split, yuv420_to_rgb
from reelfork.generation.render.encoding import SAMPLE_RATE, FileSigner
from reelfork.generation.render.finishing import (
    ClipEncoder,
    Stopwatch,
    finish,
    finished_clip,
    labelled_encoder,
    load_previous_frame,
    produce_id,
    speaking_characters,
)
from reelfork.generation.render.labels import BADGE_SECONDS, PRODUCER, aigc_label, badge
from reelfork.generation.render.profiles import RenderProfile
from reelfork.generation.render.request import LineTiming, RenderedClip, RenderRequest
from reelfork.generation.render.scenery import backdrop, card, card_slots
from reelfork.generation.render.soundtrack import LEAD_IN, PAUSE, TAIL, slot_samples, voice_of
from reelfork.generation.render.voice import EspeakSynthesizer, Speech, Synthesizer
from reelfork.narrative.story import NARRATOR, Bible, Character, Line, Scene

log = logging.getLogger(__name__)

CROSSFADE = 0.5
TITLE_IN, TITLE_HOLD, TITLE_OUT = 0.3, 2.2, 2.7
"""The scene title fades in after the cross-fade, holds, and is gone by TITLE_OUT seconds."""
MARGIN = (0.06, 0.04)
"""Extra canvas around the frame (fraction of width, height): the camera's travel."""
CAMERA_PERIOD = (12.6, 20.0)
"""Seconds per camera sway along x and y: about 8 and 6 px/s at 540x960."""


class AnimaticRenderer:
    """The default renderer: CPU only, deterministic, several times faster than real time."""

    def __init__(
        self,
        synthesizer: Synthesizer | None = None,
        threads: int = 1,
        producer: str = PRODUCER,
        badge_seconds: float = BADGE_SECONDS,
        signer: FileSigner | None = None,
    ) -> None:
        self.synthesizer = synthesizer or EspeakSynthesizer()
        self.threads = threads
        self.producer = producer
        self.badge_seconds = badge_seconds
        self.signer = signer
        """Signs each finished MP4 (C2PA) before it is moved into place; None leaves clips unsigned."""

    def render(self, request: RenderRequest) -> RenderedClip:
        return self.render_measured(request)[0]

    def render_measured(self, request: RenderRequest) -> tuple[RenderedClip, dict[str, float]]:
        """Render, and say where the time went (for the benchmark and logs)."""
        watch = Stopwatch()
        characters = speaking_characters(request.scene, request.bible)
        profile = request.profile
        previous = load_previous_frame(request.previous_frame, profile.width, profile.height)
        with watch.measure("labels"):
            label = aigc_label(produce_id(request, previous), producer=self.producer)
            mark = badge(profile.width)
        with watch.measure("draw"):
            stage = Stage(request.scene, characters, profile)
        with watch.measure("encode"):
            encoder = labelled_encoder(request, label, self.threads, self.signer)
        with encoder:
            start = None if previous is None else rgb_to_yuv420(previous)
            timings, picture = Timeline(request, stage, encoder, watch, mark, start, self).run()
            finish(encoder, yuv420_to_rgb(picture), watch)
        with watch.measure("encode"):
            clip = finished_clip(request, timings)
        return clip, dict(watch.seconds)

    def voice_of(self, line: Line, bible: Bible, language: str) -> Speech:
        return voice_of(self.synthesizer, line, bible, language)


@lru_cache(maxsize=16)
def shared_backdrop(place: str, mood: str, size: tuple[int, int]) -> Image.Image:
    """The backdrop, drawn once for the renders of one scene: it never depends on the look, so a scene's pictures in
    several looks share it. Never drawn on (the stage composes onto copies)."""
    return backdrop(place, mood, size)


class Stage:
    """Everything drawn once per scene: canvases per highlight state, the title overlay."""

    def __init__(self, scene: Scene, characters: list[Character], profile: RenderProfile) -> None:
        self.profile = profile
        self.characters = characters
        width, height = profile.width, profile.height
        self.margin = (round(width * MARGIN[0]) // 2 * 2, round(height * MARGIN[1]) // 2 * 2)
        self.size = (width + self.margin[0], height + self.margin[1])
        self.backdrop = shared_backdrop(scene.place, scene.mood, self.size)
        self.slots = card_slots(len(characters), width, height)
        self.canvases: dict[str | None, tuple[Picture, Picture, Picture]] = {}
        self.title = title_overlay(scene.title, scene.place, width, height)

    def canvas(self, speaker: str | None) -> tuple[Picture, Picture, Picture]:
        """The backdrop with every card, ``speaker``'s highlighted (None: nobody's), as Y, U, V planes."""
        if speaker not in self.canvases:
            image = self.backdrop.copy()
            for character, (x, y, w, h) in zip(self.characters, self.slots, strict=True):
                state = "normal" if speaker is None else "speaking" if character.id == speaker else "listening"
                card_image = card(character, w, h, state)
                pad = (card_image.width - w) // 2
                image.alpha_composite(card_image, (x + self.margin[0] // 2 - pad, y + self.margin[1] // 2 - pad))
            self.canvases[speaker] = split(rgb_to_yuv420(np.asarray(image.convert("RGB"), dtype=np.uint8)))
        return self.canvases[speaker]

    def camera(self, t: float) -> tuple[int, int]:
        """Top-left of the frame in the canvas: a slow sway that starts centred. Chroma planes
        move by the even step below, half a chroma pixel at most: invisible, and no resampling."""
        x = self.margin[0] * (0.5 + 0.5 * math.sin(2 * math.pi * t / CAMERA_PERIOD[0]))
        y = self.margin[1] * (0.5 + 0.5 * math.sin(2 * math.pi * t / CAMERA_PERIOD[1]))
        return round(x), round(y)


class Timeline:
    """Walks the scene line by line, streaming speech and frames into the encoder."""

    def __init__(
        self,
        request: RenderRequest,
        stage: Stage,
        encoder: ClipEncoder,
        watch: Stopwatch,
        mark: Overlay,
        previous: Picture | None,
        renderer: AnimaticRenderer,
    ) -> None:
        self.request = request
        self.stage = stage
        self.encoder = encoder
        self.watch = watch
        self.mark = mark
        self.previous = previous
        self.renderer = renderer
        self.fps = request.profile.fps
        self.samples = 0
        """Audio written so far: the clock, in samples, so that speech and video never drift."""
        self.key: tuple[object, ...] | None = None
        self.frame: Picture | None = None

    @property
    def now(self) -> float:
        return self.samples / SAMPLE_RATE

    def run(self) -> tuple[list[LineTiming], Picture]:
        scene, bible = self.request.scene, self.request.bible
        timings: list[LineTiming] = []
        first_speaker = None if scene.lines[0].speaker == NARRATOR else scene.lines[0].speaker
        self.hold(LEAD_IN, first_speaker, None)
        for line in scene.lines:
            with self.watch.measure("voice"):
                speech = self.speech(line)
            start = self.now
            spoken = speech.duration if self.request.voice else (self.request.line_seconds or {})[line.id]
            timings.append(LineTiming(line_id=line.id, start=start, end=start + spoken))
            speaker = None if line.speaker == NARRATOR else line.speaker
            with self.watch.measure("draw"):
                pages = subtitle_pages(line, bible, self.stage.profile) if self.request.captions else []
            first_sample = self.samples
            slot = slot_samples(line, len(speech.samples), self.request.line_seconds, SAMPLE_RATE)
            self.encoder.add_audio(speech.samples)
            for page, share in zip(pages, page_ends(pages), strict=True):
                self.advance(first_sample + round(share * len(speech.samples)), speaker, page)
            last = pages[-1] if pages else None
            self.advance(first_sample + len(speech.samples), speaker, last)
            self.hold_samples(first_sample + slot - self.samples, speaker, last)
            self.hold(PAUSE, speaker, last)
        self.hold(TAIL, None, None)
        assert self.frame is not None
        return timings, self.frame

    def speech(self, line: Line) -> Speech:
        """The line's voice; none without voice (the line holds its slot in silence)."""
        if not self.request.voice:
            return Speech(np.zeros(0, dtype=np.float32), SAMPLE_RATE)
        return self.renderer.voice_of(line, self.request.bible, self.request.language).resampled(SAMPLE_RATE)

    def hold(self, seconds: float, speaker: str | None, page: Subtitle | None) -> None:
        self.hold_samples(round(seconds * SAMPLE_RATE), speaker, page)

    def hold_samples(self, count: int, speaker: str | None, page: Subtitle | None) -> None:
        if count <= 0:
            return
        self.encoder.add_audio(np.zeros(count, dtype=np.float32))
        self.advance(self.samples + count, speaker, page)

    def advance(self, until: int, speaker: str | None, page: Subtitle | None) -> None:
        """Move the clock on to sample ``until`` (already queued), writing the frames that start before it."""
        self.samples = max(self.samples, until)
        while self.encoder.frames * SAMPLE_RATE < self.samples * self.fps:
            if self.encoder.frames < self.encoder.first_frame:  # a stored segment's: counted, never drawn
                self.key = None
                self.encoder.write_frame(None)
                continue
            frame = self.draw(self.encoder.frames / self.fps, speaker, page)
            with self.watch.measure("encode"):
                self.encoder.write_frame(frame)

    def draw(self, t: float, speaker: str | None, page: Subtitle | None) -> Picture | None:
        """The frame at ``t``, or None when it equals the previous one."""
        x, y = self.stage.camera(t)
        title = title_opacity(t) if self.request.captions else 0.0
        fade = min(t / CROSSFADE, 1.0) if self.previous is not None else 1.0
        marked = t < self.renderer.badge_seconds
        key = (speaker, page.key if page else None, x, y, round(title * 32), round(fade * 64), marked)
        if key == self.key:
            return None
        self.key = key
        with self.watch.measure("draw"):
            width, height = self.stage.profile.width, self.stage.profile.height
            frame = np.empty((height * 3 // 2, width), dtype=np.uint8)
            for plane, canvas, scale in zip(split(frame), self.stage.canvas(speaker), (1, 2, 2), strict=True):
                top, left = y // scale, x // scale
                plane[...] = canvas[top : top + height // scale, left : left + width // scale]
            self.stage.title.apply(frame, title)
            if page is not None:
                page.overlay.apply(frame, 1.0)
            if fade < 1.0 and self.previous is not None:
                level = np.uint16(fade * 256)
                blend = self.previous * (256 - level) + frame * level
                frame = (blend >> 8).astype(np.uint8)
        if marked:
            with self.watch.measure("labels"):
                self.mark.apply(frame)
        self.frame = frame
        return frame


def title_opacity(t: float) -> float:
    if t < TITLE_IN or t >= TITLE_OUT:
        return 0.0
    if t < TITLE_IN + 0.3:
        return (t - TITLE_IN) / 0.3
    if t < TITLE_HOLD:
        return 1.0
    return 1.0 - (t - TITLE_HOLD) / (TITLE_OUT - TITLE_HOLD)
