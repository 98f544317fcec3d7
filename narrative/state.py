"""Per-viewer state: which story version, where they are, how they got there.

State changes only through :func:`advance`; looking ahead never touches it (ink #253).
"""

from __future__ import annotations

import hashlib

from pydantic import BaseModel, ConfigDict, Field

from narrative.graph import GENERATED_PREFIX
from narrative.story import Choice, Scene


class UnknownChoice(LookupError):
    """The viewer named a choice the current scene does not offer."""


class ViewerState(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    story: str
    version: int = Field(ge=1)
    """The story version this session is pinned to: later edits never change it."""
    path: list[str] = Field(min_length=1)
    """Scene ids from the start scene to the current one."""

    @property
    def current(self) -> str:
        return self.path[-1]

    @property
    def generated_depth(self) -> int:
        """How many generated scenes end the path: the writer must end the story at ``open_depth``."""
        depth = 0
        for scene_id in reversed(self.path):
            if not is_generated(scene_id):
                break
            depth += 1
        return depth


def start(story: str, version: int, start_scene: str) -> ViewerState:
    return ViewerState(story=story, version=version, path=[start_scene])


def find_choice(scene: Scene, choice_id: str) -> Choice:
    for choice in scene.choices:
        if choice.id == choice_id:
            return choice
    offered = ", ".join(c.id for c in scene.choices) or "none (this scene is an ending)"
    raise UnknownChoice(f"scene {scene.id!r} has no choice {choice_id!r}; it offers: {offered}")


def advance(state: ViewerState, scene_id: str) -> ViewerState:
    return state.model_copy(update={"path": [*state.path, scene_id]})


def generated_scene_id(story_digest: str, parent_scene: str, choice: str, personalisation: str = "") -> str:
    """The content address of a written scene: same story version, place and choice, same scene."""
    key = "\x1f".join([story_digest, parent_scene, choice, personalisation])
    return GENERATED_PREFIX + hashlib.sha256(key.encode()).hexdigest()[:24]


def is_generated(scene_id: str) -> bool:
    return scene_id.startswith(GENERATED_PREFIX)
