"""The renderer interface: a scene in, an encoded, labelled clip out."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ConfigDict, model_validator
from reelfork.generation.render.profiles import RenderProfile
from reelfork.generation.render.segments import SegmentPlan
from reelfork.generation.render.visemes import VisemeTrack
from reelfork.narrative.story import Bible, Scene


class References(BaseModel):
    """Identity references a clip is conditioned on, made once and content-addressed by what they depend on
    (appearance, look, place, the model that made them), never by story version or by the path to the scene."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    portraits: dict[str, Path] = {}
    """A portrait image per character in the shot, by character ID."""
    plate: Path | None = None
    """The establishing frame of the scene's place, empty of people."""

    def __bool__(self) -> bool:
        return bool(self.portraits) or self.plate is not None


class RenderRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    scene: Scene
    bible: Bible
    language: str = "en"
    profile: RenderProfile
    output: Path
    """Where the MP4 goes; the last frame is written beside it as ``<stem>.last.png``."""
    previous_frame: Path | None = None
    """The previous clip's last frame, for visual continuity in linear episodes. Interactive clips use
    ``references`` instead: a frame from the path that led to a scene would make its picture depend on the path."""
    references: References = References()
    """Cast portraits and the place's plate, for renderers that condition on images (diffusion)."""
    line_seconds: dict[str, float] | None = None
    """Seconds each line holds the screen, by line ID, at least its speech. Dubbing sets it to the longest
    locale's speech, so one picture fits every locale's voice; None: each line lasts as long as its speech."""
    mouths: dict[str, VisemeTrack] | None = None
    """Each spoken line's mouth, by line ID, when the clip's voice is laid on later (a shared picture): the visemes
    of the picture's locale, fitted to the line's slot. None: a voiced render follows its own speech; a line
    without a track keeps its mouth at rest."""
    captions: bool = False
    """Burn the title and the subtitles into the picture. Off by default: the picture carries nothing that
    varies per viewer (names, language), so every viewer with the same look shares it; subtitles, with the
    speakers' names, travel as WebVTT per locale instead."""
    voice: bool = True
    """Speak the lines: the clip's sound. Off for a shared picture: each viewer's clip lays their own voice on
    its video, so the picture is rendered without sound (no speech synthesised, no audio encoded) and every
    line holds exactly its ``line_seconds``, which must then cover every line."""
    segments: SegmentPlan | None = None
    """Also store the clip as a stream of segments, each as soon as it is encoded (a picture without voice only);
    ``output`` is then joined from them at the end. None: one MP4, written at the end."""

    @model_validator(mode="after")
    def _one_continuity(self) -> RenderRequest:
        if self.references and self.previous_frame is not None:
            raise ValueError("a render continues either from a previous frame or from references, not both")
        return self

    @model_validator(mode="after")
    def _timed_without_voice(self) -> RenderRequest:
        if not self.voice:
            missing = [line.id for line in self.scene.lines if line.id not in (self.line_seconds or {})]
            if missing:
                raise ValueError(f"a render without voice needs line_seconds for every line; missing: {missing}")
        if self.segments is not None and self.voice:
            raise ValueError("a render in segments is a picture without voice (voice=False)")
        return self


class LineTiming(BaseModel):
    model_config = ConfigDict(frozen=True)

    line_id: str
    start: float
    end: float


class RenderedClip(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: Path
    duration: float
    width: int
    height: int
    last_frame: Path
    timings: list[LineTiming]


class RenderError(Exception):
    """A scene that cannot be rendered; the message says why and what to change."""


class Renderer(Protocol):
    def render(self, request: RenderRequest) -> RenderedClip: ...
