"""The writer interface: a viewer's path and an open choice in, a checked scene out."""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field
from reelfork.narrative.story import Choice, Scene, Story


class WriteRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    story: Story
    path: list[Scene] = Field(min_length=1)
    """The scenes the viewer saw, oldest first; the last one holds ``choice``."""
    choice: Choice
    """The open choice to write a scene for (``choice.open`` is set)."""
    scene_id: str
    """The ID the new scene must carry (content-addressed by the caller)."""
    must_end: bool
    """True once the path reached the story's ``open_depth``: the scene must be an ending."""
    seed: int = 0
    instruction: str | None = None
    """Replaces the closing instruction of the prompt (linear drafting: "end the episode on a cliffhanger")."""
    holding: list[str] = Field(default_factory=list, max_length=8)
    """Audience signal: ids of the characters whose scenes hold viewers longest, longest first (empty: none)."""


class WriteError(Exception):
    """No acceptable scene could be written; the caller uses its fallback."""


class SceneWriter(Protocol):
    def write(self, request: WriteRequest) -> Scene:
        """Return a scene that passed every check, or raise :class:`WriteError`.

        A returned non-ending scene's choices are open choices (``open.hint`` is the label),
        with IDs ``c1``, ``c2``, ...; its lines have IDs ``l1``, ``l2``, ...
        """
        ...
