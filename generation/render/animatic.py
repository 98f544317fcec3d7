"""The CPU animatic: a scene as a voiced, subtitled storyboard clip with drawn people whose lips move.

Per scene the backdrop (from ``place`` and ``mood``) and the drawn figures (from each character's
structured appearance) are composed once per shot, a 9:16 close-up of at most two of them, and
converted once to yuv420p (the encoder's format): the body of the shot, shared by every locale. The
camera holds still; per frame only the mouths change (the :class:`LipSync` pass, following each line's
visemes), then the small overlays blend on: title, subtitles, the AI mark. Nothing is converted per
frame, and a frame identical to the previous one is not even composed, which is what keeps the
renderer well under real time on one core.
"""

from __future__ import annotations

import logging
from functools import lru_cache

import numpy as np
from PIL import Image
from reelfork.generation.render.captions import Subtitle, page_ends, subtitle_pages, title_overlay
from reelfork.generation.render.drawing import Overlay, Picture, rgb_to_yuv420, split, yuv420_to_rgb
from reelfork.generation.render.encoding import SAMPLE_RATE, FileSigner
from reelfork.generation.render.figure import figure, shot_boxes
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
from reelfork.generation.render.lipsync import DrawnLipSync, LipSync, MouthBox, line_track, lip_color
from reelfork.generation.render.profiles import RenderProfile
from reelfork.generation.render.request import LineTiming, RenderedClip, RenderRequest
from reelfork.generation.render.scenery import backdrop
from reelfork.generation.render.soundtrack import LEAD_IN, PAUSE, TAIL, slot_samples, voice_of
from reelfork.generation.render.visemes import VisemeTrack, pose
from reelfork.generation.render.voice import EspeakSynthesizer, Speech, Synthesizer
from reelfork.narrative.appearance import Appearance
from reelfork.narrative.story import NARRATOR, Bible, Character, Line, Scene, Voice

log = logging.getLogger(__name__)

CROSSFADE = 0.5
TITLE_IN, TITLE_HOLD, TITLE_OUT = 0.3, 2.2, 2.7
"""The scene title fades in after the cross-fade, holds, and is gone by TITLE_OUT seconds."""
BADGE_FADE = 0.6
"""Seconds the AI mark takes to fade out at the end of its time: no sudden change that is not speech."""
SHOT_SIZE = 2
"""At most this many figures in a shot."""
SILENT = VisemeTrack()


class AnimaticRenderer:
    """The default renderer: CPU only, deterministic, several times faster than real time."""

    def __init__(
        self,
        synthesizer: Synthesizer | None = None,
        threads: int = 1,
        producer: str = PRODUCER,
        badge_seconds: float = BADGE_SECONDS,
        signer: FileSigner | None = None,
        lipsync: LipSync | None = None,
    ) -> None:
        self.synthesizer = synthesizer or EspeakSynthesizer()
        self.lipsync = lipsync or DrawnLipSync()
        """Draws each line's mouth over the shared body of the shot."""
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

    def mouth_of(self, line: Line, bible: Bible, language: str, speech: Speech) -> VisemeTrack:
        """The mouth of a line this renderer voices itself: its phonemes over its speech."""
        if line.speaker == NARRATOR or speech.duration == 0 or not isinstance(self.synthesizer, EspeakSynthesizer):
            return SILENT
        voice: Voice = bible.character(line.speaker).voice
        return line_track(line.text, voice, language, speech.resampled(SAMPLE_RATE).samples, speech.duration)


@lru_cache(maxsize=16)
def shared_backdrop(place: str, mood: str, size: tuple[int, int]) -> Image.Image:
    """The backdrop, drawn once for the renders of one scene: it never depends on the look, so a scene's pictures in
    several looks share it. Never drawn on (the stage composes onto copies)."""
    return backdrop(place, mood, size)


Body = tuple[tuple[Picture, Picture, Picture], tuple[MouthBox, ...]]
"""A shot's picture without mouths (Y, U, V planes), and each figure's mouth box in it."""


@lru_cache(maxsize=32)
def shot_body(place: str, mood: str, cast: tuple[tuple[str, Appearance], ...], size: tuple[int, int]) -> Body:
    """The body of a shot: the backdrop with the figures of ``cast`` (ID, appearance) drawn on it, mouths left out.

    It never depends on the locale: every locale's picture of a scene composes its mouths over the same body,
    so a second locale rendered by the same process costs only the mouth pass and the encoding."""
    width, height = size
    image = shared_backdrop(place, mood, size).copy()
    mouths: list[MouthBox] = []
    for (character_id, appearance), (x, y, w, h) in zip(cast, shot_boxes(len(cast), width, height), strict=True):
        drawn = figure(appearance, w, h)
        image.alpha_composite(drawn.image, (max(x, 0), y), (max(-x, 0), 0))
        mx, my, mw, mh = drawn.mouth
        key = f"{place}\x1f{mood}\x1f{character_id}\x1f{appearance.model_dump_json()}\x1f{x},{y},{w},{h}"
        mouths.append(MouthBox(x=x + mx, y=y + my, width=mw, height=mh, lips=lip_color(appearance.skin_tone), key=key))
    planes = split(rgb_to_yuv420(np.asarray(image.convert("RGB"), dtype=np.uint8)))
    return planes, tuple(mouths)


