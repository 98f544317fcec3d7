"""Mouth shapes over time: what a line's lip-sync follows (see :mod:`reelfork.generation.render.lipsync`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

__all__ = ["Cue", "Viseme", "VisemeTrack", "pose"]

Viseme = Literal["rest", "closed", "open", "mid", "wide", "round", "fv"]
"""Mouth shapes: at rest, lips pressed (m b p), jaw open (a), half open (e, schwa, l, t), spread (i, s),
rounded (o u w), lower lip under the teeth (f v)."""


class Cue(BaseModel):
    model_config = ConfigDict(frozen=True)

    start: float
    """Seconds from the start of the line's voice."""
    viseme: Viseme


class VisemeTrack(BaseModel):
    """A line's mouth: shapes from their start times, and rest after ``end``."""

    model_config = ConfigDict(frozen=True)

    cues: tuple[Cue, ...] = ()
    end: float = 0.0
    levels: tuple[float, ...] = ()
    """The voice's loudness, 0..1, at :data:`LEVEL_RATE` per second from the start: how far the jaw opens each
    shape (a louder syllable opens wider). Empty: every shape fully open."""

    def scaled(self, factor: float) -> VisemeTrack:
        """The track sped up (``factor`` < 1) or slowed down, as the voice is fitted into its slot."""
        cues = tuple(Cue(start=cue.start * factor, viseme=cue.viseme) for cue in self.cues)
        return VisemeTrack(cues=cues, end=self.end * factor, levels=self.levels)

    def level(self, seconds: float) -> float:
        if not self.levels:
            return 1.0
        index = int(seconds * LEVEL_RATE)
        return self.levels[index] if 0 <= index < len(self.levels) else 0.0


LEVEL_RATE = 50
"""Loudness levels per second in a track."""
OPEN_AT_SILENCE = 0.0
"""How far a shape opens when its voice is at its quietest (1: at its loudest)."""
POSES: dict[Viseme, tuple[float, float]] = {
    # (width, opening) of the lips, as shares of the mouth box
    "rest": (0.56, 0.0), "closed": (0.5, 0.0), "open": (0.6, 0.78), "mid": (0.6, 0.44), "wide": (0.8, 0.26),
    "round": (0.32, 0.44), "fv": (0.6, 0.18),
}
TRANSITION = 0.08
"""Seconds the lips take to move from one shape to the next (they never jump)."""
STEPS = 24
"""A pose is quantised to this many steps per axis: frames with equal poses are equal."""


def pose(track: VisemeTrack, seconds: float) -> tuple[int, int]:
    """The lips' (width, opening) ``seconds`` into the line, in steps of 1/:data:`STEPS`: moving from each shape
    towards the next over :data:`TRANSITION` seconds."""
    previous: Viseme = "rest"
    current: Viseme = "rest"
    since = 0.0
    boundaries = [*track.cues, Cue(start=track.end, viseme="rest")] if track.cues else []
    for cue in boundaries:
        if cue.start > seconds:
            break
        previous, current, since = current, cue.viseme, cue.start
    share = min(1.0, (seconds - since) / TRANSITION) if seconds >= 0 else 1.0
    (w0, o0), (w1, o1) = POSES[previous], POSES[current]
    jaw = OPEN_AT_SILENCE + (1 - OPEN_AT_SILENCE) * track.level(seconds)
    return round((w0 + (w1 - w0) * share) * STEPS), round((o0 + (o1 - o0) * share) * jaw * STEPS)
