"""Reading stories from text: the project's YAML or JSON, or an import from Twee 3 or Yarn Spinner.

Every failure is a :class:`StoryError` whose problems are located (``file:line:column`` for text,
a field path like ``scenes[3].choices[0]`` for structure); nothing else escapes.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import PurePath
from typing import Any, Literal

import yaml
from pydantic import ValidationError
from reelfork.narrative.graph import validate
from reelfork.narrative.problems import Problem, StoryError, errors, from_validation
from reelfork.narrative.story import Story, build_story
from reelfork.narrative.twee import import_twee
from reelfork.narrative.yarn import import_yarn

__all__ = ["MAX_STORY_BYTES", "StoryError", "StoryFormat", "kind_of", "load_story", "parse_story", "read_story"]

MAX_STORY_BYTES = 10 * 1024 * 1024

StoryFormat = Literal["story", "twee", "yarn"]
"""``story``: the project's YAML or JSON; ``twee``: Twine's Twee 3; ``yarn``: Yarn Spinner."""

EXTENSIONS: dict[str, StoryFormat] = {
    ".yaml": "story", ".yml": "story", ".json": "story", ".twee": "twee", ".tw": "twee", ".yarn": "yarn",
}

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_ALIAS = re.compile(r"(^|[\s,\[{:-])\*[^\s,\[\]{}]")


def kind_of(name: str) -> StoryFormat:
    """The kind of story a file holds, by its extension; unknown extensions raise :class:`StoryError`."""
    suffix = PurePath(name).suffix.lower()
    kind = EXTENSIONS.get(suffix)
    if kind is None:
        known = ", ".join(EXTENSIONS)
        unknown = f"unknown story file type {suffix or '(none)'!r}; use one of {known}"
        raise StoryError([Problem("error", name, unknown)])
    return kind


def decode(text: str | bytes, source: str) -> str:
    """UTF-8 text of at most :data:`MAX_STORY_BYTES`, or a located error."""
    if len(text) > MAX_STORY_BYTES:
        raise StoryError([Problem("error", source, f"larger than {MAX_STORY_BYTES // (1024 * 1024)} MB")])
    if isinstance(text, bytes):
        raw = text
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            raise StoryError([Problem("error", f"{source}:{line}", f"not UTF-8 text (byte {exc.start})")]) from None
    return text


def parse_story(text: str | bytes, *, source: str = "story") -> Story:
    """Parse YAML or JSON text into a structurally valid :class:`Story` (graph not yet checked)."""
    data = _load_tree(decode(text, source), source)
    if not isinstance(data, dict):
        raise StoryError([Problem("error", source, "a story is a mapping with id, title, bible, start and scenes")])
    try:
        return build_story(data)
    except ValidationError as exc:
        raise StoryError(from_validation(exc)) from None
    except RecursionError:
        raise StoryError([Problem("error", source, "nested too deeply")]) from None


def read_story(text: str | bytes, *, source: str = "story", kind: StoryFormat = "story") -> tuple[Story, list[Problem]]:
    """Parse or import a story without checking its graph; the warnings list what an import dropped."""
    if kind == "story":
        return parse_story(text, source=source), []
    decoded = decode(text, source)
    return import_twee(decoded, source=source) if kind == "twee" else import_yarn(decoded, source=source)


def load_story(text: str | bytes, *, source: str = "story", kind: StoryFormat = "story") -> tuple[Story, list[Problem]]:
    """Parse (or import) and validate a story; raise :class:`StoryError` on any error, return the warnings."""
    story, warnings = read_story(text, source=source, kind=kind)
    problems = validate(story)
    if errors(problems):
        raise StoryError([*problems, *warnings])
    return story, [*warnings, *problems]


def _load_tree(text: str, source: str) -> Any:
    stripped = text.lstrip()
    try:
        if stripped.startswith(("{", "[")):
            return _load_json(text, source)
        _refuse_aliases(text, source)
        return yaml.load(text, Loader=_Loader)  # a safe loader (C when available)
    except StoryError:  # already located (a ValueError too: it must not be wrapped again below)
        raise
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, source) from None
    except RecursionError:
        raise StoryError([Problem("error", source, "nested too deeply")]) from None
    except (ValueError, OverflowError) as exc:  # an integer past Python's digit limit, a timestamp out of range
        raise StoryError([_value_error(exc, text, source)]) from None


def _value_error(exc: ValueError | OverflowError, text: str, source: str) -> Problem:
    """The problem of a value the loader could not convert, at the first over-long integer if that is the cause."""
    digits = re.search(rf"\d{{{sys.get_int_max_str_digits() + 1},}}", text)
    if digits is None:
        return Problem("error", source, f"invalid value: {exc}")
    line = text.count("\n", 0, digits.start()) + 1
    column = digits.start() - (text.rfind("\n", 0, digits.start()) + 1) + 1
    limit = sys.get_int_max_str_digits()
    return Problem("error", f"{source}:{line}:{column}", f"a number of {len(digits.group())} digits (at most {limit})")


def _load_json(text: str, source: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise StoryError([Problem("error", f"{source}:{exc.lineno}:{exc.colno}", f"invalid JSON: {exc.msg}")]) from None


def _refuse_aliases(text: str, source: str) -> None:
    """YAML aliases can multiply a small file into billions of nodes; stories have no use for them."""
    try:
        if _ALIAS.search(text) is None:
            return
        for event in yaml.parse(text, Loader=_Loader):
            if isinstance(event, yaml.AliasEvent):
                mark = event.start_mark
                where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else source
                raise StoryError([Problem("error", where, "YAML aliases (*name) are not allowed in stories")])
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, source) from None


def _yaml_error(exc: yaml.YAMLError, source: str) -> StoryError:
    mark = getattr(exc, "problem_mark", None)
    where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else source
    reason = getattr(exc, "problem", None) or str(exc)
    return StoryError([Problem("error", where, f"invalid YAML: {reason}")])
