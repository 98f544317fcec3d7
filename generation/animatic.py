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

import hashlib
import json
import logging
import math
import os
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageOps

from generation.drawing import (
    Font,
    Frame,
    Overlay,
    Picture,
    digest,
    font,
    hex_color,
    hsv_color,
    rgb_to_yuv420,
    split,
    text_width,
    wrap,
    yuv420_to_rgb,
)
from generation.encoding import SAMPLE_RATE, Encoder, FileSigner
from generation.labels import AIGC_KEY, BADGE_SECONDS, PRODUCER, AigcLabel, aigc_label, badge
from generation.rendering import Clip, LineTiming, RenderError, RenderProfile, RenderRequest
from generation.soundtrack import LEAD_IN, PAUSE, TAIL, slot_samples, voice_of
from generation.voice import EspeakSynthesizer, Speech, Synthesizer
from narrative.story import NARRATOR, Bible, Character, Line, Scene

log = logging.getLogger(__name__)

CROSSFADE = 0.5
TITLE_IN, TITLE_HOLD, TITLE_OUT = 0.3, 2.2, 2.7
"""The scene title fades in after the cross-fade, holds, and is gone by TITLE_OUT seconds."""
SUBTITLE_LINES = 3
"""At most this many wrapped lines on screen; longer lines are paged in step with the speech."""
MARGIN = (0.06, 0.04)
"""Extra canvas around the frame (fraction of width, height): the camera's travel."""
CAMERA_PERIOD = (12.6, 20.0)
"""Seconds per camera sway along x and y: about 8 and 6 px/s at 540x960."""