def plan_shots(scene: Scene, characters: list[Character]) -> list[tuple[str, ...]]:
    """Who is in frame during each line: everyone when at most two speak (one shot, the camera never moves);
    otherwise the speaker and whoever spoke before them, kept until a third speaks. Narration keeps the shot."""
    order = [character.id for character in characters]
    if len(order) <= SHOT_SIZE:
        return [tuple(order)] * len(scene.lines)
    shot: tuple[str, ...] = tuple(order[:SHOT_SIZE])
    last = order[0]
    shots: list[tuple[str, ...]] = []
    for line in scene.lines:
        speaker = line.speaker
        if speaker != NARRATOR and speaker not in shot:
            pair = {last, speaker} if last != speaker else {speaker, next(c for c in order if c != speaker)}
            shot = tuple(c for c in order if c in pair)
        if speaker != NARRATOR:
            last = speaker
        shots.append(shot)
    return shots


class Stage:
    """Everything drawn once per scene: the shots' bodies, the title overlay."""

    def __init__(self, scene: Scene, characters: list[Character], profile: RenderProfile) -> None:
        self.profile = profile
        self.scene = scene
        self.appearances = {character.id: character.drawn() for character in characters}
        self.shots = plan_shots(scene, characters)
        self.title = title_overlay(scene.title, scene.place, profile.width, profile.height)

    def body(self, shot: tuple[str, ...]) -> Body:
        cast = tuple((character_id, self.appearances[character_id]) for character_id in shot)
        return shot_body(self.scene.place, self.scene.mood, cast, (self.profile.width, self.profile.height))


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
        self.shot: tuple[str, ...] = stage.shots[0] if stage.shots else ()
        self.track = SILENT
        """The mouth of the line being said, from ``line_start`` seconds."""
        self.line_start = 0.0

    @property
    def now(self) -> float:
        return self.samples / SAMPLE_RATE

    def run(self) -> tuple[list[LineTiming], Picture]:
        scene, bible = self.request.scene, self.request.bible
        timings: list[LineTiming] = []
        first_speaker = None if scene.lines[0].speaker == NARRATOR else scene.lines[0].speaker
        self.hold(LEAD_IN, first_speaker, None)
        for index, line in enumerate(scene.lines):
            with self.watch.measure("voice"):
                speech = self.speech(line)
            start = self.now
            self.shot, self.line_start = self.stage.shots[index], start
            with self.watch.measure("lipsync"):
                self.track = self.mouth(line, speech)
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

    def mouth(self, line: Line, speech: Speech) -> VisemeTrack:
        """The line's visemes: given by the request (a shared picture's, in its locale), or from its own voice."""
        if not self.request.voice:
            return (self.request.mouths or {}).get(line.id, SILENT)
        return self.renderer.mouth_of(line, self.request.bible, self.request.language, speech)

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
        title = title_opacity(t) if self.request.captions else 0.0
        fade = min(t / CROSSFADE, 1.0) if self.previous is not None else 1.0
        marked = round(min(1.0, (self.renderer.badge_seconds - t) / BADGE_FADE) * 32) / 32
        said = t - self.line_start + 1 / self.fps  # lips lead the sound by a frame, as they do in speech
        shape = pose(self.track, said) if speaker is not None else None
        key = (self.shot, speaker, shape, page.key if page else None, round(title * 32), round(fade * 64), marked)
        if key == self.key:
            return None
        self.key = key
        with self.watch.measure("draw"):
            planes, mouths = self.stage.body(self.shot)
            width, height = self.stage.profile.width, self.stage.profile.height
            frame = np.empty((height * 3 // 2, width), dtype=np.uint8)
            for plane, body in zip(split(frame), planes, strict=True):
                plane[...] = body
        with self.watch.measure("lipsync"):
            for character_id, mouth in zip(self.shot, mouths, strict=True):
                track = self.track if character_id == speaker else SILENT
                self.renderer.lipsync.sync(frame, mouth, track, said)
        with self.watch.measure("draw"):
            self.stage.title.apply(frame, title)
            if page is not None:
                page.overlay.apply(frame, 1.0)
            if fade < 1.0 and self.previous is not None:
                level = np.uint16(fade * 256)
                blend = self.previous * (256 - level) + frame * level
                frame = (blend >> 8).astype(np.uint8)
        if marked > 0:
            with self.watch.measure("labels"):
                self.mark.apply(frame, marked)
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
