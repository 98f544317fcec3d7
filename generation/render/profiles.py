"""Render profiles: resolution, frame rate and quality tier of a clip, and the ladder of fallbacks."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class RenderProfile(BaseModel):
    """Resolution, frame rate and quality tier of a clip. Always 9:16."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    width: int = Field(ge=90, le=2160, multiple_of=2)
    height: int = Field(ge=160, le=3840, multiple_of=2)
    fps: int = Field(ge=6, le=60)
    tier: Literal["full", "fast", "animatic"] = "animatic"
    steps: int = Field(default=0, ge=0, le=100)
    """Denoising steps for diffusion backends; 0 for the animatic."""
    segment_frames: int = Field(default=97, ge=2, le=1024)
    """Diffusion only: frames per pipeline call. A longer clip is generated as a chain of segments,
    each conditioned on the previous segment's last frame."""
    device: str = "auto"
    """Diffusion only: a torch device (``cuda``, ``cuda:1``, ``cpu``); ``auto`` takes CUDA when there is one."""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """Diffusion only: ``auto`` is bfloat16 on a GPU and float32 on the CPU."""


PROFILES: dict[str, RenderProfile] = {
    "animatic": RenderProfile(name="animatic", width=540, height=960, fps=24, tier="animatic"),
    "preview": RenderProfile(name="preview", width=270, height=480, fps=12, tier="animatic"),
    # Diffusion tiers, best first; the scheduler steps down (full, fast, animatic) rather than stall.
    # LTX generates 544x960 (multiples of 32) for "full", cropped to 540x960.
    "full": RenderProfile(name="full", width=540, height=960, fps=24, tier="full", steps=30, segment_frames=121),
    "fast": RenderProfile(name="fast", width=288, height=512, fps=24, tier="fast", steps=8, segment_frames=49),
}
FALLBACKS: dict[str, tuple[str, ...]] = {
    "full": ("fast", "animatic"),
    "fast": ("animatic",),
    "animatic": ("preview",),
    "preview": (),
}
"""The cheaper profiles below each one, best first: what the scheduler degrades to rather than stall."""
