"""The story format: a bible, scenes with stable line IDs, and choices.

A story is pure data. It is validated structurally here (pydantic) and as a
graph in :mod:`narrative.graph`. Scene and choice IDs are the creator's; line
IDs are stable so dubbing and subtitles survive edits.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

Identifier = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"),
]
"""Scene, choice, character and line IDs: ASCII, URL-safe, at most 64 characters."""

ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
LongText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]


class Strict(BaseModel):
    """Base for every story model: unknown fields are errors, not silently dropped."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Voice(Strict):
    """How a character sounds: an espeak-ng voice name, pitch (0-99) and rate (words/min)."""

    voice: ShortText = "en-us"
    pitch: int = Field(default=50, ge=0, le=99)
    rate: int = Field(default=165, ge=80, le=400)


class Character(Strict):
    id: Identifier
    name: ShortText
    look: LongText
    """What the character looks like; used by every renderer for visual consistency."""
    voice: Voice = Voice()
    color: Annotated[str, StringConstraints(pattern=r"^#[0-9a-fA-F]{6}$")] | None = None


class Bible(Strict):
    """What stays true across the whole story: who, where, and how it feels."""

    logline: LongText
    setting: LongText
    tone: ShortText
    characters: list[Character] = Field(min_length=1, max_length=64)
    style_rules: list[ShortText] = Field(default_factory=list, max_length=32)

    @model_validator(mode="after")
    def _unique_characters(self) -> Bible:
        seen: set[str] = set()
        for character in self.characters:
            if character.id in seen:
                raise ValueError(f"character id {character.id!r} is declared twice")
            seen.add(character.id)
        return self

    def character(self, character_id: str) -> Character:
        for character in self.characters:
            if character.id == character_id:
                return character
        raise KeyError(character_id)


class Line(Strict):
    id: Identifier
    speaker: Identifier
    """A character ID from the bible, or ``narrator``."""
    text: LongText


class OpenNode(Strict):
    """A choice whose scene the LLM writes when a viewer may need it."""

    hint: LongText
    """What the creator wants to happen; the writer's brief."""
    fallback: Identifier | None = None
    """An authored scene to use when generation fails; else a bridge to the nearest ending."""


class Choice(Strict):
    id: Identifier
    label: ShortText
    target: Identifier | None = None
    open: OpenNode | None = None

    @model_validator(mode="after")
    def _target_or_open(self) -> Choice:
        if (self.target is None) == (self.open is None):
            raise ValueError("a choice needs exactly one of 'target' (a scene id) or 'open' (an LLM brief)")
        return self


class Scene(Strict):
    id: Identifier
    title: ShortText
    place: ShortText
    """Where the scene happens; the renderer derives the backdrop from it."""
    mood: ShortText = "tense"
    lines: list[Line] = Field(min_length=1, max_length=500)
    choices: list[Choice] = Field(default_factory=list, max_length=4)
    ending: bool = False

    @model_validator(mode="after")
    def _choices_or_ending(self) -> Scene:
        if self.ending and self.choices:
            raise ValueError("an ending scene has no choices")
        if not self.ending and not self.choices:
            raise ValueError("a scene that is not an ending needs at least one choice")
        ids = [choice.id for choice in self.choices]
        if len(ids) != len(set(ids)):
            raise ValueError("choice ids must be unique within a scene")
        line_ids = [line.id for line in self.lines]
        if len(line_ids) != len(set(line_ids)):
            raise ValueError("line ids must be unique within a scene")
        return self

    def choice(self, choice_id: str) -> Choice:
        for choice in self.choices:
            if choice.id == choice_id:
                return choice
        raise KeyError(choice_id)


class Story(Strict):
    id: Identifier
    title: ShortText
    language: Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")] = "en"
    bible: Bible
    start: Identifier
    open_depth: int = Field(default=2, ge=1, le=8)
    """How many generated scenes may follow each other before the writer must end the story."""
    scenes: list[Scene] = Field(min_length=1, max_length=100_000)

    def scene(self, scene_id: str) -> Scene:
        return self.scene_index()[scene_id]

    def scene_index(self) -> dict[str, Scene]:
        index = self.__dict__.get("_scene_index")
        if index is None:
            index = {scene.id: scene for scene in self.scenes}
            self.__dict__["_scene_index"] = index
        return index

    def speakers(self) -> list[str]:
        return [character.id for character in self.bible.characters]

    def digest(self) -> str:
        """A hash of the story's content: the identity of one immutable version."""
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(payload.encode()).hexdigest()


NARRATOR = "narrator"
