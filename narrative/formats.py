"""Reading stories from text: YAML or JSON in the project's format, with located errors."""

from __future__ import annotations

import json
from typing import Any

import yaml
from pydantic import ValidationError

from narrative.graph import Problem, errors, validate
from narrative.story import Story

MAX_STORY_BYTES = 10 * 1024 * 1024


class StoryError(ValueError):
    """A story that cannot be used; ``problems`` locates every finding."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems[:10]))


def parse_story(text: str | bytes, *, source: str = "story") -> Story:
    """Parse YAML or JSON text into a structurally valid :class:`Story` (graph not yet checked)."""
    if len(text) > MAX_STORY_BYTES:
        raise StoryError([Problem("error", source, f"larger than {MAX_STORY_BYTES // (1024 * 1024)} MB")])
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StoryError([Problem("error", source, f"not UTF-8 text (byte {exc.start})")]) from None
    data = _load_tree(text, source)
    if not isinstance(data, dict):
        raise StoryError([Problem("error", source, "a story is a mapping with id, title, bible, start and scenes")])
    try:
        return Story.model_validate(data)
    except ValidationError as exc:
        raise StoryError([_problem(error) for error in exc.errors()]) from None


def load_story(text: str | bytes, *, source: str = "story") -> tuple[Story, list[Problem]]:
    """Parse and validate a story; raise :class:`StoryError` on any error, return the warnings."""
    story = parse_story(text, source=source)
    problems = validate(story)
    if errors(problems):
        raise StoryError(problems)
    return story, problems


def _load_tree(text: str, source: str) -> Any:
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise StoryError(
                [Problem("error", f"{source}:{exc.lineno}:{exc.colno}", f"invalid JSON: {exc.msg}")]
            ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else source
        reason = getattr(exc, "problem", None) or str(exc)
        raise StoryError([Problem("error", where, f"invalid YAML: {reason}")]) from None


def _problem(error: Any) -> Problem:
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"]).lstrip(".")
    return Problem("error", where or "story", error["msg"])
