"""The shape of a written scene: a JSON schema per request, and the strict model that parses it.

The schema is what the grammar lets the model say, so it carries every constraint a
135M model cannot be trusted with: speakers and places are enums taken from the story,
every string has a ``maxLength`` (or the model can loop inside one string), and
``ending`` is a constant decided by the request.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from reelfork.narrative.story import NARRATOR, Story

TITLE_MIN, TITLE_MAX = 3, 72
TITLE_WORDS = 5
PLACE_MAX = 60
TEXT_MIN, TEXT_MAX = 2, 150
"""A line is one spoken sentence or two (the style asks for at most 25 words)."""
LABEL_MIN, LABEL_MAX = 3, 60
LINES_MIN, LINES_MAX = 2, 6
CHOICES_MIN, CHOICES_MAX = 2, 3
TITLE_PATTERN = r"^[A-Z][a-z']{0,12}( [A-Za-z][a-z']{0,12}){0,4}[.!?]?$"
"""An English title: 1 to :data:`TITLE_WORDS` plain words, at most 70 characters. Without it the
model writes whole sentences as titles, which a length limit then cuts mid-word."""
LABEL_PATTERN = r"^[A-Z][a-z']{1,9}( [A-Za-z'][a-z']{0,9}){1,4}[.!?]?$"
"""An English label: 2 to 5 plain words, at most 55 characters. Without it the model writes
digits, names alone or strings of random letters as labels."""
OPENING_PATTERN = r'^\{name\} [a-z][a-z]{1,14}[^{}"\\\x00-\x1f]{8,120}[.!?]$'
"""The opening line of a scene in a story the viewer plays a part in: the narrator says what the protagonist
does, starting with their name. Left to itself the model rarely names the protagonist, and a viewer who
renamed them would not see their name in the scene their own choice opened."""
MAX_PLACES = 24
"""Known places offered to the model; beyond that the enum costs more prompt than it helps."""
MAX_TOKENS = 512
"""Completion tokens for the longest scene the schema allows, written in plain English words
(``tests/generation/writer/test_writer.py`` measures it); a longer answer is a model that lost its way."""


class DraftModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class DraftLine(DraftModel):
    speaker: str = Field(max_length=64)
    text: str = Field(max_length=TEXT_MAX)


class DraftChoice(DraftModel):
    label: str = Field(max_length=LABEL_MAX)


class Draft(DraftModel):
    """A candidate scene as the model wrote it, before any semantic check."""

    title: str = Field(max_length=TITLE_MAX)
    place: str = Field(max_length=PLACE_MAX)
    opening: str | None = Field(default=None, max_length=TEXT_MAX)
    """The narrator's first line, starting with ``{name}`` (stories with a persona only)."""
    lines: list[DraftLine] = Field(max_length=LINES_MAX)
    choices: list[DraftChoice] = Field(max_length=CHOICES_MAX)
    ending: bool

    def opened(self) -> Draft:
        """The draft with its opening as the first line, as every later step reads it."""
        if self.opening is None:
            return self
        first = DraftLine(speaker=NARRATOR, text=self.opening)
        return self.model_copy(update={"opening": None, "lines": [first, *self.lines]})


def is_english(story: Story) -> bool:
    return story.language == "en" or story.language.startswith("en-")


def speakers(story: Story) -> list[str]:
    """The speaker IDs a written line may use: the bible's characters, then the narrator."""
    return [*story.speakers(), NARRATOR]


def places(story: Story) -> list[str]:
    """The story's known places, in first-seen order, deduplicated, at most :data:`MAX_PLACES`."""
    seen: dict[str, None] = {}
    for scene in story.scenes:
        if len(scene.place) <= PLACE_MAX:
            seen.setdefault(scene.place, None)
        if len(seen) >= MAX_PLACES:
            break
    return list(seen)


def scene_schema(story: Story, must_end: bool) -> dict[str, Any]:
    """The JSON schema one written scene must follow.

    ``place`` is an enum of the story's known places: a tiny model given a free string
    writes sentences or copies the title there, and the renderer needs a place it knows.
    """
    title: dict[str, Any] = {"type": "string", "minLength": TITLE_MIN, "maxLength": TITLE_MAX}
    label: dict[str, Any] = {"type": "string", "minLength": LABEL_MIN, "maxLength": LABEL_MAX}
    if is_english(story):
        title["pattern"] = TITLE_PATTERN
        label["pattern"] = LABEL_PATTERN
    choices: dict[str, Any] = {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {"label": label},
            "required": ["label"],
            "additionalProperties": False,
        },
    }
    if must_end:
        choices.update(minItems=0, maxItems=0)
    else:
        choices.update(minItems=CHOICES_MIN, maxItems=CHOICES_MAX)
    known_places = places(story)
    place: dict[str, Any] = (
        {"type": "string", "enum": known_places}
        if known_places
        else {"type": "string", "minLength": 3, "maxLength": PLACE_MAX}
    )
    opening: dict[str, Any] = {}
    if story.persona is not None:
        opening = {"opening": {"type": "string", "maxLength": TEXT_MAX, "pattern": OPENING_PATTERN}}
    return {
        "type": "object",
        "properties": {
            "title": title,
            "place": place,
            **opening,
            "lines": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "speaker": {"type": "string", "enum": speakers(story)},
                        "text": {"type": "string", "minLength": TEXT_MIN, "maxLength": TEXT_MAX},
                    },
                    "required": ["speaker", "text"],
                    "additionalProperties": False,
                },
                "minItems": LINES_MIN - len(opening),
                "maxItems": LINES_MAX - len(opening),
            },
            "choices": choices,
            "ending": {"type": "boolean", "const": must_end},
        },
        "required": ["title", "place", *opening, "lines", "choices", "ending"],
        "additionalProperties": False,
    }
