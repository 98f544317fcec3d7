"""What the Twee and Yarn importers share: a draft story, located warnings, a synthesized bible.

An importer reads its format into a :class:`Draft` (plain dicts in the project's format), noting
a warning for every feature it drops; :meth:`Draft.story` then builds a structurally valid
:class:`Story`. A link to a missing passage or node is an error located in the source file, in the author's
own words; other graph problems are left to :func:`reelfork.narrative.graph.validate`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from pydantic import ValidationError
from reelfork.narrative.ids import Namer, slug
from reelfork.narrative.problems import Problem, StoryError, from_validation
from reelfork.narrative.story import NARRATOR, Story, build_story

MAX_LINE = 2000
MAX_LABEL = 200
MAX_CHOICES = 4
MAX_LINES = 500
MAX_TITLE = 200
PLAYER = "you"
"""The character synthesized when a story has no speakers: second-person interactive fiction's 'you'."""


def located(source: str, line: int, message: str) -> StoryError:
    return StoryError([Problem("error", f"{source}:{line}", message)])


@dataclass
class Draft:
    """A story being imported: scenes as dicts, speakers seen, and what was dropped on the way."""

    source: str
    kind: str
    title: str = ""
    start: str | None = None
    scenes: list[dict[str, Any]] = field(default_factory=list)
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)
    speakers: dict[str, str] = field(default_factory=dict)
    """Character id → the name as written."""
    warnings: list[Problem] = field(default_factory=list)
    errors: list[Problem] = field(default_factory=list)
    """Found while importing; :meth:`story` raises them all at once."""
    scene_ids: Namer = field(default_factory=lambda: Namer("scene"))
    speaker_ids: Namer = field(default_factory=lambda: Namer("speaker"))

    def warn(self, line: int, message: str) -> None:
        self.warnings.append(Problem("warning", f"{self.source}:{line}", message))

    def fail(self, line: int, message: str) -> None:
        self.errors.append(Problem("error", f"{self.source}:{line}", message))

    def speaker(self, name: str) -> str:
        """The character id for a speaker's name, registering the character on first sight."""
        if name.strip().lower() == NARRATOR:
            return NARRATOR
        character_id = self.speaker_ids(name.strip())
        if character_id in {NARRATOR, PLAYER}:
            character_id = self.speaker_ids(f"{name.strip()} (character)")
        self.speakers.setdefault(character_id, name.strip())
        return character_id

    def fit(self, text: str, limit: int, line: int, what: str) -> str:
        """``text`` cut to ``limit`` characters, with a warning when it was longer."""
        if len(text) <= limit:
            return text
        self.warn(line, f"{what} longer than {limit} characters was cut")
        return text[: limit - 1].rstrip() + "…"

    def line(self, speaker: str, text: str, lineno: int, line_id: str | None = None) -> dict[str, Any]:
        entry: dict[str, Any] = {"speaker": speaker, "text": self.fit(text, MAX_LINE, lineno, "a line")}
        if line_id is not None:
            entry["id"] = line_id
        return entry

    def story(self) -> Story:
        """The imported story; structural problems (there should be none) raise :class:`StoryError`."""
        stem = PurePath(self.source).stem or "story"
        title = self.fit(self.title.strip() or stem, MAX_TITLE, 1, "the title")
        if not self.scenes:
            raise located(self.source, 1, f"no {self.kind} content to import: the file has no passages or nodes")
        if self.errors:
            raise StoryError([*self.errors, *self.warnings])
        data = {
            "id": slug(title, "story"),
            "title": title,
            "bible": self._bible(title),
            "start": self.start or self.scenes[0]["id"],
            "variables": self.variables,
            "scenes": self.scenes,
        }
        try:
            return build_story(data)
        except ValidationError as exc:
            raise StoryError(from_validation(exc)) from None

    def _bible(self, title: str) -> dict[str, Any]:
        characters = [
            {"id": character_id, "name": self.fit(name, MAX_TITLE, 1, "a speaker's name"),
             "look": f"Not described yet: write how {name} looks before rendering."}
            for character_id, name in list(self.speakers.items())[:64]
        ]
        if len(self.speakers) > 64:
            self.warn(1, f"only the first 64 of {len(self.speakers)} speakers fit in the bible")
        if not characters:
            characters = [{"id": PLAYER, "name": "You", "look": "The viewer's point of view; rarely seen on screen."}]
        cast = ", ".join(str(character["id"]) for character in characters)
        self.warn(1, f"the bible was synthesized from {self.kind} (characters: {cast}); describe the "
                     "logline, setting, tone and each character's look before rendering")
        return {
            "logline": self.fit(f"{title}, imported from {self.kind}.", MAX_LINE, 1, "the logline"),
            "setting": "Not described yet.",
            "tone": "Not described yet.",
            "characters": characters,
        }