@dataclass
class Stopwatch:
    """Seconds spent per stage of a render: voice, draw, encode, labels."""

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    @contextmanager
    def measure(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - start

    def reassign(self, seconds: float, source: str, destination: str) -> None:
        """Book ``seconds`` measured inside ``source`` to ``destination`` (C2PA signing happens inside encoding)."""
        self.seconds[source] -= seconds
        self.seconds[destination] += seconds


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

    def render(self, request: RenderRequest) -> Clip:
        return self.render_measured(request)[0]

    def render_measured(self, request: RenderRequest) -> tuple[Clip, dict[str, float]]:
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


def speaking_characters(scene: Scene, bible: Bible) -> list[Character]:
    """The characters who speak in the scene, in order of first line; an unknown speaker is an error."""
    known = {character.id: character for character in bible.characters}
    present: dict[str, Character] = {}
    for line in scene.lines:
        if line.speaker == NARRATOR or line.speaker in present:
            continue
        if line.speaker not in known:
            raise RenderError(
                f"line {line.id!r} of scene {scene.id!r} is spoken by {line.speaker!r}, which is neither "
                f"{NARRATOR!r} nor a character in the bible ({', '.join(sorted(known))})"
            )
        present[line.speaker] = known[line.speaker]
    return list(present.values())


def produce_id(request: RenderRequest, previous: Frame | None) -> str:
    """A content ID for the implicit label: same inputs, same clip, same ID."""
    hasher = hashlib.sha256()
    for part in (request.scene, request.bible, request.profile):
        hasher.update(part.model_dump_json().encode())
    hasher.update(request.language.encode())
    if request.line_seconds is not None or not request.captions:
        hasher.update(json.dumps([request.line_seconds, request.captions], sort_keys=True).encode())
    if previous is not None:
        hasher.update(previous.tobytes())
    return hasher.hexdigest()[:32]


def load_previous_frame(path: Path | None, width: int, height: int) -> Frame | None:
    """The previous clip's last frame, fitted to this profile; a bad file is skipped, not fatal."""
    if path is None:
        return None
    try:
        with Image.open(path) as image:
            image.load()
            fitted = ImageOps.fit(image.convert("RGB"), (width, height), Image.Resampling.BILINEAR)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        log.warning("ignoring previous frame %s: %s", path, error)
        return None
    return np.asarray(fitted, dtype=np.uint8)


def labelled_encoder(request: RenderRequest, label: AigcLabel, threads: int, signer: FileSigner | None) -> Encoder:
    """The clip's encoder, with the implicit AIGC label and the title in its metadata; it signs on close."""
    profile = request.profile
    metadata = {AIGC_KEY: label.to_json(), "title": request.scene.title}
    return Encoder(request.output, profile.width, profile.height, profile.fps, metadata, threads=threads, signer=signer)


def last_frame_of(clip: Path) -> Path:
    """Where a clip's last frame is saved: beside it, as ``<stem>.last.png``."""
    return clip.with_suffix(".last.png")


def finish(encoder: Encoder, last: Frame, watch: Stopwatch) -> None:
    """Save the clip's last frame (the next clip starts from it), then close the clip: sign it and move it
    into place. The last frame comes first, so it exists whenever the clip does."""
    with watch.measure("encode"):
        write_png(last, last_frame_of(encoder.path))
        encoder.close()
    watch.reassign(encoder.signing_seconds, "encode", "sign")


def finished_clip(request: RenderRequest, timings: list[LineTiming]) -> Clip:
    """The clip as written, its duration read back from the file."""
    with av.open(str(request.output)) as container:
        duration = (container.duration or 0) / 1_000_000
    profile = request.profile
    return Clip(
        path=request.output,
        duration=duration,
        width=profile.width,
        height=profile.height,
        last_frame=last_frame_of(request.output),
        timings=timings,
    )


def write_png(frame: Frame, path: Path) -> None:
    temporary = path.with_name(f".{path.name}.partial")
    # compress_level 1: a quarter of the default's time for a slightly bigger file.
    Image.fromarray(frame).save(temporary, format="PNG", compress_level=1)
    os.replace(temporary, path)


class Stage:
    """Everything drawn once per scene: canvases per highlight state, the title overlay."""

    def __init__(self, scene: Scene, characters: list[Character], profile: RenderProfile) -> None:
        self.profile = profile
        self.characters = characters
        width, height = profile.width, profile.height
        self.margin = (round(width * MARGIN[0]) // 2 * 2, round(height * MARGIN[1]) // 2 * 2)
        self.size = (width + self.margin[0], height + self.margin[1])
        self.backdrop = backdrop(scene.place, scene.mood, self.size)
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
        encoder: Encoder,
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
        scene, bible, language = self.request.scene, self.request.bible, self.request.language
        timings: list[LineTiming] = []
        first_speaker = None if scene.lines[0].speaker == NARRATOR else scene.lines[0].speaker
        self.hold(LEAD_IN, first_speaker, None)
        for line in scene.lines:
            with self.watch.measure("voice"):
                speech = self.renderer.voice_of(line, bible, language).resampled(SAMPLE_RATE)
            start = self.now
            timings.append(LineTiming(line_id=line.id, start=start, end=start + speech.duration))
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


# --- scenery ---------------------------------------------------------------------------------------

MOODS: dict[str, tuple[float, float, tuple[int, int, int], float]] = {
    # keyword: (brightness, saturation, tint, tint strength)
    "tense": (0.8, 0.9, (150, 30, 40), 0.18),
    "angry": (0.85, 1.0, (190, 40, 20), 0.25),
    "dark": (0.6, 0.8, (20, 30, 80), 0.25),
    "ominous": (0.6, 0.8, (40, 20, 70), 0.25),
    "scary": (0.6, 0.7, (20, 50, 60), 0.3),
    "mysterious": (0.75, 0.9, (80, 40, 140), 0.25),
    "sad": (0.8, 0.5, (60, 80, 120), 0.25),
    "melancholy": (0.8, 0.5, (70, 80, 120), 0.25),
    "calm": (1.0, 0.8, (60, 140, 150), 0.15),
    "hopeful": (1.1, 0.9, (240, 190, 110), 0.2),
    "happy": (1.15, 1.0, (250, 200, 90), 0.2),
    "warm": (1.1, 1.0, (240, 150, 80), 0.22),
    "romantic": (1.05, 1.0, (230, 110, 150), 0.22),
    "playful": (1.15, 1.1, (120, 200, 120), 0.15),
}


def mood_light(mood: str) -> tuple[float, float, tuple[int, int, int], float]:
    words = mood.casefold()
    for keyword, light in MOODS.items():
        if keyword in words:
            return light
    seed = digest("mood", words)
    return 0.95, 0.9, hsv_color(seed[0] / 256, 0.5, 0.7), 0.12


def backdrop(place: str, mood: str, size: tuple[int, int]) -> Image.Image:
    """A vertical backdrop: the same place always gets the same sky, skyline and lights; the mood only relights it."""
    width, height = size
    rng = np.random.default_rng(int.from_bytes(digest("place", place.casefold().strip())[:8], "big"))
    hue = float(rng.random())
    horizon = int(height * rng.uniform(0.56, 0.68))
    top, low = np.array(hsv_color(hue, 0.5, 0.22)), np.array(hsv_color(hue + 0.05, 0.35, 0.62))
    ground_high, ground_low = np.array(hsv_color(hue + 0.5, 0.3, 0.3)), np.array(hsv_color(hue + 0.5, 0.35, 0.1))
    rows = np.empty((height, 3), dtype=np.float32)
    sky = np.linspace(0.0, 1.0, horizon, dtype=np.float32)[:, None]
    ground = np.linspace(0.0, 1.0, height - horizon, dtype=np.float32)[:, None]
    rows[:horizon] = top * (1 - sky) + low * sky
    rows[horizon:] = ground_high * (1 - ground) + ground_low * ground
    pixels = np.repeat(rows[:, None, :], width, axis=1)

    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    for _ in range(int(rng.integers(3, 6))):  # lights: windows, lamps, a moon
        radius = width * rng.uniform(0.04, 0.12)
        cx, cy = width * rng.uniform(0.05, 0.95), horizon * rng.uniform(0.1, 0.7)
        draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=(*hsv_color(hue + 0.12, 0.3, 1.0), 150))
    lights = layer.filter(ImageFilter.GaussianBlur(width * 0.03))
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    for _ in range(int(rng.integers(6, 11))):  # silhouettes standing on the horizon
        block_width, block_height = width * rng.uniform(0.08, 0.26), height * rng.uniform(0.08, 0.36)
        x0 = width * rng.uniform(-0.1, 1.0)
        shade = hsv_color(hue + 0.55, 0.35, rng.uniform(0.08, 0.22))
        draw.rectangle((x0, horizon - block_height, x0 + block_width, horizon), fill=(*shade, 235))
        lit = hsv_color(hue + 0.12, 0.45, 0.85)
        for _ in range(int(rng.integers(0, 6))):
            wx = x0 + block_width * rng.uniform(0.1, 0.8)
            wy = horizon - block_height * rng.uniform(0.2, 0.9)
            draw.rectangle((wx, wy, wx + width * 0.02, wy + width * 0.025), fill=(*lit, 200))
    vanish = width * rng.uniform(0.3, 0.7)
    for step in range(-4, 5):  # floor lines towards a vanishing point
        draw.line((vanish, horizon, vanish + step * width * 0.35, height), fill=(255, 255, 255, 28), width=2)
    shapes = layer.filter(ImageFilter.GaussianBlur(max(1.0, width * 0.004)))

    image = Image.fromarray(pixels.astype(np.uint8), "RGB").convert("RGBA")
    image.alpha_composite(lights)
    image.alpha_composite(shapes)
    return relight(image, mood)


def relight(image: Image.Image, mood: str) -> Image.Image:
    brightness, saturation, tint, strength = mood_light(mood)
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    grey = pixels.mean(axis=2, keepdims=True)
    pixels = grey + (pixels - grey) * saturation
    pixels = pixels * (1 - strength) + np.array(tint, dtype=np.float32) * strength * (grey / 255 + 0.35)
    height, width = pixels.shape[:2]
    ys, xs = np.ogrid[-1 : 1 : height * 1j, -1 : 1 : width * 1j]
    vignette = 1.0 - 0.35 * np.clip(xs**2 * 0.6 + ys**2, 0, 1)
    pixels = pixels * brightness * vignette[:, :, None]
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB").convert("RGBA")


def character_color(character: Character) -> tuple[int, int, int]:
    if character.color is not None:
        return hex_color(character.color)
    return hsv_color(digest("character", character.id)[0] / 256, 0.6, 0.95)


def card_slots(count: int, width: int, height: int) -> list[tuple[int, int, int, int]]:
    """Card rectangles (x, y, w, h) in frame coordinates: a grid in the middle band,
    clear of the title at the top and the subtitles in the bottom third."""
    if count == 0:
        return []
    columns = 1 if count == 1 else 2 if count in (2, 4) else 3
    rows = math.ceil(count / columns)
    band_top, band_height = height * 0.30, height * 0.32
    gap = width * 0.04
    card_width = min((width * 0.9 - gap * (columns - 1)) / columns, width * 0.5)
    card_height = min((band_height - gap * (rows - 1)) / rows, card_width * 0.9)
    slots = []
    for index in range(count):
        row, column = divmod(index, columns)
        in_row = min(columns, count - row * columns)
        left = (width - in_row * card_width - (in_row - 1) * gap) / 2
        top = band_top + (band_height - rows * card_height - (rows - 1) * gap) / 2
        slots.append(
            (
                round(left + column * (card_width + gap)),
                round(top + row * (card_height + gap)),
                round(card_width),
                round(card_height),
            )
        )
    return slots


def card(character: Character, width: int, height: int, state: str) -> Image.Image:
    """A character card: colour disc with initial, name, a few words of the look.
    ``state`` is normal, speaking (glow and border) or listening (dimmed). Drawn at
    2x and reduced, for smooth edges; padded by a margin for the glow."""
    scale, color = 2, character_color(character)
    pad = max(4, width // 12)
    w, h, p = width * scale, height * scale, pad * scale
    image = Image.new("RGBA", (w + 2 * p, h + 2 * p), (0, 0, 0, 0))
    box = (p, p, p + w - 1, p + h - 1)
    radius = min(w, h) // 8
    if state == "speaking":
        glow = Image.new("RGBA", image.size, (0, 0, 0, 0))
        ImageDraw.Draw(glow).rounded_rectangle(box, radius=radius, fill=(*color, 200))
        image = glow.filter(ImageFilter.GaussianBlur(p / 2))
    draw = ImageDraw.Draw(image)
    fill = (*mix(color, (14, 14, 20), 0.78), 225) if state == "speaking" else (16, 16, 24, 190)
    draw.rounded_rectangle(box, radius=radius, fill=fill)
    if state == "speaking":
        draw.rounded_rectangle(box, radius=radius, outline=(*color, 255), width=3 * scale)

    disc = min(h * 0.38, w * 0.34)
    cx, top = p + w / 2, p + h * 0.08
    draw.ellipse((cx - disc / 2, top, cx + disc / 2, top + disc), fill=(*color, 255))
    initial = font(max(8, round(disc * 0.55)), "bold")
    draw.text((cx, top + disc / 2), character.name[:1].upper(), font=initial, fill=(15, 15, 20, 255), anchor="mm")

    name_size, look_size = max(8, round(min(w * 0.11, h * 0.13))), max(7, round(min(w * 0.075, h * 0.09)))
    name_face, look_face = font(name_size, "bold"), font(look_size, "regular")
    y = top + disc + h * 0.05
    name = ellipsize(character.name, name_face, w * 0.9)
    draw.text((cx, y), name, font=name_face, fill=(255, 255, 255, 255), anchor="ma")
    y += name_size * 1.25
    look_lines = wrap(" ".join(character.look.split()[:8]), look_face, w * 0.88)
    line_height = look_size * 1.2
    for index, text in enumerate(look_lines[:2]):
        if y + line_height > p + h * 0.97:
            break
        more = index == 1 and len(look_lines) > 2
        draw.text((cx, y), text + (" …" if more else ""), font=look_face, fill=(210, 210, 220, 255), anchor="ma")
        y += line_height
    card_image = image.resize((width + 2 * pad, height + 2 * pad), Image.Resampling.LANCZOS)
    if state == "listening":
        card_image.putalpha(card_image.getchannel("A").point(lambda alpha: alpha * 6 // 10))
    return card_image


def mix(a: tuple[int, int, int], b: tuple[int, int, int], share_of_b: float) -> tuple[int, int, int]:
    return (
        round(a[0] * (1 - share_of_b) + b[0] * share_of_b),
        round(a[1] * (1 - share_of_b) + b[1] * share_of_b),
        round(a[2] * (1 - share_of_b) + b[2] * share_of_b),
    )


def ellipsize(text: str, face: Font, max_width: float) -> str:
    if text_width(text, face) <= max_width:
        return text
    while text and text_width(text + "…", face) > max_width:
        text = text[:-1]
    return text + "…"


# --- overlays -------------------------------------------------------------------------------------


def title_overlay(title: str, place: str, width: int, height: int) -> Overlay:
    """The scene title and place, centred near the top on a soft dark band."""
    title_face, place_face = font(max(10, round(width * 0.062)), "bold"), font(max(8, round(width * 0.034)), "italic")
    lines = wrap(title, title_face, width * 0.84)
    if len(lines) > 2:
        lines = [lines[0], ellipsize(f"{lines[1]} {lines[2]}", title_face, width * 0.84)]
    line_height = round(width * 0.062 * 1.25)
    band_height = line_height * len(lines) + round(width * 0.034 * 1.4) + round(width * 0.08)
    shade = np.zeros((band_height, width, 4), dtype=np.uint8)
    shade[:, :, 3] = (150 * np.sin(np.linspace(0, math.pi, band_height)) ** 0.6)[:, None].astype(np.uint8)
    image = Image.fromarray(shade, "RGBA")
    draw = ImageDraw.Draw(image)
    y = round(width * 0.04)
    for text in lines:
        draw.text((width / 2, y), text, font=title_face, fill=(255, 255, 255, 255), anchor="ma")
        y += line_height
    draw.text(
        (width / 2, y),
        ellipsize(place, place_face, width * 0.84),
        font=place_face,
        fill=(225, 225, 235, 255),
        anchor="ma",
    )
    return Overlay.from_image(image, 0, round(height * 0.11))


@dataclass(frozen=True)
class Subtitle:
    key: tuple[str, int]
    """Line ID and page number."""
    lines: list[str]
    overlay: Overlay


def subtitle_pages(line: Line, bible: Bible, profile: RenderProfile) -> list[Subtitle]:
    """The line's subtitles, at most SUBTITLE_LINES wrapped lines per page, in the bottom third."""
    width, height = profile.width, profile.height
    size = max(9, round(width * 0.05))
    narrated = line.speaker == NARRATOR
    face = font(size, "italic" if narrated else "regular")
    wrapped = wrap(line.text, face, width * 0.82) or [line.text]
    pages = [wrapped[index : index + SUBTITLE_LINES] for index in range(0, len(wrapped), SUBTITLE_LINES)]
    speaker = None if narrated else bible.character(line.speaker)
    return [
        Subtitle((line.id, number), page, subtitle_overlay(page, face, size, speaker, width, height))
        for number, page in enumerate(pages)
    ]


def page_ends(pages: list[Subtitle]) -> list[float]:
    """Where each page ends, as a fraction of its line's speech: each page stays up for its share of the
    line's characters."""
    if not pages:
        return []
    weights = np.cumsum([sum(len(text) for text in page.lines) for page in pages])
    return [float(weight) for weight in weights / weights[-1]]


def subtitle_overlay(
    lines: list[str], face: Font, size: int, speaker: Character | None, width: int, height: int
) -> Overlay:
    line_height = round(size * 1.3)
    pad = round(size * 0.6)
    name_face = font(max(8, round(size * 0.7)), "bold")
    name_height = round(size * 0.95) if speaker is not None else 0
    widest = round(width * 0.92) - 2 * pad
    name = ellipsize(speaker.name.upper(), name_face, widest) if speaker is not None else ""
    text_width_max = max([text_width(name, name_face), *(text_width(text, face) for text in lines)])
    box_width = min(widest, round(text_width_max)) + 2 * pad
    box_height = name_height + line_height * len(lines) + 2 * pad - round(size * 0.3)
    image = Image.new("RGBA", (box_width, box_height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((0, 0, box_width - 1, box_height - 1), radius=pad, fill=(10, 10, 14, 175))
    y = pad
    if speaker is not None:
        draw.text((box_width / 2, y), name, font=name_face, fill=(*character_color(speaker), 255), anchor="ma")
        y += name_height
    for text in lines:
        # A dark outline keeps the text readable where the box is faint.
        draw.text(
            (box_width / 2, y),
            text,
            font=face,
            fill=(255, 255, 255, 255),
            anchor="ma",
            stroke_width=1,
            stroke_fill=(0, 0, 0, 255),
        )
        y += line_height
    bottom = round(height * 0.90)
    return Overlay.from_image(image, (width - box_width) // 2, bottom - box_height)
