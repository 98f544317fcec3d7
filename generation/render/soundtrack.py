"""A scene's spoken track: every line voiced in turn, with a lead-in, pauses and a clean tail.

The animatic streams speech into its encoder line by line; the diffusion renderer
needs the whole track first, because the voice decides how many frames to
generate. Both lay the lines out with the same constants, so a scene sounds the
same whichever backend draws it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from reelfork.generation.render.encoding import SAMPLE_RATE
from reelfork.generation.render.request import LineTiming
from reelfork.generation.render.voice import Speech, Synthesizer, neutral_voice
from reelfork.narrative.story import NARRATOR, Bible, Line, Scene

LEAD_IN = 0.5
"""Seconds before the first line: the cross-fade from the previous clip happens here."""
PAUSE = 0.25
"""Silence after each line."""
TAIL = 0.25
"""Clean seconds at the end (no subtitles, no highlight), so the last frame is a good next start."""


def voice_of(synthesizer: Synthesizer, line: Line, bible: Bible, language: str) -> Speech:
    """The line spoken by its character's voice, or the language's neutral voice for the narrator."""
    voice = neutral_voice(language) if line.speaker == NARRATOR else bible.character(line.speaker).voice
    return synthesizer.synthesize(line.text, voice, language)


@dataclass(frozen=True)
class SpokenLine:
    line: Line
    start: int
    """First sample of the line in the track."""
    samples: NDArray[np.float32]

    @property
    def end(self) -> int:
        return self.start + len(self.samples)


@dataclass(frozen=True)
class Soundtrack:
    lines: list[SpokenLine]
    length: int
    """Samples in the whole track, tail included."""
    sample_rate: int = SAMPLE_RATE

    @property
    def duration(self) -> float:
        return self.length / self.sample_rate

    def samples(self) -> NDArray[np.float32]:
        """The mono track: speech where the lines are, silence elsewhere."""
        track = np.zeros(self.length, dtype=np.float32)
        for spoken in self.lines:
            track[spoken.start : spoken.end] = spoken.samples
        return track

    def timings(self) -> list[LineTiming]:
        rate = self.sample_rate
        return [LineTiming(line_id=s.line.id, start=s.start / rate, end=s.end / rate) for s in self.lines]

    def line_at(self, t: float) -> SpokenLine | None:
        """The line on screen at ``t`` seconds: from its start until the next line starts (the pause
        keeps its subtitle up); None during the lead-in and the tail."""
        sample = t * self.sample_rate
        current = None
        for spoken in self.lines:
            if spoken.start > sample:
                break
            current = spoken
        if current is None or sample >= self.length - round(TAIL * self.sample_rate):
            return None
        return current


def slot_samples(line: Line, length: int, line_seconds: dict[str, float] | None, sample_rate: int) -> int:
    """Samples a line of ``length`` spoken samples holds: its planned slot, never less than its speech."""
    if line_seconds is None or line.id not in line_seconds:
        return length
    return max(length, round(line_seconds[line.id] * sample_rate))


def soundtrack(
    scene: Scene,
    bible: Bible,
    language: str,
    synthesizer: Synthesizer,
    sample_rate: int = SAMPLE_RATE,
    line_seconds: dict[str, float] | None = None,
) -> Soundtrack:
    """Voice every line of ``scene`` and lay them out: lead-in, line, pause, ..., line, pause, tail.

    With ``line_seconds`` (a dub plan) each line holds its planned slot, so every locale's track
    puts each line at the same time as the shared picture does.
    """
    position = round(LEAD_IN * sample_rate)
    lines = []
    for line in scene.lines:
        speech = voice_of(synthesizer, line, bible, language).resampled(sample_rate)
        lines.append(SpokenLine(line=line, start=position, samples=speech.samples))
        position += slot_samples(line, len(speech.samples), line_seconds, sample_rate) + round(PAUSE * sample_rate)
    return Soundtrack(lines=lines, length=position + round(TAIL * sample_rate), sample_rate=sample_rate)


def timeline_frames(scene: Scene, line_seconds: dict[str, float], fps: int, sample_rate: int = SAMPLE_RATE) -> int:
    """Frames of a picture without voice whose lines hold exactly ``line_seconds``: its planned length, known
    before a frame is drawn (lead-in, each slot and its pause, tail, as :func:`soundtrack` lays them out)."""
    samples = round(LEAD_IN * sample_rate) + round(TAIL * sample_rate)
    samples += sum(round(line_seconds[line.id] * sample_rate) + round(PAUSE * sample_rate) for line in scene.lines)
    return -(-samples * fps // sample_rate)
