"""What every renderer does around its frames: timing the stages, the labelled encoder, the content ID
of the implicit label, the previous frame, and finishing the clip (last frame saved, signed, moved into place)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageOps
from reelfork.generation.render.drawing import Frame
from reelfork.generation.render.encoding import Encoder, FileSigner
from reelfork.generation.render.labels import AIGC_KEY, AigcLabel, likeness_releases
from reelfork.generation.render.request import LineTiming, RenderedClip, RenderError, RenderRequest
from reelfork.generation.render.segments import SegmentedEncoder
from reelfork.narrative.story import NARRATOR, Bible, Character, Scene

log = logging.getLogger(__name__)


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


ClipEncoder = Encoder | SegmentedEncoder


def labelled_encoder(
    request: RenderRequest, label: AigcLabel, threads: int, signer: FileSigner | None
) -> ClipEncoder:
    """The clip's encoder, with the implicit AIGC label and the title in its metadata (in the init segment too, for
    a render in segments); it signs on close, declaring the licensed likenesses of the characters who speak."""
    profile = request.profile
    metadata = {AIGC_KEY: label.to_json(), "title": request.scene.title}
    likenesses = likeness_releases(speaking_characters(request.scene, request.bible))
    if request.segments is not None:
        return SegmentedEncoder(
            request.output, request.segments, profile.width, profile.height, profile.fps, metadata, threads=threads,
            signer=signer, likenesses=likenesses,
        )
    return Encoder(
        request.output, profile.width, profile.height, profile.fps, metadata, threads=threads, signer=signer,
        audio=request.voice, likenesses=likenesses,
    )


def last_frame_of(clip: Path) -> Path:
    """Where a clip's last frame is saved: beside it, as ``<stem>.last.png``."""
    return clip.with_suffix(".last.png")


def finish(encoder: ClipEncoder, last: Frame, watch: Stopwatch) -> None:
    """Save the clip's last frame (the next clip starts from it), then close the clip: sign it and move it
    into place. The last frame comes first, so it exists whenever the clip does."""
    with watch.measure("encode"):
        write_png(last, last_frame_of(encoder.path))
        encoder.close()
    watch.reassign(encoder.signing_seconds, "encode", "sign")


def finished_clip(request: RenderRequest, timings: list[LineTiming]) -> RenderedClip:
    """The clip as written, its duration read back from the file."""
    with av.open(str(request.output)) as container:
        duration = (container.duration or 0) / 1_000_000
    profile = request.profile
    return RenderedClip(
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
